"""The workspace mirror's logic against a local stand-in for WebHDFS (no cluster): what reaches the
workspace, what never leaves it, the trash, cut syncs, and the lock. The sandbox tests in
test_workspace.py run the same code against the real HDFS."""
import json
import os
import time
from pathlib import Path

import pytest

from skein_jupyter.runtime.workspace import DEFAULT_EXCLUDE, META_DIR, WRITING, Mirror, WorkspaceBusy


class LocalHDFS:
    """The calls of :class:`skein_jupyter.runtime.webhdfs.HDFS`, on a local directory, with WebHDFS's
    answers: a rename onto an existing path returns False unless it overwrites."""

    def __init__(self, root: Path):
        self.root = root
        self.writes: list[str] = []
        self.during_write = None

    def _p(self, path):
        return self.root / path.lstrip("/")

    def reconnect(self):
        pass

    def status(self, path):
        p = self._p(path)
        if not p.exists():
            return None
        return {"type": "DIRECTORY" if p.is_dir() else "FILE", "modificationTime": int(p.stat().st_mtime * 1000)}

    def list(self, path):
        return [{"pathSuffix": p.name, "type": "DIRECTORY" if p.is_dir() else "FILE",
                 "modificationTime": int(p.stat().st_mtime * 1000)} for p in sorted(self._p(path).iterdir())]

    def mkdir(self, path, mode="700"):
        self._p(path).mkdir(parents=True, exist_ok=True)

    def chmod(self, path, mode):
        pass

    def write(self, path, source):
        self.writes.append(path)
        p = self._p(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        data = source if isinstance(source, bytes) else source.read()
        if self.during_write is not None:
            self.during_write()
        p.write_bytes(data)

    def read(self, path, sink):
        sink.write(self._p(path).read_bytes())

    def cat(self, path):
        return self._p(path).read_bytes()

    def rename(self, source, target, overwrite=False):
        s, t = self._p(source), self._p(target)
        if t.exists() and not overwrite:
            return False
        if t.is_dir():
            import shutil

            shutil.rmtree(t)
        os.replace(s, t)
        return True

    def delete(self, path, recursive=False):
        import shutil

        p = self._p(path)
        if p.is_dir():
            shutil.rmtree(p) if recursive else p.rmdir()
        elif p.exists():
            p.unlink()
        return True


@pytest.fixture
def hdfs(tmp_path):
    (tmp_path / "hdfs").mkdir()
    return LocalHDFS(tmp_path / "hdfs")


def _mirror(hdfs, tmp_path, app_id="application_1_0001", checked_at=None, name="local"):
    local = tmp_path / name
    local.mkdir(exist_ok=True)
    checked = int(time.time() * 1000) if checked_at is None else checked_at
    return Mirror(hdfs, "/ws", local, list(DEFAULT_EXCLUDE), 30, app_id, checked)


def _remote(hdfs, rel):
    return hdfs.root / "ws" / rel


def test_restore_copies_the_workspace_skips_excludes_and_drops_cut_writes(hdfs, tmp_path):
    for rel, text in {"a.ipynb": "A", "data/b.csv": "B", ".ipynb_checkpoints/a-checkpoint.ipynb": "old",
                      f"data/c.csv{WRITING}": "half"}.items():
        _remote(hdfs, rel).parent.mkdir(parents=True, exist_ok=True)
        _remote(hdfs, rel).write_text(text)
    mirror = _mirror(hdfs, tmp_path)
    mirror.prepare()
    assert mirror.restore() == (2, 2)
    assert (mirror.local / "a.ipynb").read_text() == "A" and (mirror.local / "data/b.csv").read_text() == "B"
    assert not (mirror.local / ".ipynb_checkpoints").exists()
    assert not _remote(hdfs, f"data/c.csv{WRITING}").exists()
    assert mirror.sync() == 0  # what was restored is not sent back


def test_changes_are_sent_once_and_replace_atomically(hdfs, tmp_path):
    mirror = _mirror(hdfs, tmp_path)
    mirror.prepare()
    (mirror.local / "nb.ipynb").write_text("v1")
    (mirror.local / "__pycache__").mkdir()
    (mirror.local / "__pycache__" / "m.pyc").write_text("cache")
    (mirror.local / ".~nb.ipynb").write_text("jupyter_server's save in progress")
    assert mirror.sync() == 1
    assert _remote(hdfs, "nb.ipynb").read_text() == "v1"
    assert not _remote(hdfs, "__pycache__").exists() and not _remote(hdfs, ".~nb.ipynb").exists()
    hdfs.writes.clear()
    assert mirror.sync() == 0 and hdfs.writes == []
    (mirror.local / "nb.ipynb").write_text("v2, longer")
    assert mirror.sync() == 1
    assert _remote(hdfs, "nb.ipynb").read_text() == "v2, longer"
    assert hdfs.writes == [f"/ws/nb.ipynb{WRITING}"]  # written aside, then renamed over the old one
    assert not list((hdfs.root / "ws").glob(f"*{WRITING}"))


def test_a_file_that_changes_while_it_is_sent_replaces_nothing(hdfs, tmp_path):
    mirror = _mirror(hdfs, tmp_path)
    mirror.prepare()
    (mirror.local / "big.csv").write_text("good")
    mirror.sync()
    (mirror.local / "big.csv").write_text("being written")
    hdfs.during_write = lambda: (mirror.local / "big.csv").write_text("being written, more")
    assert mirror.sync() == 0
    assert _remote(hdfs, "big.csv").read_text() == "good"
    hdfs.during_write = None
    assert mirror.sync() == 1
    assert _remote(hdfs, "big.csv").read_text() == "being written, more"


def test_deletes_go_to_the_workspaces_trash_with_what_the_server_never_showed(hdfs, tmp_path):
    _remote(hdfs, "data").mkdir(parents=True)
    _remote(hdfs, "data/a.csv").write_text("A")
    _remote(hdfs, "data/.cache").mkdir()
    _remote(hdfs, "data/.cache/big").write_text("excluded, only on HDFS")
    mirror = _mirror(hdfs, tmp_path)
    mirror.prepare()
    mirror.restore()
    (mirror.local / "data" / "a.csv").unlink()
    (mirror.local / "data").rmdir()
    assert mirror.sync() == 2
    assert not _remote(hdfs, "data").exists()
    trashed = {p.relative_to(hdfs.root / "ws" / META_DIR / "trash").as_posix().split("/", 1)[1]: p.read_text()
               for p in (hdfs.root / "ws" / META_DIR / "trash").rglob("*") if p.is_file()}
    assert trashed == {"data/a.csv": "A", "data/.cache/big": "excluded, only on HDFS"}


def test_nothing_under_an_unreadable_directory_is_removed(hdfs, tmp_path, monkeypatch):
    mirror = _mirror(hdfs, tmp_path)
    mirror.prepare()
    (mirror.local / "proj").mkdir()
    (mirror.local / "proj" / "x.py").write_text("x")
    mirror.sync()
    found, _ = mirror.scan()
    monkeypatch.setattr(mirror, "scan", lambda: ({k: v for k, v in found.items() if k == "proj"}, ["proj"]))
    assert mirror.sync() == 0
    assert _remote(hdfs, "proj/x.py").read_text() == "x"
    monkeypatch.setattr(mirror, "scan", lambda: ({}, ["."]))
    assert mirror.sync() == 0
    assert _remote(hdfs, "proj/x.py").exists()


def test_the_lock_refuses_a_live_server_and_takes_over_one_that_ended(hdfs, tmp_path):
    first = _mirror(hdfs, tmp_path, "application_1_0001")
    first.prepare()
    first.acquire("host-a")
    # A server started while the first held the lock (the lock is newer than its check): refused.
    second = _mirror(hdfs, tmp_path, "application_1_0002", checked_at=0, name="second")
    with pytest.raises(WorkspaceBusy, match="in use by application_1_0001"):
        second.acquire("host-b")
    assert not list((hdfs.root / "ws" / META_DIR).glob("lock.*"))  # its own lock file is gone
    # The first ended without releasing (a hard kill); the client then saw no live server.
    time.sleep(0.01)
    third = _mirror(hdfs, tmp_path, "application_1_0003", checked_at=int(time.time() * 1000) + 1000, name="third")
    third.acquire("host-c")
    assert json.loads(_remote(hdfs, f"{META_DIR}/lock").read_text())["app_id"] == "application_1_0003"
    # The first server, if it still runs somewhere, finds its lock taken and stops syncing.
    assert not first.still_ours() and first.taken_by == "application_1_0003"
    (first.local / "late.txt").write_text("x")
    assert first.sync() == 0 and not _remote(hdfs, "late.txt").exists()
    assert third.still_ours()
    third.release(started=time.time())
    assert not _remote(hdfs, f"{META_DIR}/lock").exists()
    assert json.loads(_remote(hdfs, f"{META_DIR}/last-used.json").read_text())["app_id"] == "application_1_0003"


def test_a_workspace_that_is_a_file_is_refused(hdfs, tmp_path):
    (hdfs.root / "ws").write_text("not a directory")
    with pytest.raises(ValueError, match="is a file on HDFS, not a directory"):
        _mirror(hdfs, tmp_path).prepare()


def test_a_directory_anyone_can_write_to_is_refused_and_an_existing_one_keeps_its_mode(hdfs, tmp_path):
    (hdfs.root / "ws").mkdir()
    modes = []
    hdfs.chmod = lambda path, mode: modes.append(mode)
    hdfs.status = lambda path, real=hdfs.status: (dict(real(path), permission="1777") if path == "/ws"
                                                  else real(path))
    with pytest.raises(ValueError, match="anyone can write to"):
        _mirror(hdfs, tmp_path).prepare(private=False)
    hdfs.status = lambda path, real=LocalHDFS.status: dict(real(hdfs, path), permission="750") \
        if path == "/ws" else real(hdfs, path)
    _mirror(hdfs, tmp_path).prepare(private=False)
    assert modes == []  # a project directory of the user's keeps its permissions
    _mirror(hdfs, tmp_path).prepare(private=True)
    assert modes == ["700"]  # a named workspace is private
