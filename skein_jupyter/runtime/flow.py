"""A flow's coordinator: starts its steps' containers as the graph allows, and ends the application.

The ``flow`` service's one container. Each step is a Skein service of its
own with no instance at first; the coordinator adds a container of it for each
attempt (:mod:`.step` runs there), at most ``parallel`` at a time, once every
step it depends on has succeeded. It follows them through their results in
the key-value store and the containers' states (a container gone without a
result is a lost attempt), retries a failed attempt after the step's
``retry_interval`` while it has retries left, applies ``on_failure`` (``stop``:
running steps are stopped and keep their partial output, nothing new starts;
``continue``: the steps that depend on it are skipped), and honours
``skein-jupyter kill`` (``run.stop``). Everything it knows is published as
``flow.state``. At the end, :meth:`Coordinator.end` writes ``flow.json`` beside
the outputs and ends the application SUCCEEDED, FAILED or KILLED.
"""
from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any

from . import clusterfs, keys
from .common import connect, fail, log
from .dag import DONE, FAILED_STATES, downstream, ready
from .job import Job, StepJob, expand_output
from .outputs import DEFAULT_OUTPUT, RUNS_INDEX
from .setrun import GRACE_SECONDS

if TYPE_CHECKING:
    import skein

__all__ = ["Coordinator", "main", "FINAL_STATUS", "SUMMARY_FILE"]

FINAL_STATUS = {"succeeded": "SUCCEEDED", "failed": "FAILED", "stopped": "KILLED"}
SUMMARY_FILE = "flow.json"
POLL = 1.0
#: After a stop, how long running steps have to save their output before their containers are killed.
STOP_GRACE = GRACE_SECONDS + 60
_FINAL_CONTAINER_STATES = ("SUCCEEDED", "FAILED", "KILLED")


class Coordinator:
    """The coordinator of the flow ``job`` in the application of ``app_client``."""

    def __init__(self, job: Job, app_client: skein.ApplicationClient) -> None:
        assert job.flow is not None
        self.job, self.flow, self.app_client, self.kv = job, job.flow, app_client, app_client.kv
        self.app_id = os.environ.get("SKEIN_APPLICATION_ID", "")
        self.graph = self.flow.graph()
        self.steps = {step.name: step for step in self.flow.steps}
        self.rows: dict[str, dict[str, Any]] = {
            name: {"status": "pending", "attempts": 0, "started": None, "finished": None, "duration": 0,
                   "output": None, "html": None, "cell": None, "ename": None, "evalue": None, "retry_at": None}
            for name in self.graph}
        self.values: dict[str, dict] = {}
        self.containers: dict[str, str] = {}     # running step -> its container's id
        self.retry_at: dict[str, float] = {}     # retrying step -> when (monotonic)
        self.stopping: str | None = None         # "killed" or "failed"
        self.stop_deadline: float | None = None
        self.started = time.time()
        self.output = expand_output(self.flow.output or DEFAULT_OUTPUT, job.user, self.app_id, job.name)
        self.workdir = os.path.join(os.getcwd(), "outputs")
        os.makedirs(self.workdir, exist_ok=True)

    # -- start and end

    def prepare(self) -> None:
        """The output directory and the application's index record (what ``status``/``fetch`` read later)."""
        index_dir = RUNS_INDEX.format(user=self.job.user)
        clusterfs.mkdir(self.output, index_dir, share=self.flow.share)
        record = os.path.join(self.workdir, f"{self.app_id}.json")
        with open(record, "w") as f:
            json.dump({"app_id": self.app_id, "kind": "flow", "name": self.job.name, "output": self.output,
                       "steps": list(self.graph), "summary": clusterfs.join(self.output, SUMMARY_FILE)}, f)
        clusterfs.put([record], clusterfs.join(index_dir, os.path.basename(record)), share=self.flow.share)
        self.kv[keys.RUN_OUTPUT] = self.output.encode()
        self.publish()

    def publish(self) -> None:
        self.kv[keys.FLOW_STATE] = json.dumps(self.rows).encode()

    def summary(self) -> dict:
        counts: dict[str, int] = {}
        for row in self.rows.values():
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        status = ("stopped" if self.stopping == "killed"
                  else "succeeded" if counts.get("succeeded") == len(self.rows) else "failed")
        return {"status": status, "steps": len(self.rows), "counts": counts, "output": self.output,
                "duration": round(time.time() - self.started, 2),
                "table": clusterfs.join(self.output, SUMMARY_FILE)}

    def end(self) -> dict:
        """The one place where the flow ends: summary written and published, then the application ends.

        Whatever should happen when a flow ends (a notification) belongs here, before the shutdown.
        """
        summary = self.summary()
        rows = [{"step": name, **row, "values": self.values.get(name, {})} for name, row in self.rows.items()]
        path = os.path.join(self.workdir, SUMMARY_FILE)
        with open(path, "w") as f:
            json.dump({"summary": summary, "steps": rows}, f, indent=2)
        self.kv[keys.RUN_SUMMARY] = json.dumps(summary).encode()
        try:
            clusterfs.put([path], self.output + "/", share=self.flow.share)
        except Exception as exc:
            log(f"summary not saved to the cluster: {exc}")
        try:
            from .notify import notify_end

            notify_end(self, summary, rows)
        except Exception as exc:  # telling is never worth changing how the flow ended
            log(f"notification: not sent ({type(exc).__name__})")
        counts = ", ".join(f"{n} {status}" for status, n in sorted(summary["counts"].items()))
        diagnostics = f"flow {summary['status']}: {counts}; outputs in {self.output}"
        log(diagnostics)
        self.app_client.shutdown(FINAL_STATUS[summary["status"]], diagnostics)
        return summary

    # -- steps

    def _inputs(self, step: StepJob) -> dict:
        """The step's input parameters from upstream values; KeyError naming what is missing."""
        out = {}
        for parameter, source in step.inputs.items():
            origin, key = source.split(".", 1)
            recorded = self.values.get(origin, {})
            if key not in recorded:
                raise KeyError(f"step {origin} recorded no value {key!r} (it recorded: "
                               f"{', '.join(sorted(recorded)) or 'nothing'}); record it in {origin}'s notebook")
            out[parameter] = recorded[key]
        return out

    def start_step(self, name: str) -> None:
        step, row = self.steps[name], self.rows[name]
        try:
            inputs = self._inputs(step)
        except KeyError as exc:
            row.update(status="failed", ename="MissingInput", evalue=str(exc.args[0]), finished=time.time())
            log(f"step {name}: cannot start: {exc.args[0]}")
            self.step_failed(name)
            return
        row["attempts"] += 1
        self.kv[keys.FLOW_INPUTS + name] = json.dumps(inputs).encode()
        self.kv.discard(keys.FLOW_RESULT + name)
        self.kv[keys.FLOW_ATTEMPT + name] = str(row["attempts"]).encode()
        container = self.app_client.add_container(step.service)
        self.containers[name] = container.id
        self.retry_at.pop(name, None)
        row.update(status="running", started=row["started"] or time.time(), retry_at=None)
        log(f"step {name}: attempt {row['attempts']} in {container.id}"
            + (f"; inputs {', '.join(inputs)}" if inputs else ""))

    def _result_of(self, name: str) -> dict | None:
        """The result of the running attempt of ``name``, or None while it runs."""
        value = self.kv.get(keys.FLOW_RESULT + name)
        if value is not None:
            result = json.loads(value)
            if result.get("attempt") == self.rows[name]["attempts"]:
                return result
        container = self.containers[name]
        gone = self.app_client.get_containers(services=[self.steps[name].service], states=_FINAL_CONTAINER_STATES)
        if not any(c.id == container for c in gone):
            return None
        value = self.kv.get(keys.FLOW_RESULT + name)  # it may have published just before it ended
        if value is not None and json.loads(value).get("attempt") == self.rows[name]["attempts"]:
            return json.loads(value)
        return {"status": "stopped" if self.stopping else "failed", "ename": "ContainerLost",
                "evalue": f"container {container} ended without a result (see its log)", "cell": None,
                "output": None, "html": None, "values": {}}

    def attempt_ended(self, name: str, result: dict) -> None:
        step, row = self.steps[name], self.rows[name]
        self.containers.pop(name)
        status = result["status"]
        row.update(finished=time.time(), output=result.get("output"), html=result.get("html"),
                   cell=result.get("cell"), ename=result.get("ename"), evalue=result.get("evalue"))
        row["duration"] = round(row["finished"] - row["started"], 2)
        log(f"step {name}: attempt {row['attempts']} {status}"
            + (f" ({result.get('ename')}: {result.get('evalue')})" if status != "succeeded" else ""))
        if status == "succeeded":
            row["status"] = "succeeded"
            self.values[name] = result.get("values") or {}
        elif self.stopping or status == "stopped":
            row["status"] = "stopped"
        elif row["attempts"] <= step.retries:
            row.update(status="retrying", retry_at=time.time() + step.retry_interval)
            self.retry_at[name] = time.monotonic() + step.retry_interval
            log(f"step {name}: retrying in {step.retry_interval}s ({row['attempts']} of "
                f"{step.retries + 1} attempts made)")
        else:
            row["status"] = status if status in FAILED_STATES else "failed"
            self.step_failed(name)

    def step_failed(self, name: str) -> None:
        """A step failed for good: skip its dependents (``continue``) or stop the flow (``stop``)."""
        if self.steps[name].on_failure == "continue":
            for other in downstream(self.graph, [name]):
                if self.rows[other]["status"] in ("pending", "retrying"):
                    self.rows[other].update(status="skipped", evalue=f"{name} failed")
                    self.retry_at.pop(other, None)
            return
        log(f"step {name} failed (on_failure: stop): stopping the flow")
        self.stop("failed")

    def stop(self, why: str) -> None:
        if self.stopping:
            return
        self.stopping = why
        self.stop_deadline = time.monotonic() + STOP_GRACE
        for name in self.containers:
            self.kv[keys.FLOW_STOP + name] = why.encode()
        for name, row in self.rows.items():
            if row["status"] == "pending":
                row.update(status="cancelled", evalue=f"not started: the flow was {why.replace('killed', 'stopped')}")
            elif row["status"] == "retrying":
                row["status"] = "stopped" if why == "killed" else "failed"
        self.retry_at.clear()

    # -- the loop

    def step_once(self) -> bool:
        """One round: results, stops, new starts. False once the flow is over."""
        if not self.stopping and self.kv.get(keys.RUN_STOP) is not None:
            log("stop requested (skein-jupyter kill)")
            self.stop("killed")
        for name in list(self.containers):
            result = self._result_of(name)
            if result is not None:
                self.attempt_ended(name, result)
        if self.stopping and self.containers and time.monotonic() > (self.stop_deadline or 0):
            for name, container in list(self.containers.items()):
                log(f"step {name}: did not stop within {STOP_GRACE}s; killing {container}")
                self.app_client.kill_container(container)
                self.attempt_ended(name, {"status": "stopped", "ename": "RunStopped",
                                          "evalue": "killed after a stop: its last checkpoint is kept"})
        if not self.stopping:
            states = {name: row["status"] for name, row in self.rows.items()}
            due = [name for name, at in self.retry_at.items() if at <= time.monotonic()]
            for name in due + ready(self.graph, states):
                if len(self.containers) >= self.flow.parallel:
                    break
                self.start_step(name)
        self.publish()
        waiting = any(row["status"] in ("pending", "retrying") for row in self.rows.values())
        return bool(self.containers) or (waiting and not self.stopping)

    def main(self) -> int:
        self.prepare()
        log(f"flow {self.job.name}: {len(self.graph)} step(s), at most {self.flow.parallel} at a time; "
            f"outputs in {self.output}")
        while self.step_once():
            time.sleep(POLL)
        for name, row in self.rows.items():  # pending steps that can never start: upstream did not succeed
            if row["status"] not in DONE:
                row.update(status="skipped", evalue="a step it depends on did not succeed")
        self.end()
        return 0


def _my_step(job: Job) -> StepJob | None:
    """The step this container runs (by its service's name), or None for the coordinator."""
    service = os.environ.get("SKEIN_CONTAINER_ID", "").rsplit("_", 1)[0]
    assert job.flow is not None
    return next((step for step in job.flow.steps if step.service == service), None)


def main(job: Job) -> int:
    os.umask(0o077)
    app_client = connect()
    if app_client is None:
        return 1
    step = _my_step(job)
    try:
        if step is not None:
            from .step import StepWorker

            return StepWorker(job, app_client, step).main()
        return Coordinator(job, app_client).main()
    except Exception as exc:
        what = f"step {step.name}" if step is not None else "the flow's coordinator"
        fail(app_client, f"{what} failed: {type(exc).__name__}: {exc}")
        raise
