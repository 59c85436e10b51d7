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
import time
from typing import TYPE_CHECKING

from . import clusterfs, keys
from .batch import Worker
from .common import log
from .job import Job, StepJob
from .setrun import SetRun

if TYPE_CHECKING:
    import skein

__all__ = ["StepWorker", "RECORD_ENV", "ATTEMPT_ENV", "MAX_RECORD_BYTES", "read_record", "check_inputs",
           "KEY_TIMEOUT"]

#: The variable naming the file a step's notebook writes its recorded values to.
RECORD_ENV = "SKEIN_JUPYTER_RECORD"
#: The variable holding the number of the attempt (from 1).
ATTEMPT_ENV = "SKEIN_JUPYTER_ATTEMPT"
#: Recorded values travel through the key-value store: keep them small.
MAX_RECORD_BYTES = 64 * 1024
#: The coordinator writes an attempt's number and inputs before it requests the container: they are there
#: at once; this is only a bound on a store that does not answer.
KEY_TIMEOUT = 120.0


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
    except RecursionError:
        raise ValueError("the recorded values are nested too deeply; record a flat mapping of names to values"
                         ) from None
    except ValueError as exc:
        raise ValueError(f"the recorded values are not JSON ({exc}); write them with json.dump") from None
    if not isinstance(values, dict):
        raise ValueError(f"the recorded values are a JSON {type(values).__name__}, not an object; record a "
                         "mapping of names to values")
    return values


def check_inputs(raw: bytes | None, expected: list[str]) -> dict:
    """The step's inputs from the key-value store's ``raw`` value; ValueError unless one value per input.

    >>> check_inputs(b'{"n": 3}', ["n"])
    {'n': 3}
    >>> check_inputs(b'[]', ["n"])
    Traceback (most recent call last):
    ...
    ValueError: the step's inputs are not a JSON object
    """
    if raw is None:
        raise ValueError(f"the step's inputs were not written within {KEY_TIMEOUT:.0f}s")
    try:
        inputs = json.loads(raw)
    except (ValueError, RecursionError):
        raise ValueError("the step's inputs are not JSON") from None
    if not isinstance(inputs, dict):
        raise ValueError("the step's inputs are not a JSON object")
    if sorted(inputs) != sorted(expected):
        raise ValueError(f"the step's inputs are {', '.join(sorted(inputs)) or 'none'}, not "
                         f"{', '.join(sorted(expected)) or 'none'}")
    return inputs


def _get(kv, key: str, timeout: float = KEY_TIMEOUT) -> bytes | None:
    """The value of ``key``, waiting at most ``timeout`` seconds for it; None if it never came."""
    end = time.monotonic() + timeout
    while True:
        value = kv.get(key)
        if value is not None or time.monotonic() > end:
            return value
        time.sleep(0.5)


class StepWorker(Worker):
    """The container of one attempt at ``step``."""

    def __init__(self, job: Job, app_client: skein.ApplicationClient, step: StepJob) -> None:
        self.step = step
        kv = app_client.kv
        attempt = _get(kv, keys.FLOW_ATTEMPT + step.name)
        if attempt is None:
            raise RuntimeError(f"no attempt number for step {step.name} within {KEY_TIMEOUT:.0f}s")
        self.attempt = int(attempt)
        #: Why the attempt cannot run (bad inputs), reported as its result by main(); None if it can.
        self.refused: str | None = None
        try:
            inputs = check_inputs(_get(kv, keys.FLOW_INPUTS + step.name) if step.inputs else
                                  kv.get(keys.FLOW_INPUTS + step.name, b"{}"), list(step.inputs))
        except ValueError as exc:
            self.refused, inputs = str(exc), {}
        run = dataclasses.replace(step.run, parameters={**step.run.parameters, **inputs})
        super().__init__(dataclasses.replace(job, run=run), app_client)

    def _output_dir(self):
        """The step's directory under the flow's output directory (the coordinator made it)."""
        self.creates_output = False
        output = _get(self.kv, keys.RUN_OUTPUT)
        if output is None:
            raise RuntimeError(f"the flow's output directory was not published within {KEY_TIMEOUT:.0f}s")
        return clusterfs.join(output.decode(), self.step.name)

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

    def publish_result(self, result: dict) -> None:
        self.kv[keys.FLOW_RESULT + self.step.name] = json.dumps(result).encode()

    def main(self) -> int:
        name = self.step.name
        if self.refused:
            log(f"step {name} (attempt {self.attempt}): refused: {self.refused}")
            self.publish_result({"status": "failed", "ename": "InputsError", "evalue": self.refused,
                                 "attempt": self.attempt, "cell": None, "output": None, "html": None,
                                 "step": name, "values": {}})
            return 0
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
        # Which error and where, never its message (it may hold data): the message is in flow.json.
        where = f" in cell {result['cell'] + 1}" if isinstance(result.get("cell"), int) else ""
        log(f"step {name}: {result['status']} in {result['duration']}s"
            + (f" ({result['ename']}{where})" if result["status"] != "succeeded" else "")
            + (f"; recorded {', '.join(sorted(values))}" if values else ""))
        files = set_run.save(result)
        try:
            self.upload(files)
        except Exception as exc:
            result["upload_error"] = str(exc)
            log(f"step {name}: outputs not saved to the cluster: {exc}")
        result.update(step=name, values=values)
        self.publish_result(result)
        return 0
