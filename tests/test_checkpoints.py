"""The engine's papermill saves (runtime/execute.py) leave a whole notebook at every moment.

Papermill saves in place (truncate, then write). A checkpoint that uploads the
file at that moment sends an empty or cut-short notebook over the last good
copy on HDFS (CI once read an empty checkpoint in test_runs.py's hard-kill
test). No cluster: papermill's own I/O layer writes local files here; the
uploads are in test_runs.py.
"""
import json
import os
import signal
import threading
import time

import pytest
from papermill.iorw import papermill_io

from skein_jupyter.runtime.execute import Interrupted, _atomic_saves, _interrupt


@pytest.fixture
def atomic():
    handler = _atomic_saves()
    yield handler
    vars(handler).pop("write", None)  # papermill's own write again, for the rest of this process


def _notebook(n):
    return json.dumps({"cells": [{"cell_type": "code", "source": "x", "outputs": [{"text": "y" * 2000}]}] * n,
                      "metadata": {"n": n}, "nbformat": 4, "nbformat_minor": 5})


def test_a_reader_only_ever_sees_whole_notebooks(atomic, tmp_path):
    target = tmp_path / "out.ipynb"
    papermill_io.write(_notebook(1), str(target))
    saves, done, seen, cut, failed = 60, threading.Event(), [], [], []

    def save():
        try:
            for i in range(saves):
                papermill_io.write(_notebook(200 + i), str(target))
        except Exception as exc:
            failed.append(exc)
        done.set()

    writer = threading.Thread(target=save, daemon=True)
    writer.start()
    deadline = time.monotonic() + 120
    while not done.is_set() and time.monotonic() < deadline:
        data = target.read_bytes()
        try:
            seen.append(json.loads(data)["metadata"]["n"])
        except ValueError:
            cut.append(len(data))
    writer.join(10)
    assert done.is_set() and not failed, f"60 saves did not finish in 120 s: {failed}"
    assert cut == [], f"{len(cut)} reads found a notebook cut short (sizes {cut[:5]})"
    assert len(seen) > 1 and json.loads(target.read_text())["metadata"]["n"] == 200 + saves - 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.ipynb"]  # no temporary file left


def test_a_save_interrupted_before_its_rename_keeps_the_last_whole_notebook(atomic, tmp_path, monkeypatch):
    target = tmp_path / "out.ipynb"
    papermill_io.write(_notebook(3), str(target))

    def stopped(*args):  # the engine's Interrupted (a BaseException), after the data is written
        raise Interrupted("stopped")

    monkeypatch.setattr(os, "replace", stopped)
    with pytest.raises(Interrupted):
        papermill_io.write(_notebook(4), str(target))
    monkeypatch.undo()
    assert json.loads(target.read_text())["metadata"]["n"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.ipynb"]


def test_a_relative_path_is_from_papermills_cwd_and_a_missing_folder_is_refused(atomic, tmp_path):
    previous = atomic.cwd(str(tmp_path))
    try:
        papermill_io.write(_notebook(1), "rel.ipynb")
        with pytest.raises(FileNotFoundError, match="doesn't exist"):
            papermill_io.write(_notebook(1), "missing/rel.ipynb")
    finally:
        atomic.cwd(previous)
    assert json.loads((tmp_path / "rel.ipynb").read_text())["metadata"]["n"] == 1


def test_a_stop_signal_during_a_save_lands_after_it(atomic, tmp_path, monkeypatch):
    target = tmp_path / "out.ipynb"
    replace = os.replace

    def signalled_then_replace(*args):  # the timeout's signal arrives in the middle of the save
        os.kill(os.getpid(), signal.SIGUSR1)
        return replace(*args)

    previous = signal.signal(signal.SIGUSR1, _interrupt)  # the engine's handler
    monkeypatch.setattr(os, "replace", signalled_then_replace)
    try:
        with pytest.raises(Interrupted) as raised:
            papermill_io.write(_notebook(5), str(target))
    finally:
        monkeypatch.undo()
        signal.signal(signal.SIGUSR1, previous)
    assert raised.value.status == "timed_out"
    assert json.loads(target.read_text())["metadata"]["n"] == 5  # the save finished before the stop
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.ipynb"]
