"""Checkpoints of a set's output notebook (runtime/setrun.py) never upload a file papermill is rewriting.

Papermill saves in place (truncate, then write). A checkpoint read at that
moment is empty or cut short; uploaded, it would replace the last good copy on
HDFS (CI once read an empty checkpoint in test_runs.py's hard-kill test). No
cluster: the worker below records what would be uploaded; the real uploads
are in test_runs.py.
"""
import json
import threading
import time
from pathlib import Path
from types import SimpleNamespace

from skein_jupyter.runtime.setrun import SetRun

WHOLE = json.dumps({"cells": [{"cell_type": "code", "outputs": [{"text": "before"}]}], "nbformat": 4})


class Uploads:
    """A worker's part a SetRun uses, keeping the bytes each upload would send."""

    def __init__(self, workdir: Path, interval: int = 1) -> None:
        run = SimpleNamespace(notebook="/data/report.ipynb", sets=[{}], html=False, checkpoint_interval=interval,
                              parameters={})
        self.job = SimpleNamespace(run=run, parameters=lambda index: {})
        self.workdir, self.output, self.sent = workdir, "/user/me/out", []

    def upload(self, paths):
        self.sent.extend((Path(p).name, Path(p).read_bytes()) for p in paths)


def test_a_notebook_cut_short_is_not_uploaded_and_a_whole_one_is_under_its_own_name(tmp_path):
    worker = Uploads(tmp_path)
    set_run = SetRun(worker, 0, 1)
    for partial in ("", WHOLE[:40]):
        set_run.local.write_text(partial)
        assert set_run._snapshot() is None
        assert set_run.save({"output": "x", "html": None}) == []  # the last checkpoint stays
    set_run.local.write_text(WHOLE)
    snapshot = set_run._snapshot()
    assert snapshot is not None and snapshot.name == set_run.local.name and snapshot != set_run.local
    assert snapshot.read_text() == WHOLE
    assert set_run.save({"output": "x", "html": None}) == [set_run.local]


def test_checkpoints_wait_out_a_rewrite_then_upload_the_whole_notebook(tmp_path):
    worker = Uploads(tmp_path)
    set_run = SetRun(worker, 0, 1)
    set_run.local.write_text("")  # papermill has just truncated it
    finished = threading.Event()
    thread = threading.Thread(target=set_run._checkpoints, args=(finished,), daemon=True)
    thread.start()
    time.sleep(2.5)
    assert worker.sent == []
    set_run.local.write_text(WHOLE)
    deadline = time.monotonic() + 10
    while not worker.sent and time.monotonic() < deadline:
        time.sleep(0.1)
    finished.set()
    thread.join(10)
    assert not thread.is_alive()
    assert worker.sent and all(json.loads(data) for _, data in worker.sent)
    assert {name for name, _ in worker.sent} == {set_run.local.name}
