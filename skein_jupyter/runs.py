"""Papermill runs, sweeps and flows on YARN: submit, follow, inspect, stop and fetch them.

What can be checked before submitting is checked before submitting (see
:mod:`skein_jupyter.preflight`). After that, results come from the Skein
key-value store while the application runs, and from the summary the
runtime writes next to the outputs once it has ended.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .applications import FINAL_STATES, get_report
from .exceptions import ApplicationError, UsageError
from .kinds import APP_TAG, KINDS, kind_of_tags
from .runtime.flow import STOP_GRACE
from .launch import kill_quietly, submit
from .outcome import RunOutcome, raise_for_outcome
from .preflight import Preflight, check_kernel, check_notebook, output_base, read_notebook
from .progress import Progress
from .runtime import keys
from .runtime.batch import RUNS_INDEX

if TYPE_CHECKING:
    import skein
    import skein.model

    from .hdfs import HadoopFS
    from .launch import Submission
    from .recipe import Recipe

__all__ = ["RunOutcome", "raise_for_outcome", "Preflight", "read_notebook", "check_notebook", "check_kernel",
           "output_base", "start", "follow", "status", "kill", "fetch", "RUN_TAGS", "KILL_TIMEOUT",
           "FLOW_KILL_TIMEOUT"]

RUN_TAGS = (KINDS["run"].tag, KINDS["sweep"].tag, KINDS["flow"].tag)
#: How long ``kill`` lets a run or sweep save its output before killing it outright (seconds).
KILL_TIMEOUT = 120
#: The same for a flow: its coordinator gives running steps STOP_GRACE, then saves flow.json and notifies.
FLOW_KILL_TIMEOUT = max(KILL_TIMEOUT, STOP_GRACE + 90)
POLL = 0.5
#: Once the runtime published its summary, the application ends within a second or two: watch it closely
#: (for POLL_ENDING_FOR seconds, then at POLL again).
POLL_ENDING = 0.1
POLL_ENDING_FOR = 5.0


def start(recipe: Recipe, client: skein.Client, progress: Progress | None = None,
          preflight: Preflight | None = None) -> Submission:
    """Check, prepare and submit a run or sweep; returns the :class:`~skein_jupyter.launch.Submission`.

    Nothing is submitted unless every check passes. ``preflight``: a
    :class:`Preflight` of ``recipe`` started earlier (one is started here if not).
    """
    progress = progress or Progress.quiet()
    if recipe.kind == "flow":
        from . import flows

        return flows.start(recipe, client, progress)
    preflight = preflight or Preflight(recipe)
    return submit(recipe, client, progress, checks=preflight.check, early_checks=preflight.check_early)


# ----------------------------------------------------------------- following

def _in_order(by_set):
    return [by_set[i] for i in sorted(by_set)]


def _live_state(app_client):
    """Progress, results (by set), summary, output directory and error from the key-value store, in one call."""
    values = app_client.kv.get_prefix("skein-jupyter.")
    out = {"progress": {}, "results": {}}
    for key, value in values.items():
        for name, prefix in (("progress", keys.RUN_PROGRESS), ("results", keys.RUN_RESULT)):
            if key.startswith(prefix):
                out[name][int(key[len(prefix):])] = json.loads(value)
    out["summary"] = json.loads(values[keys.RUN_SUMMARY]) if keys.RUN_SUMMARY in values else None
    out["output"] = values[keys.RUN_OUTPUT].decode() if keys.RUN_OUTPUT in values else None
    out["error"] = values[keys.ERROR].decode() if keys.ERROR in values else None
    return out


def _bar(done, total, width=20):
    filled = int(width * done / total) if total else 0
    return "[" + "#" * filled + "." * (width - filled) + "]"


def progress_line(kind, n_sets, state):
    """One line saying where a run or sweep stands."""
    results, progress = state["results"], state["progress"]
    if kind == "run" or n_sets == 1:
        p = progress.get(0)
        if not p or not p.get("cells"):
            return "starting the kernel"
        line = f"{_bar(p['done'], p['cells'])} cell {min(p['done'] + 1, p['cells'])}/{p['cells']}"
        return line + (f": {p['source'][:60]}" if p.get("source") else "")
    failed = sum(1 for r in results.values() if r["status"] != "succeeded")
    running = len([i for i in progress if i not in results])
    return (f"{_bar(len(results), n_sets)} {len(results)}/{n_sets} sets done"
            + (f" ({failed} not succeeded)" if failed else "") + f", {running} running")


def _kind(report):
    kind = kind_of_tags(report.tags)
    if kind in ("run", "sweep", "flow"):
        return kind
    raise UsageError(f"{report.id} ({report.name}) is not a skein-jupyter run, sweep or flow; "
                     "see `yarn application -list`")


def _report(client, app_id):
    return get_report(client, app_id, "yarn application -list -appStates ALL")


def _fs_of(user):
    """The cluster filesystem as ``user``, whose outputs are private: yourself, or ``user`` as a proxy."""
    from .hdfs import HadoopFS
    from .identity import hadoop_user

    return HadoopFS(proxy_user=user if user and user != hadoop_user() else None)


def _saved_summary(app_id, user, fs=None):
    """The summary the runtime saved on the cluster filesystem, or None (also when it is not readable here)."""
    from .hdfs import HdfsError

    fs = fs or _fs_of(user)
    try:
        index = fs.cat(f"{RUNS_INDEX.format(user=user)}/{app_id}.json")
        if not index:
            return None, None
        record = json.loads(index)
        saved = fs.cat(record["summary"])
        return record, (json.loads(saved) if saved else None)
    except (HdfsError, UsageError, ValueError, KeyError):  # UsageError: permission denied
        return None, None


def _outcome_from_saved(report, kind, saved):
    if kind == "flow":
        from .flows import outcome_from_saved

        return outcome_from_saved(report, saved)
    if not saved:
        return RunOutcome(report.id, kind, str(report.state), str(report.final_status),
                          diagnostics=report.diagnostics)
    if kind == "sweep":
        return RunOutcome(report.id, kind, str(report.state), str(report.final_status), saved["summary"],
                          saved["sets"], report.diagnostics)
    result = {k: v for k, v in saved.items() if k != "summary"}
    return RunOutcome(report.id, kind, str(report.state), str(report.final_status), saved["summary"],
                      [result], report.diagnostics)


def follow(client: skein.Client, app_id: str, progress: Progress | None = None,
           timeout: float | None = None) -> RunOutcome:
    """Wait for a run or sweep to end, showing its progress; return its :class:`RunOutcome`.

    Parameters
    ----------
    timeout : float, optional
        Give up waiting (the run goes on) after this many seconds.
    """
    progress = progress or Progress.quiet()
    report = _report(client, app_id)
    kind = _kind(report)
    if kind == "flow":
        from . import flows

        return flows.follow(client, app_id, progress, timeout)
    state: dict = {"progress": {}, "results": {}, "summary": None, "output": None, "error": None, "sets": None,
                   "summary_at": None, "final": False}

    def poll(app_client):
        if state["final"]:  # the results were read again once after the summary: nothing more to read
            return
        if state["summary_at"] is not None:
            state["final"] = True
        if state["sets"] is None:
            state["sets"] = _n_sets(app_client)
        current = _live_state(app_client)
        state["progress"] = current["progress"]
        state["results"].update(current["results"])
        for key in ("summary", "output", "error"):
            state[key] = current[key] or state[key]
        if state["summary"] is not None and state["summary_at"] is None:
            state["summary_at"] = time.monotonic()
        progress.status(progress_line(kind, state["sets"], state))

    def interval():
        ending = state["summary_at"] is not None and time.monotonic() - state["summary_at"] < POLL_ENDING_FOR
        return POLL_ENDING if ending else POLL

    report = watch(client, app_id, progress, poll, timeout, interval=interval)
    if state["summary"] is not None:
        return RunOutcome(app_id, kind, str(report.state), str(report.final_status), state["summary"],
                          _in_order(state["results"]), report.diagnostics)
    _, saved = _saved_summary(app_id, report.user)
    outcome = _outcome_from_saved(report, kind, saved)
    if not outcome.summary:
        outcome.results = _in_order(state["results"])
        if state["error"]:
            outcome.diagnostics = state["error"]
    return outcome


def watch(client: skein.Client, app_id: str, progress: Progress,
          poll: Callable[[skein.ApplicationClient], None], timeout: float | None = None,
          interval: Callable[[], float] | None = None) -> skein.model.ApplicationReport:
    """Wait for an application to end, saying when its state changes; ``poll(app_client)`` while it runs.

    ``poll`` may raise while the master starts or shuts down: it is called again at the next round,
    ``interval()`` seconds later (:data:`POLL` if not given).
    Returns the final report; ApplicationError after ``timeout`` seconds, the application going on.
    """
    deadline = time.monotonic() + timeout if timeout else None
    app_client, last_state = None, None
    while True:
        report = client.application_report(app_id)
        if str(report.state) != last_state:
            last_state = str(report.state)
            progress.step(f"{app_id} is {last_state}"
                          + (" (waiting for YARN to allocate)" if last_state == "ACCEPTED" else ""))
        if last_state in FINAL_STATES:
            progress.done()
            return report
        if last_state == "RUNNING":
            try:
                app_client = app_client or client.connect(app_id, wait=False)
                poll(app_client)
            except Exception:  # the master is starting or has just shut down
                pass
        if deadline and time.monotonic() > deadline:
            progress.done()
            raise ApplicationError(f"{app_id} is still {last_state} after {timeout:g}s; it goes on: follow it "
                                   f"with `skein-jupyter status {app_id}`, stop it with `skein-jupyter kill {app_id}`")
        time.sleep(interval() if interval is not None else POLL)


def _n_sets(app_client):
    """How many sets the application runs, as its runtime published it.

    Raises LookupError while no worker has started yet (callers poll again).
    """
    value = app_client.kv.get(keys.RUN_SETS)
    if value is None:
        raise LookupError("the run's workers have not started yet")
    return int(value)


def start_and_follow(recipe, client, progress=None, detach=False, preflight=None):
    """Submit, then follow to the end (unless ``detach``); Ctrl-C stops the run and keeps its output."""
    progress = progress or Progress.quiet()
    submission = start(recipe, client, progress, preflight)
    if detach:
        return submission, None
    try:
        return submission, follow(client, submission.app_id, progress)
    except KeyboardInterrupt:
        progress.done()
        progress.step(f"interrupted: stopping {submission.app_id} and saving its output")
        kill(client, submission.app_id)
        raise


# ----------------------------------------------------------------- status, kill, fetch

def status(client: skein.Client, app_id: str) -> tuple[RunOutcome, dict]:
    """Where a run, sweep or flow stands: while it runs, from the key-value store; after, from its summary."""
    report = _report(client, app_id)
    kind = _kind(report)
    state = str(report.state)
    if state == "RUNNING" and kind == "flow":
        from .flows import live_status

        try:
            return live_status(client, app_id, report)
        except Exception:  # shutting down right now: fall through to what it saved
            report = client.application_report(app_id)
    elif state == "RUNNING":
        try:
            app_client = client.connect(app_id, wait=False)
            current = _live_state(app_client)
            n_sets = _n_sets(app_client)
            outcome = RunOutcome(app_id, kind, state, str(report.final_status), current["summary"],
                                 _in_order(current["results"]))
            return outcome, {"progress": _in_order(current["progress"]),
                             "line": progress_line(kind, n_sets, current), "output": current["output"],
                             "sets": n_sets}
        except Exception:  # shutting down right now: fall through to what it saved
            report = client.application_report(app_id)
    if str(report.state) not in FINAL_STATES:
        return RunOutcome(app_id, kind, str(report.state), str(report.final_status)), {}
    record, saved = _saved_summary(app_id, report.user)
    outcome = _outcome_from_saved(report, kind, saved)
    return outcome, {"output": (record or {}).get("output"), "sets": (record or {}).get("sets")}


def kill(client: skein.Client, app_id: str, timeout: float | None = None) -> skein.model.ApplicationReport:
    """Stop a run, sweep or flow: running sets (steps) stop and save their output; the application ends KILLED.

    ``timeout``: how long it may take before it is killed outright; by default :data:`KILL_TIMEOUT`, or
    :data:`FLOW_KILL_TIMEOUT` for a flow (its steps' grace, then its summary and notification).
    Any other skein-jupyter application is killed outright.
    """
    from .applications import wait_for_final_state

    report = _report(client, app_id)
    if APP_TAG not in set(report.tags):
        raise UsageError(f"{app_id} ({report.name}) is not a skein-jupyter application; kill it with "
                         f"`yarn application -kill {app_id}`")
    if str(report.state) in FINAL_STATES:
        raise UsageError(f"{app_id} has already ended ({report.state}, {report.final_status}); "
                         "nothing to kill")
    if str(report.state) == "RUNNING" and set(report.tags) & set(RUN_TAGS):
        client.connect(app_id, wait=False).kv[keys.RUN_STOP] = b"skein-jupyter kill"
        if timeout is None:
            timeout = FLOW_KILL_TIMEOUT if kind_of_tags(report.tags) == "flow" else KILL_TIMEOUT
        try:
            return wait_for_final_state(client, app_id, timeout)
        except ApplicationError:
            pass  # it did not stop in time: kill it; its last checkpoint stays
    kill_quietly(client, app_id)
    return wait_for_final_state(client, app_id, 60)


def fetch(client: skein.Client, app_id: str, directory: str | os.PathLike[str] | None = None,
          fs: HadoopFS | None = None) -> list[str]:
    """Download a run's output notebooks, HTML and summary into ``directory`` (``./<app_id>``).

    Returns
    -------
    list of str
        The local files.
    """
    from pathlib import Path

    report = _report(client, app_id)
    kind = _kind(report)
    fs = fs or _fs_of(report.user)
    record, saved = _saved_summary(app_id, report.user, fs)
    if record is None:
        first = "its coordinator started" if kind == "flow" else "its first set started"
        raise ApplicationError(f"{app_id} saved no outputs (it ended before {first}); "
                               f"see `skein-jupyter logs {app_id}`")
    outcome = _outcome_from_saved(report, kind, saved)
    remote = [record["summary"]] if saved else []
    if kind == "flow":  # each step's outputs are a directory of their own
        remote = [record["output"].rstrip("/") + "/*"]
    elif outcome.results:
        remote += [r[k] for r in outcome.results for k in ("output", "html") if r.get(k)]
        if kind == "sweep":
            remote.append(record["summary"][: -len(".json")] + ".csv")
    else:  # still running or hard-killed: whatever is in the output directory
        remote = [record["output"].rstrip("/") + "/*"]
    target = Path(directory or app_id)
    target.mkdir(parents=True, exist_ok=True)
    fs.get(remote, target)
    return sorted(str(p) for p in target.iterdir())
