"""Flows: notebook steps with dependencies, run in one YARN application.

The client side of :mod:`skein_jupyter.runtime.flow`: validating a flow recipe
(:func:`check_flow`, called when the recipe is built), the job and services its
spec holds, and following a running flow. The graph logic itself is
:mod:`skein_jupyter.runtime.dag`, shared with the coordinator in the container.
"""
from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .exceptions import UsageError
from .outcome import RunOutcome
from .progress import Progress
from .runtime import keys
from .runtime.dag import check_graph, upstream
from .runtime.job import FlowJob, Job, RunJob, StepJob

if TYPE_CHECKING:
    import skein

    from .launch import Submission
    from .recipe import FlowStep, Recipe, Resources
    from .spec import SpecContext

__all__ = ["check_flow", "early_flow_checks", "step_resources", "service_name", "flow_job", "flow_services", "start", "follow",
           "live_status", "progress_line", "outcome_from_saved", "COORDINATOR_MEMORY_MB"]

#: The coordinator starts and watches containers, and runs ``hdfs dfs`` (a JVM) to save the flow's files.
COORDINATOR_MEMORY_MB = 512


def service_name(step: str) -> str:
    """The Skein service of a step (its log in ``yarn logs`` is ``<service>.log``)."""
    return f"step-{step}"


# ----------------------------------------------------------------- validation

def step_resources(recipe: Recipe, step: FlowStep) -> Resources:
    """A step's resources: its own ``resources`` over the recipe's."""
    from .recipe import Resources, _build_section

    merged = {**dataclasses.asdict(recipe.resources), **step.resources}
    return _build_section(Resources, merged, "resources.", lambda path: "recipe", None)


def check_flow(recipe: Recipe, source_of: Callable[[str], str]) -> None:
    """Refuse a flow that cannot run: no steps, a bad graph, a missing notebook, an input not from upstream.

    Raises
    ------
    UsageError
        Naming the step, the field and the fix.
    """
    from .recipe import check_input_notebook

    steps: dict[str, FlowStep] = recipe.flow.steps
    where = f"flow.steps ({source_of('flow.steps')})"
    if not steps:
        raise UsageError(f"{where}: no steps; give at least one `name:` block with a notebook:")
    if recipe.max_attempts > 1:
        raise UsageError(f"max_attempts ({source_of('max_attempts')}): {recipe.max_attempts}, but a flow runs "
                         "once (a new application attempt would start every step again); retry steps with their "
                         "`retries:` and remove max_attempts")
    graph = {name: list(step.depends_on) for name, step in steps.items()}
    try:
        check_graph(graph)
    except ValueError as exc:
        raise UsageError(f"{where}: {exc}") from None
    for name, step in steps.items():
        path = f"flow.steps.{name}"
        check_input_notebook(f"{path}.notebook", step.notebook, source_of(path))
        both = sorted(set(step.parameters) & set(step.inputs))
        if both:
            raise UsageError(f"{path} ({source_of(path)}): {', '.join(both)} in both parameters and inputs; "
                             "a parameter comes from one place: remove it from one of them")
        above = upstream(graph, name)
        for parameter, source in step.inputs.items():
            origin = source.split(".", 1)[0]
            if origin not in above:
                known = f"upstream steps: {', '.join(sorted(above))}" if above else "it has no upstream step"
                raise UsageError(f"{path}.inputs.{parameter} ({source_of(path)}): {origin!r} is not upstream of "
                                 f"step {name} ({known}); add it to depends_on, or take the value from an "
                                 "upstream step")
        try:
            step_resources(recipe, step)
        except UsageError as exc:
            raise UsageError(f"{path}.{exc}") from None


# ----------------------------------------------------------------- job and spec

def flow_job(recipe: Recipe, user: str) -> Job:
    """The job every container of the flow reads (an allow-list of the recipe's fields)."""
    from .spec import INPUT_NOTEBOOK

    steps = []
    for name, step in recipe.flow.steps.items():
        notebook = step.notebook
        run = RunJob(notebook=notebook if "://" in notebook else os.path.basename(notebook), input=INPUT_NOTEBOOK,
                     parameters=dict(step.parameters), html=step.html, kernel=step.kernel,
                     cell_timeout=step.cell_timeout, timeout=step.timeout)
        steps.append(StepJob(name=name, service=service_name(name), run=run, depends_on=list(step.depends_on),
                             inputs=dict(step.inputs), retries=step.retries,
                             retry_interval=step.retry_interval or 0, on_failure=step.on_failure))
    flow = FlowJob(steps=steps, parallel=recipe.flow.parallel, output=recipe.flow.output)
    return Job(kind="flow", name=recipe.app_name, user=user, env=dict(recipe.env), flow=flow)


def flow_services(recipe: Recipe, context: SpecContext, make_service: Callable[..., skein.Service],
                  environment: tuple[str, bool]) -> dict[str, skein.Service]:
    """The coordinator (1 instance) and one service per step (0 instances: the coordinator adds them).

    ``make_service(resources, environment, instances, extra_files)`` builds one service;
    ``environment`` is the recipe's archive as ``(url, public)``.
    """
    import skein

    from .recipe import Resources
    from .spec import INPUT_NOTEBOOK

    services = {"flow": make_service(Resources(memory=COORDINATOR_MEMORY_MB, vcores=1), environment, 1, {})}
    for name, step in recipe.flow.steps.items():
        env = environment if step.environment is None else context.step_environment(step.environment)
        service = make_service(step_resources(recipe, step), env, 0,
                               {INPUT_NOTEBOOK: skein.File(step.notebook, type="file")})
        # A lost step container is the coordinator's to retry or fail, never the application's end.
        service.allow_failures = True
        services[service_name(name)] = service
    return services


# ----------------------------------------------------------------- following

def early_flow_checks(recipe: Recipe, client: skein.Client | None) -> None:
    """Every check of a flow before anything is written: local checks, then the cluster's limits and the
    notifications' secrets, and last the output directory (which :func:`_check_output` creates on the
    cluster). ``client`` None: the cluster's limits are not checked.
    """
    from . import notifications
    from .launch import job_fs, job_user, require_environment
    from .preflight import _check_output, read_notebook, warn_unknown_parameters
    from .spec import check_cluster_limits

    require_environment(recipe)
    for name, step in recipe.flow.steps.items():
        if "://" in step.notebook or not (step.parameters or step.inputs):
            continue
        nb = read_notebook(step.notebook)
        if not any("parameters" in (c.get("metadata", {}).get("tags") or []) for c in nb["cells"]):
            raise UsageError(f"flow.steps.{name}.notebook: {os.path.basename(step.notebook)} has no cell "
                             "tagged 'parameters', so its parameters would be overwritten by the notebook's "
                             "own defaults; tag the cell that sets them")
        warn_unknown_parameters([*step.parameters, *step.inputs], nb, step.notebook, f"flow.steps.{name}")
    if client is not None:
        for name, step in recipe.flow.steps.items():
            if step.resources:  # the recipe's own resources were checked already
                try:
                    check_cluster_limits(dataclasses.replace(recipe, resources=step_resources(recipe, step)), client)
                except UsageError as exc:
                    raise UsageError(f"flow.steps.{name}.{exc}") from None
    notifications.resolve(recipe, job_user(recipe))   # an unknown webhook name, no SMTP server
    # The output location is checked as a run's is (the flow's output stands for run.output).
    as_run = dataclasses.replace(recipe, run=dataclasses.replace(recipe.run, output=recipe.flow.output))
    try:
        _check_output(as_run, job_user(recipe), job_fs(recipe))
    except UsageError as exc:
        raise UsageError(str(exc).replace("run.output", "flow.output").replace("--output", "flow.output")) \
            from None


def start(recipe: Recipe, client: skein.Client, progress: Progress | None = None) -> Submission:
    """Check, prepare and submit a flow; returns the :class:`~skein_jupyter.launch.Submission`."""
    from .launch import submit

    def early_checks():
        early_flow_checks(recipe, client)

    return submit(recipe, client, progress or Progress.quiet(), early_checks=early_checks)


def _live(app_client) -> dict:
    values = app_client.kv.get_prefix("skein-jupyter.")
    progress = {key[len(keys.FLOW_PROGRESS):]: json.loads(value) for key, value in values.items()
                if key.startswith(keys.FLOW_PROGRESS)}
    return {"steps": json.loads(values[keys.FLOW_STATE]) if keys.FLOW_STATE in values else {},
            "progress": progress,
            "summary": json.loads(values[keys.RUN_SUMMARY]) if keys.RUN_SUMMARY in values else None,
            "output": values[keys.RUN_OUTPUT].decode() if keys.RUN_OUTPUT in values else None,
            "error": values[keys.ERROR].decode() if keys.ERROR in values else None}


def progress_line(state: dict) -> str:
    """One line saying where a flow stands: steps done, and each running step's cell."""
    steps, progress = state["steps"], state["progress"]
    if not steps:
        return "starting the flow's coordinator"
    done = [n for n, s in steps.items() if s["status"] not in ("pending", "running", "retrying")]
    running = []
    for name, s in steps.items():
        if s["status"] == "running":
            p = progress.get(name) or {}
            cell = f" cell {min(p['done'] + 1, p['cells'])}/{p['cells']}" if p.get("cells") else ""
            running.append(f"{name}{cell}" + (f" (attempt {s['attempts']})" if s["attempts"] > 1 else ""))
        elif s["status"] == "retrying":
            running.append(f"{name} waiting to retry")
    bad = [f"{n} {steps[n]['status']}" for n in done if steps[n]["status"] != "succeeded"]
    width = 20
    filled = int(width * len(done) / len(steps))
    return (f"[{'#' * filled}{'.' * (width - filled)}] {len(done)}/{len(steps)} steps done"
            + (f" ({', '.join(bad)})" if bad else "")
            + (f"; running: {', '.join(running)}" if running else ""))


def _rows(steps: dict) -> list[dict]:
    return [{"step": name, **row} for name, row in steps.items()]


def outcome_from_saved(report: Any, saved: dict | None) -> RunOutcome:
    """The outcome of an ended flow from its ``flow.json`` (None: it saved none)."""
    if not saved:
        return RunOutcome(report.id, "flow", str(report.state), str(report.final_status),
                          diagnostics=report.diagnostics)
    return RunOutcome(report.id, "flow", str(report.state), str(report.final_status), saved["summary"],
                      saved["steps"], report.diagnostics)


def follow(client: skein.Client, app_id: str, progress: Progress | None = None,
           timeout: float | None = None) -> RunOutcome:
    """Wait for a flow to end, showing each step's progress; return its :class:`RunOutcome`."""
    from .runs import _saved_summary, watch

    progress = progress or Progress.quiet()
    last_steps: dict[str, str] = {}
    state: dict = {"steps": {}, "progress": {}, "summary": None, "output": None, "error": None}

    def poll(app_client):
        current = _live(app_client)
        for key in ("steps", "progress", "summary", "output", "error"):
            state[key] = current[key] or state[key]
        for name, row in state["steps"].items():  # each change of a step's status is a line of its own
            if last_steps.get(name) != row["status"] and row["status"] != "pending":
                progress.step(f"step {name}: {row['status']}"
                              + (f" (attempt {row['attempts']})" if row["attempts"] > 1 else ""))
            last_steps[name] = row["status"]
        progress.status(progress_line(state))

    report = watch(client, app_id, progress, poll, timeout)
    _, saved = _saved_summary(app_id, report.user)
    if saved is None and state["summary"] is not None:
        saved = {"summary": state["summary"], "steps": _rows(state["steps"])}
    outcome = outcome_from_saved(report, saved)
    if not outcome.summary:
        outcome.results = _rows(state["steps"])
        if state["error"]:
            outcome.diagnostics = state["error"]
    return outcome


def live_status(client: skein.Client, app_id: str, report: Any) -> tuple[RunOutcome, dict]:
    """Where a running flow stands, from the key-value store."""
    current = _live(client.connect(app_id, wait=False))
    outcome = RunOutcome(app_id, "flow", str(report.state), str(report.final_status), current["summary"],
                         _rows(current["steps"]))
    return outcome, {"progress": current["progress"], "line": progress_line(current), "output": current["output"],
                     "steps": len(current["steps"])}
