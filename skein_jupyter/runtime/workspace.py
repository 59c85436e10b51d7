"""A server's workspace: an HDFS directory mirrored into the server's root directory.

At start the workspace is copied in before the server answers (:meth:`Mirror.restore`).
Then every change goes back to HDFS: at once after a save, rename or delete
through Jupyter (the contents manager's events nudge the mirror), at every
``sync_interval`` for files written by kernels and terminals, and at every
stop. A file is written whole as ``NAME.~sj-writing``, then renamed over
``NAME`` atomically: a sync cut short by a killed container never leaves half
a file in place of a good one (restore drops what a cut sync left).

Nothing is deleted on HDFS: what was deleted in the server moves to the
workspace's trash, ``.skein-jupyter/trash/<time>/``, kept for
:data:`TRASH_DAYS` days.

One live server per workspace: ``.skein-jupyter/lock`` names the server's
application, rewritten at every sync. A lock written before the client last
saw no live server on the workspace (``checked_at``) belongs to a server that
has ended, and is taken over; a server that finds its lock taken stops syncing.
"""
from __future__ import annotations

import fnmatch
import json
import os
import posixpath
import threading
import time
from pathlib import Path

from .common import log
from .webhdfs import HDFS, short

#: Where named workspaces live (private, 700); any other workspace keeps its directory's permissions.
NAMED_DIR = "/user/{user}/skein-jupyter/workspaces"
META_DIR = ".skein-jupyter"
LOCK = "lock"
LAST_USED = "last-used.json"
TRASH = "trash"
TRASH_DAYS = 7
WRITING = ".~sj-writing"
#: Excluded unless a recipe says otherwise: checkpoints, caches, trash and
#: jupyter_server's own temporary files of a save in progress (``.~NAME``).
DEFAULT_EXCLUDE = (".ipynb_checkpoints", "__pycache__", "*.pyc", ".cache", ".Trash-*", ".virtual_documents", ".~*")


class WorkspaceBusy(Exception):
    """Another live server holds the workspace."""


class Mirror:
    """Keeps the HDFS directory ``remote`` the same as ``local``, local changes winning."""

    def __init__(self, hdfs: HDFS, remote: str, local: Path, exclude: list[str], interval: float,
                 app_id: str = "", checked_at_ms: int = 0):
        self.hdfs, self.remote, self.local = hdfs, remote.rstrip("/") or "/", local
        self.exclude = list(exclude)
        self.interval = interval
        self.app_id, self.checked_at_ms = app_id, checked_at_ms
        self.synced: dict[str, tuple] = {}  # relative path -> what HDFS holds of it, as local stat
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_sync: float | None = None
        self.taken_by: str | None = None  # the server that took the workspace over, if one did

    # ----------------------------------------------------------- names

    def excluded(self, rel: str) -> bool:
        """Whether the relative path ``rel`` stays out of the workspace (ours, or matched by a pattern)."""
        parts = rel.split("/")
        if parts[0] == META_DIR or parts[-1].endswith(WRITING):
            return True
        return any(fnmatch.fnmatch(part, pattern) for part in parts for pattern in self.exclude) \
            or any(fnmatch.fnmatch(rel, pattern) for pattern in self.exclude)

    def _remote(self, rel: str) -> str:
        return posixpath.join(self.remote, rel) if rel else self.remote

    # ----------------------------------------------------------- start and stop

    def prepare(self, private: bool = True) -> None:
        """Make the workspace if it is new, private (700) if new or ``private`` (a named workspace); refuse
        a file or a directory anyone can write to; empty the trash of old things."""
        status = self.hdfs.status(self.remote)
        if status is None:
            self.hdfs.mkdir(self.remote)
        elif status["type"] != "DIRECTORY":
            raise ValueError(f"the workspace {self.remote} is a file on HDFS, not a directory; choose "
                             "another workspace")
        elif not private and int(status.get("permission", "700"), 8) & 0o002:
            raise ValueError(f"the workspace {self.remote} is a directory anyone can write to (e.g. /tmp); "
                             "choose a directory of your own")
        if status is None or private:
            self.hdfs.chmod(self.remote, "700")  # an existing directory of the user's keeps its permissions
        self.hdfs.mkdir(self._remote(META_DIR))
        trash = self._remote(f"{META_DIR}/{TRASH}")
        if self.hdfs.status(trash) is not None:
            cutoff = (time.time() - TRASH_DAYS * 86400) * 1000
            for entry in self.hdfs.list(trash):
                if entry["modificationTime"] < cutoff:
                    self.hdfs.delete(f"{trash}/{entry['pathSuffix']}", recursive=True)

    def acquire(self, host: str) -> None:
        """Take the workspace's lock, or raise :class:`WorkspaceBusy` naming the server holding it."""
        lock = self._remote(f"{META_DIR}/{LOCK}")
        mine = f"{lock}.{self.app_id}"
        self.hdfs.write(mine, self._lock_record(host))
        try:
            for _ in range(3):
                if self.hdfs.rename(mine, lock):  # atomic; False if a lock exists
                    return
                holder, modified = self._holder()
                if modified is None:
                    continue  # released in between: try again
                if holder == self.app_id:
                    return
                if modified >= self.checked_at_ms:
                    raise WorkspaceBusy(f"the workspace {self.remote} is in use by {holder}; stop it with "
                                        f"`skein-jupyter notebook stop {holder}`")
                log(f"taking over the workspace from {holder}, which has ended")
                if self.hdfs.rename(mine, lock, overwrite=True) and self._holder()[0] == self.app_id:
                    return
            raise WorkspaceBusy(f"the workspace {self.remote} is being taken by another server; try again")
        finally:
            if self.hdfs.status(mine) is not None:
                self.hdfs.delete(mine)

    def _lock_record(self, host: str = "") -> bytes:
        return json.dumps({"app_id": self.app_id, "host": host, "time": time.time()}).encode()

    def _holder(self) -> tuple[str | None, int | None]:
        lock = self._remote(f"{META_DIR}/{LOCK}")
        try:
            status = self.hdfs.status(lock)
            data = json.loads(self.hdfs.cat(lock) or b"{}") if status is not None else None
        except (FileNotFoundError, ValueError):
            return None, None
        if status is None or not isinstance(data, dict):
            return None, None
        return data.get("app_id"), int(status["modificationTime"])

    def still_ours(self) -> bool:
        """Whether this server still holds the lock; if so, the lock is rewritten (a heartbeat)."""
        holder, _ = self._holder()
        if holder != self.app_id:
            self.taken_by = holder or "nobody"
            return False
        self.hdfs.write(self._remote(f"{META_DIR}/{LOCK}"), self._lock_record())
        return True

    def release(self, started: float) -> None:
        """Record when the workspace was last used, and drop the lock if it is still ours."""
        self.hdfs.write(self._remote(f"{META_DIR}/{LAST_USED}"), json.dumps(
            {"path": self.remote, "app_id": self.app_id, "started": started, "stopped": time.time()}).encode())
        if self._holder()[0] == self.app_id:
            self.hdfs.delete(self._remote(f"{META_DIR}/{LOCK}"))

    def restore(self) -> tuple[int, int]:
        """Copy the workspace into ``local``; returns (files, bytes). Drops what a cut sync left."""
        files = size = 0
        pending = [""]
        while pending:
            rel_dir = pending.pop()
            for entry in self.hdfs.list(self._remote(rel_dir)):
                name = entry["pathSuffix"]
                rel = posixpath.join(rel_dir, name) if rel_dir else name
                if name.endswith(WRITING):
                    self.hdfs.delete(self._remote(rel))  # never renamed into place: not whole
                    continue
                if self.excluded(rel):
                    continue
                target = self.local / rel
                if entry["type"] == "DIRECTORY":
                    target.mkdir(mode=0o700, exist_ok=True)
                    pending.append(rel)
                    self.synced[rel] = ("d",)
                    continue
                with open(target, "wb") as sink:
                    self.hdfs.read(self._remote(rel), sink)
                os.chmod(target, 0o600)
                modified = entry.get("modificationTime", 0) / 1000
                os.utime(target, (modified, modified))
                stat = target.stat()
                self.synced[rel] = ("f", stat.st_size, stat.st_mtime_ns)
                files, size = files + 1, size + stat.st_size
        return files, size

    # ----------------------------------------------------------- sync

    def scan(self) -> tuple[dict[str, tuple], list[str]]:
        """What ``local`` holds now (relative path -> stat), and the directories that could not be read."""
        found: dict[str, tuple] = {}
        unreadable: list[str] = []

        def note(error: OSError) -> None:
            unreadable.append(os.path.relpath(error.filename or "", self.local).replace(os.sep, "/"))

        for root, dirs, files in os.walk(self.local, onerror=note):
            rel_root = os.path.relpath(root, self.local).replace(os.sep, "/")
            rel_root = "" if rel_root == "." else rel_root
            kept = []
            for name in dirs:
                rel = posixpath.join(rel_root, name) if rel_root else name
                if not self.excluded(rel) and not os.path.islink(os.path.join(root, name)):
                    kept.append(name)
                    found[rel] = ("d",)
            dirs[:] = kept
            for name in files:
                rel = posixpath.join(rel_root, name) if rel_root else name
                path = os.path.join(root, name)
                if self.excluded(rel) or os.path.islink(path):
                    continue
                try:
                    stat = os.stat(path)
                except FileNotFoundError:
                    continue
                found[rel] = ("f", stat.st_size, stat.st_mtime_ns)
        return found, unreadable

    def sync(self) -> int:
        """Send what changed since the last sync to HDFS; returns how many paths were sent or moved to trash."""
        with self._lock:
            if self.taken_by is not None:
                return 0
            changes = 0
            current, unreadable = self.scan()
            for rel in sorted(current):  # parents before children
                state = current[rel]
                if self.synced.get(rel) == state:
                    continue
                try:
                    if state[0] == "d":
                        self.hdfs.mkdir(self._remote(rel))
                    elif not self._upload(rel, state):
                        continue  # still being written: the next sync sends it
                except Exception as exc:  # retried at the next sync
                    log(f"sync of {rel} failed, will retry: {short(exc)}")
                    continue
                self.synced[rel] = state
                changes += 1
            if "." in unreadable or "" in unreadable:
                log("the server's root directory cannot be read: nothing is removed from the workspace")
                return changes
            stamp = time.strftime("%Y%m%d-%H%M%S")
            for rel in sorted(set(self.synced) - set(current), reverse=True):  # children before parents
                if any(rel == bad or rel.startswith(bad + "/") for bad in unreadable):
                    continue  # unreadable here is not gone
                try:
                    self._to_trash(rel, stamp)
                except Exception as exc:
                    log(f"moving {rel} to the workspace's trash failed, will retry: {short(exc)}")
                    continue
                del self.synced[rel]
                changes += 1
            self.last_sync = time.time()
            return changes

    def _upload(self, rel: str, state: tuple) -> bool:
        """Send one file whole; False (nothing replaced) if it changed while it was read."""
        path = self._remote(rel)
        writing = path + WRITING
        with open(self.local / rel, "rb") as source:
            self.hdfs.write(writing, source)
        try:
            after = os.stat(self.local / rel)
        except FileNotFoundError:
            after = None
        if after is None or ("f", after.st_size, after.st_mtime_ns) != state:
            self.hdfs.delete(writing)
            return False
        self.hdfs.rename(writing, path, overwrite=True)
        return True

    def _to_trash(self, rel: str, stamp: str) -> None:
        """Move what was deleted in the server into the workspace's trash, file by file."""
        path = self._remote(rel)
        status = self.hdfs.status(path)
        if status is None:
            return
        if status["type"] == "DIRECTORY":  # what it still holds (excluded, never shown) goes to the trash too
            for entry in self.hdfs.list(path):
                self._to_trash(posixpath.join(rel, entry["pathSuffix"]), stamp)
            self.hdfs.delete(path)
            return
        target = self._remote(f"{META_DIR}/{TRASH}/{stamp}/{rel}")
        self.hdfs.mkdir(posixpath.dirname(target))
        self.hdfs.rename(path, target, overwrite=True)

    # ----------------------------------------------------------- background

    def nudge(self) -> None:
        """Sync now (a save, rename or delete through Jupyter)."""
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="skein-jupyter-workspace", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        last_heartbeat = time.monotonic()
        while not self._stopped.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stopped.is_set():
                return
            try:
                if time.monotonic() - last_heartbeat >= self.interval:
                    last_heartbeat = time.monotonic()
                    if not self.still_ours():
                        log(f"error: the workspace {self.remote} was taken over by {self.taken_by}; this "
                            "server no longer syncs it: save your work elsewhere and stop this server")
                        return
                self.sync()
            except Exception as exc:  # HDFS unreachable for a moment, or a NameNode failover
                log(f"workspace sync failed, will retry: {short(exc)}")
                try:
                    self.hdfs.reconnect()
                except Exception as again:
                    log(f"no NameNode answers yet: {short(again)}")

    def stop(self) -> int:
        """Stop syncing in the background, then sync one last time."""
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        return self.sync()
