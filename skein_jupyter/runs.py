"""Papermill runs and sweeps on YARN: check, submit, follow, inspect, stop and fetch them.

What can be checked before submitting is checked before submitting: the
input notebook (is it one, does it have a ``parameters`` cell when given
parameters), the kernel (does the environment have it) and the output
directory (can you write there). After that, results come from the Skein
key-value store while the application runs, and from the summary the
runtime writes next to the outputs once it has ended.
"""
import concurrent.futures
import dataclasses
import json
import os
import time

from .applications import FINAL_STATES, get_report
from .exceptions import ApplicationError, UsageError
from .launch import check_environment_packages, kill_quietly, submit
from .progress import Progress
from .runtime import keys
from .runtime.batch import DEFAULT_OUTPUT, RUNS_INDEX

__all__ = ["RunOutcome", "Preflight", "read_notebook", "check_notebook", "check_kernel", "output_base", "start",
           "follow", "status", "kill", "fetch", "RUN_TAGS"]

RUN_TAGS = ("skein-jupyter-run", "skein-jupyter-sweep")
POLL = 0.5


@dataclasses.dataclass
class RunOutcome:
    """How a run or sweep ended (or stands): the application's state and the runtime's results."""

    app_id: str
    kind: str
    state: str
    final_status: str
    summary: dict = None          # the runtime's summary; None if it never got that far
    results: list = dataclasses.field(default_factory=list)
    diagnostics: str = ""

    @property
    def status(self):
        if self.summary:
            return self.summary["status"]
        if self.state in FINAL_STATES:
            return "killed" if self.state == "KILLED" else "failed"
        return self.state.lower()

    @property
    def succeeded(self):
        return self.status == "succeeded"

    def to_dict(self):
        return {**dataclasses.asdict(self), "status": self.status}


# ----------------------------------------------------------------- checks before submitting

def read_notebook(location, fs=None):
    """The input notebook as JSON; ``location`` is a local path or an ``hdfs://`` URL.

    Raises
    ------
    UsageError
        Missing, unreadable, or not a Jupyter notebook (nbformat 4).
    """
    if "://" in location:
        from .hdfs import HadoopFS

        fs = fs or HadoopFS()
        if not fs.exists(location):
            raise UsageError(f"run.notebook: {location} does not exist on the cluster; check the URL "
                             "(hdfs dfs -ls its directory)")
        text = fs.cat(location)
    else:
        try:
            with open(location, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            raise UsageError(f"run.notebook: {location} does not exist; check the path") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"run.notebook: cannot read {location} ({exc}); give a Jupyter notebook") from None
    try:
        nb = json.loads(text)
    except ValueError:
        nb = None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list) or nb.get("nbformat") != 4:
        raise UsageError(f"run.notebook: {location} is not a Jupyter notebook (nbformat 4 JSON); "
                         "give an .ipynb saved by Jupyter")
    return nb


def _has_parameters_cell(nb):
    return any("parameters" in (cell.get("metadata", {}).get("tags") or []) for cell in nb["cells"])


def check_notebook(recipe, nb):
    """Refuse parameters for a notebook that has no cell tagged ``parameters``.

    Papermill only warns and injects them at the top, where the notebook's
    own defaults then silently overwrite them.
    """
    given = bool(recipe.run.parameters) or recipe.kind == "sweep"
    if given and not _has_parameters_cell(nb):
        raise UsageError(f"run.notebook: {os.path.basename(recipe.run.notebook)} has no cell tagged "
                         "'parameters', so the parameters would be overwritten by the notebook's own "
                         "defaults; tag the cell that sets them (JupyterLab: cell > Property Inspector > "
                         "Cell Tags > parameters)")


def check_kernel(recipe, nb, metadata):
    """The kernel the run uses must be one the environment has (its metadata lists them)."""
    kernel = recipe.run.kernel or (nb.get("metadata", {}).get("kernelspec") or {}).get("name")
    if not kernel:
        raise UsageError(f"run.kernel: {os.path.basename(recipe.run.notebook)} names no kernel; give one "
                         "with --kernel (e.g. python3)")
    kernels = set((metadata or {}).get("kernels") or {})
    packages = (metadata or {}).get("packages") or {}
    if "ipykernel" in packages:
        kernels.add("python3")  # ipykernel's own, always found by jupyter_client
    if kernels and kernel not in kernels:
        how = "--kernel" if recipe.run.kernel else "--kernel (the notebook asks for it)"
        raise UsageError(f"run.kernel: the environment has no kernel {kernel!r} (it has "
                         f"{', '.join(sorted(kernels))}); choose one with {how}, or install the kernel "
                         "in the environment and pack it again")
    return kernel


def output_base(recipe, user):
    """The fixed part of the output location: the directory that must be writable before submitting."""
    template = recipe.run.output or DEFAULT_OUTPUT
    known = template.replace("{user}", user).replace("{name}", recipe.app_name)
    fixed = known.split("{", 1)[0]
    return fixed if "{" not in known else (fixed.rsplit("/", 1)[0] or "/")


def _check_output(recipe, user, fs):
    from .hdfs import HdfsError

    base = output_base(recipe, user)
    try:
        fs.mkdir(base, RUNS_INDEX.format(user=user), share=recipe.run.share)
    except (UsageError, HdfsError) as exc:
        raise UsageError(f"run.output: cannot create {base}: {str(exc).split(': ', 1)[-1]}; choose a directory "
                         "you can write to with --output") from None
    if not fs.writable(base):
        raise UsageError(f"run.output: {base} is not writable by {user}; choose a directory you can write "
                         "to with --output")


def _environment_record(recipe, fs):
    """The metadata record beside an ``hdfs://`` archive (``{}`` if it has none)."""
    try:
        text = fs.cat(recipe.environment.value + ".json")
        return json.loads(text) if text.strip() else {}
    except ValueError:
        return {}


class Preflight:
    """The checks of a run that need the cluster filesystem, started at once in the background.

    Output directory, a remote notebook, the record of a remote archive: each
    is an ``hdfs dfs`` JVM, so they run side by side, and alongside whatever
    the caller does next (starting the Skein driver, preparing the environment).
    """

    def __init__(self, recipe):
        from .environment import EnvironmentKind
        from .hdfs import HadoopFS

        self.recipe = recipe
        from .launch import job_user

        user = job_user(recipe)
        self.local_nb = None
        if "://" not in recipe.run.notebook:
            self.local_nb = read_notebook(recipe.run.notebook)
            check_notebook(recipe, self.local_nb)
        fs = HadoopFS()
        self._pool = concurrent.futures.ThreadPoolExecutor(3)
        self.output = self._pool.submit(_check_output, recipe, user, fs)
        self.remote_nb = self._pool.submit(read_notebook, recipe.run.notebook, fs) if self.local_nb is None else None
        remote_env = recipe.environment is not None and recipe.environment.kind is EnvironmentKind.HDFS
        self.record = self._pool.submit(_environment_record, recipe, fs) if remote_env else None
        self._pool.shutdown(wait=False)

    def check(self, prepared):
        """Raise the first problem found, now that the environment is prepared."""
        self.output.result()
        nb = self.local_nb if self.remote_nb is None else self.remote_nb.result()
        if self.remote_nb is not None:
            check_notebook(self.recipe, nb)
        metadata = prepared.metadata
        if not metadata and self.record is not None:
            metadata = self.record.result()
            check_environment_packages(self.recipe, metadata)
        check_kernel(self.recipe, nb, metadata)


def start(recipe, client, progress=None, preflight=None):
    """Check, prepare and submit a run or sweep; returns the :class:`~skein_jupyter.launch.Submission`.

    Nothing is submitted unless every check passes. ``preflight``: a
    :class:`Preflight` of ``recipe`` started earlier (one is started here if not).
    """
    progress = progress or Progress.quiet()
    preflight = preflight or Preflight(recipe)
    return submit(recipe, client, progress, checks=preflight.check)


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
    tags = set(report.tags)
    if "skein-jupyter-sweep" in tags:
        return "sweep"
    if "skein-jupyter-run" in tags:
        return "run"
    raise ApplicationError(f"{report.id} ({report.name}) is not a skein-jupyter run or sweep; "
                           "see `yarn application -list`")


def _report(client, app_id):
    return get_report(client, app_id, "yarn application -list -appStates ALL")


def _saved_summary(app_id, user, fs=None):
    """The summary the runtime saved on the cluster filesystem, or None."""
    from .hdfs import HadoopFS, HdfsError

    fs = fs or HadoopFS()
    try:
        index = fs.cat(f"{RUNS_INDEX.format(user=user)}/{app_id}.json")
        if not index:
            return None, None
        record = json.loads(index)
        saved = fs.cat(record["summary"])
        return record, (json.loads(saved) if saved else None)
    except (HdfsError, ValueError, KeyError):
        return None, None


def _outcome_from_saved(report, kind, saved):
    if not saved:
        return RunOutcome(report.id, kind, str(report.state), str(report.final_status),
                          diagnostics=report.diagnostics)
    if kind == "sweep":
        return RunOutcome(report.id, kind, str(report.state), str(report.final_status), saved["summary"],
                          saved["sets"], report.diagnostics)
    result = {k: v for k, v in saved.items() if k != "summary"}
    return RunOutcome(report.id, kind, str(report.state), str(report.final_status), saved["summary"],
                      [result], report.diagnostics)


def follow(client, app_id, progress=None, timeout=None):
    """Wait for a run or sweep to end, showing its progress; return its :class:`RunOutcome`.

    Parameters
    ----------
    timeout : float, optional
        Give up waiting (the run goes on) after this many seconds.
    """
    progress = progress or Progress.quiet()
    deadline = time.monotonic() + timeout if timeout else None
    report = _report(client, app_id)
    kind = _kind(report)
    n_sets = None
    app_client = None
    state = {"progress": {}, "results": {}, "summary": None, "output": None, "error": None}
    last_state = None
    while True:
        report = client.application_report(app_id)
        if str(report.state) != last_state:
            last_state = str(report.state)
            progress.step(f"{app_id} is {last_state}"
                          + (" (waiting for YARN to allocate)" if last_state == "ACCEPTED" else ""))
        if last_state in FINAL_STATES:
            break
        if last_state == "RUNNING":
            try:
                app_client = app_client or client.connect(app_id, wait=False)
                if n_sets is None:
                    n_sets = _n_sets(app_client)
                current = _live_state(app_client)
                state["progress"] = current["progress"]
                state["results"].update(current["results"])
                for key in ("summary", "output", "error"):
                    state[key] = current[key] or state[key]
                progress.status(progress_line(kind, n_sets, state))
            except Exception:  # the master is starting or has just shut down
                pass
        if deadline and time.monotonic() > deadline:
            progress.done()
            raise ApplicationError(f"{app_id} is still {last_state} after {timeout:g}s; it goes on: follow it "
                                   f"with `skein-jupyter status {app_id}`, stop it with `skein-jupyter kill {app_id}`")
        time.sleep(POLL)
    progress.done()
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


def _n_sets(app_client):
    from .spec import JOB_ENV, SERVICE_NAMES, decode_job

    spec = app_client.get_specification()
    return len(decode_job(spec.services[SERVICE_NAMES["run"]].env[JOB_ENV])["sets"])


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

def status(client, app_id):
    """Where a run or sweep stands: while it runs, from the key-value store; after, from its summary."""
    report = _report(client, app_id)
    kind = _kind(report)
    state = str(report.state)
    if state == "RUNNING":
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


def kill(client, app_id, timeout=120):
    """Stop a run or sweep: running sets stop and save their output; the application ends KILLED.

    Any other skein-jupyter application is killed outright.
    """
    from .applications import wait_for_final_state

    report = _report(client, app_id)
    if "skein-jupyter" not in set(report.tags):
        raise ApplicationError(f"{app_id} ({report.name}) is not a skein-jupyter application; kill it with "
                               f"`yarn application -kill {app_id}`")
    if str(report.state) in FINAL_STATES:
        raise ApplicationError(f"{app_id} has already ended ({report.state}, {report.final_status}); "
                               "nothing to kill")
    if str(report.state) == "RUNNING" and set(report.tags) & set(RUN_TAGS):
        client.connect(app_id, wait=False).kv[keys.RUN_STOP] = b"skein-jupyter kill"
        try:
            return wait_for_final_state(client, app_id, timeout)
        except ApplicationError:
            pass  # it did not stop in time: kill it; its last checkpoint stays
    kill_quietly(client, app_id)
    return wait_for_final_state(client, app_id, 60)


def fetch(client, app_id, directory=None, fs=None):
    """Download a run's output notebooks, HTML and summary into ``directory`` (``./<app_id>``).

    Returns
    -------
    list of str
        The local files.
    """
    from pathlib import Path

    from .hdfs import HadoopFS

    report = _report(client, app_id)
    kind = _kind(report)
    fs = fs or HadoopFS()
    record, saved = _saved_summary(app_id, report.user, fs)
    if record is None:
        raise ApplicationError(f"{app_id} saved no outputs (it ended before its first set started); "
                               f"see `skein-jupyter logs {app_id}`")
    outcome = _outcome_from_saved(report, kind, saved)
    remote = [record["summary"]] if saved else []
    if outcome.results:
        remote += [r[k] for r in outcome.results for k in ("output", "html") if r.get(k)]
        if kind == "sweep":
            remote.append(record["summary"][: -len(".json")] + ".csv")
    else:  # still running or hard-killed: whatever is in the output directory
        remote = [record["output"].rstrip("/") + "/*"]
    target = Path(directory or app_id)
    target.mkdir(parents=True, exist_ok=True)
    fs.get(remote, target)
    return sorted(str(p) for p in target.iterdir())
