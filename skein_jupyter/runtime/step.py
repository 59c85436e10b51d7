"""One attempt at one step of a flow: the batch worker in *step* mode.

The coordinator (:mod:`.flow`) starts a container of the step's service for
each attempt, after writing the attempt's number and the step's inputs (values
recorded by upstream steps) into the key-value store. The container runs the
step's notebook once, like one set of a run (:class:`~.setrun.SetRun`: progress,
checkpoints, timeout, stop), saves its outputs under ``<flow output>/<step>/``,
publishes its result, and ends; it never ends the application: the coordinator
decides what comes next.

Recorded values: while the notebook runs, the environment variable
``SKEIN_JUPYTER_RECORD`` names a file; a notebook that writes a JSON object
there (``json.dump(values, open(os.environ["SKEIN_JUPYTER_RECORD"], "w"))``)
records those values for later steps (``inputs: {name: step.value}``). They
must be JSON and at most :data:`MAX_RECORD_BYTES`; otherwise the step fails,
saying why. ``SKEIN_JUPYTER_ATTEMPT`` holds the attempt's number (1, then 2 on
the first retry, ...), for a notebook that must act differently on a retry.
"""
from __future__ import annotations

import dataclasses
import json
import os
import threading
from typing import TYPE_CHECKING

from . import clusterfs, keys
from .batch import Worker
from .common import log
from .job import Job, StepJob
from .setrun import SetRun

if TYPE_CHECKING:
    import skein

__all__ = ["StepWorker", "RECORD_ENV", "ATTEMPT_ENV", "MAX_RECORD_BYTES", "read_record"]

#: The variable naming the file a step's notebook writes its recorded values to.
RECORD_ENV = "SKEIN_JUPYTER_RECORD"
#: The variable holding the number of the attempt (from 1).
ATTEMPT_ENV = "SKEIN_JUPYTER_ATTEMPT"
#: Recorded values travel through the key-value store: keep them small.
MAX_RECORD_BYTES = 64 * 1024


def read_record(path: str) -> dict:
    """The values a notebook recorded in ``path`` (``{}`` if it wrote none).

    Raises ValueError saying what is wrong: not JSON, not an object, too large.
    """
    try:
        size = os.path.getsize(path)
    except OSError:
        return {}
    if size > MAX_RECORD_BYTES:
        raise ValueError(f"the recorded values are {size} bytes, above the limit of {MAX_RECORD_BYTES}; record "
                         "small values (names, counts, paths) and write large data to files")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        values = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"the recorded values are not JSON ({exc}); write them with json.dump") from None
    if not isinstance(values, dict):
        raise ValueError(f"the recorded values are a JSON {type(values).__name__}, not an object; record a "
                         "mapping of names to values")
    return values


class StepWorker(Worker):
    """The container of one attempt at ``step``."""

    def __init__(self, job: Job, app_client: skein.ApplicationClient, step: StepJob) -> None:
        self.step = step
        kv = app_client.kv
        self.attempt = int(kv.wait(keys.FLOW_ATTEMPT + step.name))
        inputs = json.loads(kv.get(keys.FLOW_INPUTS + step.name, b"{}"))
        run = dataclasses.replace(step.run, parameters={**step.run.parameters, **inputs})
        super().__init__(dataclasses.replace(job, run=run), app_client)

    def _output_dir(self):
        """The step's directory under the flow's output directory (the coordinator made it)."""
        self.creates_output = False
        return clusterfs.join(self.kv.wait(keys.RUN_OUTPUT).decode(), self.step.name)

    def progress_key(self, index: int) -> str:
        return keys.FLOW_PROGRESS + self.step.name

    def _watch_stop(self):
        def watch(key):
            try:
                self.kv.wait(key)
            except Exception:  # the application master went away; YARN ends us anyway
                return
            log(f"step {self.step.name}: stop requested")
            self.stop_requested.set()
        threading.Thread(target=watch, args=(keys.FLOW_STOP + self.step.name,), daemon=True).start()
        watch(keys.RUN_STOP)

    def main(self) -> int:
        name = self.step.name
        threading.Thread(target=self._prepare_output, name="prepare-output", daemon=True).start()
        threading.Thread(target=self._watch_stop, name="stop-watch", daemon=True).start()
        if self.kv.get(keys.RUN_STOP) is not None or self.kv.get(keys.FLOW_STOP + name) is not None:
            self.stop_requested.set()
        record = self.workdir / "recorded.json"
        record.unlink(missing_ok=True)
        os.environ[RECORD_ENV] = str(record)   # papermill's process and its kernel inherit these
        os.environ[ATTEMPT_ENV] = str(self.attempt)
        set_run = SetRun(self, 0, self.attempt)
        log(f"step {name} (attempt {self.attempt}): parameters {', '.join(set_run.parameters) or '(none)'}")
        result = set_run.execute()
        values: dict = {}
        if result["status"] == "succeeded":
            try:
                values = read_record(str(record))
            except ValueError as exc:
                result.update(status="failed", ename="RecordedValuesError", evalue=str(exc))
        log(f"step {name}: {result['status']} in {result['duration']}s"
            + (f" ({result['ename']}: {result['evalue']})" if result["status"] != "succeeded" else "")
            + (f"; recorded {', '.join(sorted(values))}" if values else ""))
        files = set_run.save(result)
        try:
            self.upload(files)
        except Exception as exc:
            result["upload_error"] = str(exc)
            log(f"step {name}: outputs not saved to the cluster: {exc}")
        result.update(step=name, values=values)
        self.kv[keys.FLOW_RESULT + name] = json.dumps(result).encode()
        return 0
