"""``skein-jupyter run`` and the commands that follow a run: status, logs, kill, fetch."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from ..exceptions import UsageError
from .options import json_option, progress, quiet_option, recipe_flags, recipe_options, set_fields
from .recipes import print_spec
from .render import echo_json, show_outcome

if TYPE_CHECKING:
    from ..recipe import Recipe

__all__ = ["run_command", "run_recipe", "status_command", "logs_command", "kill_command", "fetch_command", "sweep_settings"]


def sweep_settings(path: str) -> dict[str, Any]:
    """``--sweep FILE``: a YAML list of parameter sets, or a mapping of names to lists (a grid).

    A mapping whose keys are all fields of a recipe's ``sweep:`` section (``parameters:``, ``grid:``,
    ``parallel:``, ``reuse_kernel:``) is such a section, and so is ``sweep:`` holding one. A whole recipe
    is refused, and so is a section with another key (a grid naming ``parameters`` or ``grid`` goes under
    ``grid:``).
    """
    import dataclasses

    import yaml

    from ..recipe import SweepOptions
    from ..recipe_values import _did_you_mean

    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise UsageError(f"--sweep {path} does not exist; give a YAML file of parameter sets") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"--sweep {path} is not valid YAML: {getattr(exc, 'problem', None) or exc}; "
                         "fix the syntax") from None
    if isinstance(data, dict) and ("kind" in data or isinstance(data.get("sweep"), dict) and len(data) > 1):
        raise UsageError(f"--sweep {path} is a whole recipe; run it with `skein-jupyter run {path}`, or keep "
                         "only its sweep: section in the file")
    if isinstance(data, dict) and list(data) == ["sweep"] and isinstance(data["sweep"], dict):
        data = data["sweep"]  # a recipe's section, key and all
    if isinstance(data, list):
        return {"sweep.parameters": data}
    keys = {field.name for field in dataclasses.fields(SweepOptions)}
    if isinstance(data, dict) and data and set(data) <= keys:
        return {f"sweep.{key}": value for key, value in data.items()}
    if isinstance(data, dict) and {"parameters", "grid"} & set(data):  # a section with a key that is not one
        unknown = ", ".join(f"{key!r}{_did_you_mean(key, keys)}" for key in sorted(str(k) for k in set(data) - keys))
        raise UsageError(f"--sweep {path}: {unknown} not a key of a sweep: section; use only "
                         f"{', '.join(sorted(keys))} (a grid with a parameter named parameters or grid: put it "
                         "under grid:)")
    if isinstance(data, dict) and data:
        return {"sweep.grid": data}
    raise UsageError(f"--sweep {path} holds no parameter sets; write a list of sets (- alpha: 0.1) or a "
                     "grid (alpha: [0.1, 0.5])")


@click.command("run")
@click.argument("target", metavar="NOTEBOOK|RECIPE")
@recipe_options
@click.option("-p", "--parameter", "typed", nargs=2, multiple=True, metavar="NAME VALUE",
              help="Parameter; numbers, True/False and None are converted (repeatable).")
@click.option("-r", "--raw-parameter", "raw", nargs=2, multiple=True, metavar="NAME VALUE",
              help="Parameter kept as text (repeatable).")
@click.option("-y", "--parameters-yaml", "yamls", multiple=True, metavar="YAML",
              help="Parameters as a YAML mapping, e.g. -y 'alpha: 0.5' (repeatable).")
@click.option("-f", "--parameters-file", "files", multiple=True, metavar="FILE",
              help="Parameters from a YAML file (repeatable).")
@click.option("-k", "--kernel", help="Kernel name [default: the notebook's].")
@click.option("--engine", help="papermill engine.")
@click.option("--cell-timeout", help="Per-cell execution timeout, e.g. 10m.")
@click.option("--start-timeout", help="Kernel start timeout, e.g. 60s.")
@click.option("--timeout", help="Whole-run timeout, e.g. 2h: the kernel is stopped and the output saved.")
@click.option("-o", "--output", metavar="DIR", help="Output directory on the cluster; {user}, {app_id}, {name} "
              "and {date} are filled in [default: /user/{user}/skein-jupyter/runs/{app_id}].")
@click.option("--html", is_flag=True, default=None, help="Also write the output notebook as HTML.")
@click.option("--retries", type=int, help="Retries after a lost container.")
@click.option("--retry-failed-cells", is_flag=True, default=None, help="Also retry a notebook that failed in a cell.")
@click.option("--sweep", "sweep_file", metavar="FILE", help="Run every parameter set in FILE (a YAML list, or a "
              "grid of names to lists) in one application.")
@click.option("--parallel", type=int, help="Sweeps: at most this many sets at a time; flows: steps.")
@click.option("--notify-on", metavar="EVENTS", help="Notify on these events, comma-separated: success, failure, "
              "timeout, stopped [default: failure,timeout].")
@click.option("--webhook", "webhooks", multiple=True, metavar="NAME",
              help="Notify this webhook of your notifications file when the run ends (repeatable).")
@click.option("--email", "emails", multiple=True, metavar="ADDRESS",
              help="Email this address when the run ends, with the HTML attached (repeatable).")
@click.option("--detach", is_flag=True, help="Print the application id and return at once.")
@click.option("--dry-run", is_flag=True, help="Print the Skein spec instead of submitting.")
@json_option
@quiet_option
def run_command(target, typed, raw, yamls, files, kernel, engine, cell_timeout, start_timeout, timeout, output,
                html, retries, retry_failed_cells, sweep_file, parallel, notify_on, webhooks, emails, detach, dry_run,
                as_json, quiet, **options):
    """Run a notebook with papermill in a YARN container, a sweep of parameter sets, or a flow.

    Follows the run with a cell progress bar and ends with a summary; exits
    0 if the notebook succeeded, 1 if it failed, timed out or was stopped
    (its output notebook, with what ran, is saved all the same), and 3 if
    the cluster failed it. A flow recipe (kind: flow) runs its steps in one
    application, shows each step as it starts and ends, and ends with a
    table of steps; it exits 0 only if every step succeeded.

    \b
    Example:
      skein-jupyter run report.ipynb --env analytics -p alpha 0.5 --html
      skein-jupyter run recipes/nightly-report.yaml --detach
      skein-jupyter run report.ipynb --env analytics --sweep sets.yaml --parallel 4
      skein-jupyter run report.ipynb --env analytics --html --webhook team --email me@example.com
      skein-jupyter run recipes/flow.yaml
    """
    model = run_recipe(target, typed, raw, yamls, files, kernel, engine, cell_timeout, start_timeout, timeout,
                       output, html, retries, retry_failed_cells, sweep_file, parallel, notify_on, webhooks, emails,
                       **options)
    if dry_run:
        print_spec(model)
        return
    from ..launch import skein_client
    from ..runs import Preflight, raise_for_outcome, start_and_follow

    preflight = Preflight(model) if model.kind != "flow" else None  # its checks run while the driver starts
    with skein_client(model) as client:
        submission, outcome = start_and_follow(model, client, progress(quiet), detach=detach, preflight=preflight)
    if outcome is None:
        if as_json:
            echo_json({"app_id": submission.app_id})
        else:
            click.echo(submission.app_id)
        return
    show_outcome(outcome, as_json)
    raise_for_outcome(outcome)


def run_recipe(target: str, typed: Sequence[tuple[str, str]] = (), raw: Sequence[tuple[str, str]] = (),
               yamls: Sequence[str] = (), files: Sequence[str] = (), kernel: str | None = None,
               engine: str | None = None, cell_timeout: str | None = None, start_timeout: str | None = None,
               timeout: str | None = None, output: str | None = None, html: bool | None = None,
               retries: int | None = None, retry_failed_cells: bool | None = None, sweep_file: str | None = None,
               parallel: int | None = None, notify_on: str | None = None, webhooks: Sequence[str] = (),
               emails: Sequence[str] = (), **options: Any) -> Recipe:
    """The recipe ``run TARGET [flags]`` runs (also what ``schedule create`` schedules)."""
    import os

    from ..config import load_recipe
    from ..parameters import parameters_from_flags

    flags = recipe_flags(**options)
    is_recipe = target.endswith((".yaml", ".yml"))
    if not is_recipe:  # whether it exists and is a notebook is the recipe's check
        if not target.endswith(".ipynb"):
            raise UsageError(f"{target} is not a notebook (.ipynb) or a recipe (.yaml); give one of those")
        flags["run.notebook"] = target if "://" in target else os.path.abspath(target)
    parameters = parameters_from_flags(files=files, yamls=yamls, typed=typed, raw=raw)
    set_fields(flags, [("run.parameters", parameters or None), ("run.kernel", kernel), ("run.engine", engine),
                       ("run.cell_timeout", cell_timeout), ("run.start_timeout", start_timeout),
                       ("run.timeout", timeout), ("run.output", output), ("run.html", html),
                       ("run.retries", retries), ("run.retry_failed_cells", retry_failed_cells),
                       ("sweep.parallel", parallel), ("notify.when", notify_on),
                       ("notify.webhooks", list(webhooks) or None), ("notify.emails", list(emails) or None)])
    kind = None if is_recipe else "run"
    if parallel is not None and is_recipe and not sweep_file and _recipe_kind(target) == "flow":
        flags["flow.parallel"] = flags.pop("sweep.parallel")   # a flow's --parallel: steps at a time
    from_files = {}
    if sweep_file:
        from_files[sweep_file] = sweep_settings(sweep_file)
        kind = "sweep"
    elif parallel is not None and not is_recipe:
        raise UsageError("--parallel needs --sweep FILE (the parameter sets to run in parallel)")
    model, _ = load_recipe(target if is_recipe else None, kind=kind, flags=flags, files=from_files)
    if model.kind == "notebook":
        raise UsageError(f"{target} is a notebook-server recipe; start it with `skein-jupyter notebook start {target}`")
    if model.kind == "kernel":
        raise UsageError(f"{target} is a kernel recipe; kernels are started by Jupyter: "
                         "`skein-jupyter kernel install --env ENV`")
    return model


def _recipe_kind(path: str) -> str | None:
    """The ``kind:`` a recipe file says (None if it cannot be read: loading it says why)."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        return None
    return data.get("kind") if isinstance(data, dict) else None


@click.command("status")
@click.argument("app_id")
@click.option("--wait", is_flag=True, help="Follow it to the end (progress bar, then the result), as `run` "
              "does without --detach.")
@json_option
@quiet_option
def status_command(app_id, wait, as_json, quiet):
    """Show where a run or sweep stands: cell progress while it runs, its result after.

    Exits as `run` does once it has ended: 1 when the notebook failed, timed
    out or was stopped, 3 when the cluster failed it.

    \b
    Example:
      skein-jupyter status application_1700000000000_0042 --json
      skein-jupyter status application_1700000000000_0042 --wait
    """
    from ..launch import skein_client
    from ..runs import follow, raise_for_outcome, status

    info = None
    with skein_client() as client:
        if wait:
            outcome = follow(client, app_id, progress(quiet))
        else:
            outcome, info = status(client, app_id)
    show_outcome(outcome, as_json, info)
    raise_for_outcome(outcome)


@click.command("logs")
@click.argument("app_id")
@click.option("--type", "log_type", metavar="NAME", help="Only this log of each container, e.g. papermill.log "
              "(the run's), jupyter.log (a server's), application.master.log.")
@click.option("--timeout", default=120, show_default=True, help="Seconds to wait for YARN to aggregate "
              "the logs of an application that has just ended.")
def logs_command(app_id, log_type, timeout):
    """Print the container logs of an application (running or ended), on any Hadoop 3.

    \b
    Example:
      skein-jupyter logs application_1700000000000_0042 --type papermill.log
    """
    from ..applications import application_logs, log_sections

    logs = application_logs(app_id, timeout=timeout)
    if log_type:
        sections = log_sections(logs, log_type)
        if not sections:
            raise UsageError(f"{app_id} has no {log_type} log; see the log types with `skein-jupyter logs {app_id}`")
        logs = "\n".join(sections) + "\n"
    click.echo(logs, nl=False)


@click.command("kill")
@click.argument("app_id")
@click.option("--timeout", type=float, default=None,
              help="Seconds to let a run save its output before it is killed outright (default: 120; a flow: "
                   "its steps' grace of a stop plus 90).")
@quiet_option
def kill_command(app_id, timeout, quiet):
    """Stop a run, sweep or server; a run saves its partial output first.

    \b
    Example:
      skein-jupyter kill application_1700000000000_0042
    """
    from ..launch import skein_client
    from ..runs import kill

    with skein_client() as client:
        report = kill(client, app_id, timeout=timeout)
    click.echo(f"Stopped {app_id} ({report.state}, {report.final_status})")


@click.command("fetch")
@click.argument("app_id")
@click.argument("directory", required=False, metavar="[DIR]")
@json_option
def fetch_command(app_id, directory, as_json):
    """Download a run's output notebooks, HTML and summary (into ./APP_ID by default).

    \b
    Example:
      skein-jupyter fetch application_1700000000000_0042 reports/
    """
    from ..launch import skein_client
    from ..runs import fetch

    with skein_client() as client:
        files = fetch(client, app_id, directory)
    if as_json:
        echo_json({"files": files})
        return
    for path in files:
        click.echo(path)
