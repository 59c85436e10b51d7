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
from .dag import DONE, FAILED_STATES, downstream, goes_on, ready
from .job import Job, StepJob, expand_output
from .outputs import DEFAULT_OUTPUT, RUNS_INDEX, final_diagnostics
from .setrun import GRACE_SECONDS

if TYPE_CHECKING:
    import skein

__all__ = ["Coordinator", "main", "deadline", "ALLOCATION_TIMEOUT", "TIMEOUT_GRACE", "FINAL_STATUS", "SUMMARY_FILE"]

FINAL_STATUS = {"succeeded": "SUCCEEDED", "failed": "FAILED", "stopped": "KILLED"}
SUMMARY_FILE = "flow.json"
POLL = 1.0
#: After a stop, how long running steps have to save their output before their containers are killed.
STOP_GRACE = GRACE_SECONDS + 60
#: How long a step's container may wait for YARN to allocate it (a full queue, a node label or GPUs no node
#: has) before its attempt ends ``failed`` with ``NotAllocated`` (an infrastructure failure; retried if the
#: step has retries left).
ALLOCATION_TIMEOUT = 15 * 60
#: A running step with a ``timeout`` stops itself at its timeout; its container is killed if it still runs
#: this long after the timeout (a notebook hung while saving, a kernel that ignores the interrupt).
TIMEOUT_GRACE = STOP_GRACE
_FINAL_CONTAINER_STATES = ("SUCCEEDED", "FAILED", "KILLED")


def deadline(state: str, now: float, requested: float, running_since: float | None, timeout: int | None,
             stopping: bool) -> str | None:
    """What to do with a live step container in YARN ``state``, from pure times (monotonic seconds).

    None (leave it), ``"stopped"`` (a stop and it is not running yet: nothing to save), ``"not_allocated"``
    (waited :data:`ALLOCATION_TIMEOUT` for YARN) or ``"timed_out"`` (running past its ``timeout`` and
    :data:`TIMEOUT_GRACE`).

    >>> deadline("REQUESTED", now=1000, requested=0, running_since=None, timeout=None, stopping=False)
    'not_allocated'
    >>> deadline("RUNNING", now=1000, requested=0, running_since=0, timeout=None, stopping=True) is None
    True
    """
    if state == "RUNNING":
        if timeout and running_since is not None and now > running_since + timeout + TIMEOUT_GRACE:
            return "timed_out"
        return None
    if stopping:
        return "stopped"
    if now > requested + ALLOCATION_TIMEOUT:
        return "not_allocated"
    return None


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
        self.requested: dict[str, float] = {}    # running step -> when its container was requested (monotonic)
        self.running_since: dict[str, float] = {}  # running step -> when its container was seen RUNNING
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
        diagnostics = final_diagnostics(summary, rows, self.output, prefix="flow ")
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
        self.requested[name] = time.monotonic()
        self.running_since.pop(name, None)
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
        self.requested.pop(name, None)
        self.running_since.pop(name, None)
        status = result["status"]
        if status == "stopped" and not self.stopping:
            if self.kv.get(keys.RUN_STOP) is not None:  # the step saw the kill before this coordinator did
                self.stop("killed")
            else:  # stopped, yet nobody asked: a failure of the attempt (retried, or on_failure applies)
                status = "failed"
        row.update(finished=time.time(), output=result.get("output"), html=result.get("html"),
                   cell=result.get("cell"), ename=result.get("ename"), evalue=result.get("evalue"))
        row["duration"] = round(row["finished"] - row["started"], 2)
        # The log says which error and where, never its message (it may hold data); flow.json has it.
        where = f" in cell {result['cell'] + 1}" if isinstance(result.get("cell"), int) else ""
        log(f"step {name}: attempt {row['attempts']} {status}"
            + (f" ({result.get('ename')}{where})" if status != "succeeded" else ""))
        if status == "succeeded":
            row["status"] = "succeeded"
            self.values[name] = result.get("values") or {}
        elif self.stopping:
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
            elif row["status"] == "retrying":  # its failed attempt is in the row; no attempt runs
                row.update(status="cancelled", retry_at=None)
        self.retry_at.clear()
        self.watch_containers()  # containers not yet running are killed at once: they have nothing to save

    def _kill(self, name: str, container: str) -> None:
        try:
            self.app_client.kill_container(container)
        except Exception as exc:  # it may have ended on its own meanwhile
            log(f"step {name}: {container} not killed ({type(exc).__name__}); it may have ended")

    def watch_containers(self) -> None:
        """The deadlines of the steps' containers: allocation, a step's timeout, and a stop."""
        if not self.containers:
            return
        services = sorted({self.steps[name].service for name in self.containers})
        states = {c.id: str(c.state) for c in self.app_client.get_containers(services=services)}
        now = time.monotonic()
        for name, container in list(self.containers.items()):
            state = states.get(container)
            if self.containers.get(name) != container or state is None:  # ended: _result_of reads it
                continue
            if state == "RUNNING":
                self.running_since.setdefault(name, now)
            timeout = self.steps[name].run.timeout
            verdict = deadline(state, now, self.requested.get(name, now), self.running_since.get(name), timeout,
                               bool(self.stopping))
            if verdict == "timed_out":
                log(f"step {name}: still running {TIMEOUT_GRACE}s after its timeout; killing {container}")
                self._kill(name, container)
                self.attempt_ended(name, {"status": "timed_out", "ename": "Timeout", "evalue":
                                          f"killed {TIMEOUT_GRACE}s after its timeout of {timeout}s"})
            elif verdict == "stopped":
                self._kill(name, container)
                self.attempt_ended(name, {"status": "stopped", "ename": "RunStopped",
                                          "evalue": "not started: the flow was stopped"})
            elif verdict == "not_allocated":
                log(f"step {name}: {container} not allocated within {ALLOCATION_TIMEOUT}s ({state}); killing it")
                self._kill(name, container)
                self.attempt_ended(name, {"status": "failed", "ename": "NotAllocated", "evalue":
                                          f"YARN did not allocate its container within {ALLOCATION_TIMEOUT}s "
                                          "(a full queue, a node label or resources no node has)"})

    # -- the loop

    def step_once(self) -> bool:
        """One round: results, stops, new starts. False once the flow is over."""
        if not self.stopping and self.kv.get(keys.RUN_STOP) is not None:
            log("stop requested (skein-jupyter kill)")
            self.stop("killed")
        for name in list(self.containers):
            if name not in self.containers:  # ended meanwhile (killed by a stop another result caused)
                continue
            result = self._result_of(name)
            if result is not None:
                self.attempt_ended(name, result)
        self.watch_containers()
        if self.stopping and self.containers and time.monotonic() > (self.stop_deadline or 0):
            for name, container in list(self.containers.items()):
                if self.containers.get(name) != container:
                    continue
                log(f"step {name}: did not stop within {STOP_GRACE}s; killing {container}")
                self._kill(name, container)
                self.attempt_ended(name, {"status": "stopped", "ename": "RunStopped",
                                          "evalue": "killed after a stop: its last checkpoint is kept"})
        if not self.stopping:
            states = {name: row["status"] for name, row in self.rows.items()}
            due = [name for name, at in self.retry_at.items() if at <= time.monotonic()]
            for name in due + ready(self.graph, states):
                if self.stopping or len(self.containers) >= self.flow.parallel:
                    break   # a step that failed to start may have stopped the flow
                if self.rows[name]["status"] not in ("pending", "retrying") or name in self.containers:
                    continue
                self.start_step(name)
        self.publish()
        return self.waiting()

    def waiting(self) -> bool:
        """Whether the flow goes on: a live container, a step waiting to retry, or a step ready to start."""
        states = {name: row["status"] for name, row in self.rows.items()}
        return goes_on(self.graph, states, bool(self.containers), bool(self.retry_at), bool(self.stopping))

    def main(self) -> int:
        self.prepare()
        log(f"flow {self.job.name}: {len(self.graph)} step(s), at most {self.flow.parallel} at a time; "
            f"outputs in {self.output}")
        while self.step_once():
            time.sleep(POLL)
        for name, row in self.rows.items():  # pending steps that can never start: upstream did not succeed
            if row["status"] not in DONE:
                row.update(status="skipped", evalue="a step it depends on did not succeed")
        self.publish()
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
        if step is None:
            fail(app_client, f"the flow's coordinator failed: {type(exc).__name__}: {exc}")
        else:  # the step's failure is its attempt's result, for the coordinator: not the application's error
            log(f"step {step.name} failed: {type(exc).__name__}")
            _report_step_failure(app_client, step, exc)
        raise


def _report_step_failure(app_client: skein.ApplicationClient, step: StepJob, exc: Exception) -> None:
    try:
        attempt = int(app_client.kv.get(keys.FLOW_ATTEMPT + step.name, b"0"))
        app_client.kv[keys.FLOW_RESULT + step.name] = json.dumps(
            {"status": "failed", "ename": type(exc).__name__, "evalue": f"the step's container failed: {exc}",
             "attempt": attempt, "cell": None, "output": None, "html": None, "step": step.name,
             "values": {}}).encode()
    except Exception:  # the store is best effort here; the coordinator sees the container lost
        pass
