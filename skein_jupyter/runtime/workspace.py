"""A server's workspace: an HDFS directory mirrored into the server's root directory.

At start the workspace is copied in before the server answers (:meth:`Mirror.restore`).
Then every change goes back to HDFS: at once after a save, rename or delete
through Jupyter (the contents manager nudges the mirror), at every
``sync_interval`` for files written by kernels and terminals, and at every
stop. A file reaches HDFS as ``NAME.~sj-writing``, becomes ``NAME.~sj-ready``
once whole, and only then replaces ``NAME``: a sync cut short by a killed
container never leaves a half-written file in place of a good one, and the
next restore finishes or drops what it left (:meth:`Mirror.restore`).

One live server per workspace: ``.skein-jupyter/lock`` names the server's
application. A lock written before the client last saw no live server on the
workspace (``checked_at``) belongs to a server that has ended, and is taken over.
"""
from __future__ import annotations

import fnmatch
import json
import os
import posixpath
import threading
import time
from pathlib import Path
from typing import Any

from .common import log
from .webhdfs import short

META_DIR = ".skein-jupyter"
LOCK = "lock"
LAST_USED = "last-used.json"
WRITING, READY = ".~sj-writing", ".~sj-ready"
#: Excluded unless a recipe says otherwise: checkpoints, caches and trash.
DEFAULT_EXCLUDE = (".ipynb_checkpoints", "__pycache__", "*.pyc", ".cache", ".Trash-*", ".virtual_documents")


class WorkspaceBusy(Exception):
    """Another live server holds the workspace."""


class Mirror:
    """Keeps ``local`` and the HDFS directory ``remote`` the same, local changes winning."""

    def __init__(self, fs: Any, remote: str, local: Path, exclude: list[str], interval: float):
        self.fs, self.remote, self.local = fs, remote.rstrip("/") or "/", local
        self.exclude = list(exclude)
        self.interval = interval
        self.synced: dict[str, tuple] = {}  # relative path -> what HDFS holds of it, as local stat
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_sync: float | None = None
        self.last_error: str | None = None

    # ----------------------------------------------------------- names

    def excluded(self, rel: str) -> bool:
        parts = rel.split("/")
        if parts[0] == META_DIR or parts[-1].endswith((WRITING, READY)):
            return True
        return any(fnmatch.fnmatch(part, pattern) for part in parts for pattern in self.exclude) \
            or any(fnmatch.fnmatch(rel, pattern) for pattern in self.exclude)

    def _remote(self, rel: str) -> str:
        return posixpath.join(self.remote, rel) if rel else self.remote

    # ----------------------------------------------------------- start

    def prepare(self) -> None:
        """Make the workspace (private) if it is new."""
        if not self.fs.exists(self.remote):
            self.fs.mkdir(self.remote)
        self.fs.chmod(self.remote, "700")
        meta = self._remote(META_DIR)
        if not self.fs.exists(meta):
            self.fs.mkdir(meta)

    def acquire(self, app_id: str, checked_at_ms: int, host: str) -> None:
        """Take the workspace's lock for ``app_id``, or raise :class:`WorkspaceBusy` naming its holder."""
        lock = self._remote(f"{META_DIR}/{LOCK}")
        mine = f"{lock}.{app_id}"
        self._write(mine, json.dumps({"app_id": app_id, "host": host, "started": time.time()}).encode())
        try:
            for _ in range(3):
                self.fs.mv(mine, lock)  # atomic; does nothing if the lock exists
                holder, modified = self._holder(lock)
                if holder.get("app_id") == app_id:
                    return
                if modified is None:
                    continue  # released between the two calls
                if modified >= checked_at_ms:
                    raise WorkspaceBusy(f"the workspace {self.remote} is in use by {holder.get('app_id')}; "
                                        f"stop it with `skein-jupyter notebook stop {holder.get('app_id')}`")
                ended = f"{lock}.ended-{holder.get('app_id')}"
                log(f"taking over the workspace from {holder.get('app_id')}, which has ended")
                self.fs.mv(lock, ended)
                if self.fs.exists(ended):
                    self.fs.rm(ended)
            raise WorkspaceBusy(f"the workspace {self.remote} is being taken by another server; try again")
        finally:
            if self.fs.exists(mine):
                self.fs.rm(mine)

    def _holder(self, lock: str) -> tuple[dict, int | None]:
        try:
            info = self.fs.info(lock)
            data = json.loads(self.fs.cat_file(lock) or b"{}")
        except FileNotFoundError:
            return {}, None
        return (data if isinstance(data, dict) else {}), int(info.get("modificationTime", 0))

    def release(self, app_id: str, started: float) -> None:
        """Drop the lock (if still ours) and record when the workspace was last used."""
        lock = self._remote(f"{META_DIR}/{LOCK}")
        self._write(self._remote(f"{META_DIR}/{LAST_USED}"),
                    json.dumps({"path": self.remote, "app_id": app_id, "started": started,
                                "stopped": time.time()}).encode())
        holder, _ = self._holder(lock)
        if holder.get("app_id") == app_id:
            self.fs.rm(lock)

    def restore(self) -> tuple[int, int]:
        """Copy the workspace into ``local``; returns (files, bytes). Finishes what a cut sync left."""
        files = size = 0
        pending = [""]
        while pending:
            rel_dir = pending.pop()
            for entry in self.fs.ls(self._remote(rel_dir), detail=True):
                name = entry["pathSuffix"]
                rel = posixpath.join(rel_dir, name) if rel_dir else name
                if name.endswith((WRITING, READY)):
                    self._finish_cut_sync(rel)
                    continue
                if self.excluded(rel):
                    continue
                target = self.local / rel
                if entry["type"] == "directory":
                    target.mkdir(mode=0o700, exist_ok=True)
                    pending.append(rel)
                    self.synced[rel] = ("d",)
                    continue
                with self.fs.open(self._remote(rel), "rb") as source, open(target, "wb") as sink:
                    while True:
                        chunk = source.read(4 << 20)
                        if not chunk:
                            break
                        sink.write(chunk)
                os.chmod(target, 0o600)
                modified = entry.get("modificationTime", 0) / 1000
                os.utime(target, (modified, modified))
                stat = target.stat()
                self.synced[rel] = ("f", stat.st_size, stat.st_mtime_ns)
                files, size = files + 1, size + stat.st_size
        return files, size

    def _finish_cut_sync(self, rel: str) -> None:
        """A ``.~sj-ready`` file is whole: it goes into place if its target is gone; the rest is dropped."""
        path = self._remote(rel)
        target = path[: -len(READY)]
        if path.endswith(READY) and not self.fs.exists(target):
            log(f"finishing an interrupted sync of {rel[: -len(READY)]}")
            self.fs.mv(path, target)
        else:
            self.fs.rm(path)

    # ----------------------------------------------------------- sync

    def scan(self) -> dict[str, tuple]:
        found: dict[str, tuple] = {}
        for root, dirs, files in os.walk(self.local):
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
        return found

    def sync(self) -> int:
        """Send what changed since the last sync to HDFS; returns how many paths were sent or removed."""
        with self._lock:
            changes = 0
            current = self.scan()
            for rel in sorted(current):  # parents before children
                state = current[rel]
                if self.synced.get(rel) == state:
                    continue
                try:
                    if state[0] == "d":
                        if not self.fs.exists(self._remote(rel)):
                            self.fs.mkdir(self._remote(rel))
                    else:
                        self._upload(rel)
                except Exception as exc:  # retried at the next sync
                    self.last_error = f"{rel}: {short(exc)}"
                    log(f"sync of {rel} failed, will retry: {short(exc)}")
                    continue
                self.synced[rel] = state
                changes += 1
            for rel in sorted(set(self.synced) - set(current), reverse=True):  # children before parents
                try:
                    if self.fs.exists(self._remote(rel)):
                        self.fs.rm(self._remote(rel), recursive=self.synced[rel][0] == "d")
                except Exception as exc:
                    log(f"removing {rel} from the workspace failed, will retry: {short(exc)}")
                    continue
                del self.synced[rel]
                changes += 1
            self.last_sync = time.time()
            return changes

    def _upload(self, rel: str) -> None:
        path = self._remote(rel)
        writing, ready = path + WRITING, path + READY
        with open(self.local / rel, "rb") as source:
            self._write(writing, source)
        self.fs.mv(writing, ready)
        if self.fs.exists(path):
            self.fs.rm(path)
        self.fs.mv(ready, path)

    def _write(self, path: str, data: Any) -> None:
        with self.fs.open(path, "wb") as sink:  # private: the workspace directory is 700
            if isinstance(data, bytes):
                sink.write(data)
                return
            while True:
                chunk = data.read(4 << 20)
                if not chunk:
                    break
                sink.write(chunk)

    # ----------------------------------------------------------- background

    def nudge(self) -> None:
        """Sync now (a save, rename or delete through Jupyter)."""
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="skein-jupyter-workspace", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stopped.is_set():
                return
            try:
                self.sync()
            except Exception as exc:  # HDFS unreachable for a moment: the next round retries
                log(f"workspace sync failed, will retry: {short(exc)}")

    def stop(self) -> int:
        """Stop syncing in the background, then sync one last time."""
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        return self.sync()
