"""The ``skein-jupyter`` command line: parse, call one library function, render.

Imports of the library happen inside the commands so ``--help`` stays fast.
"""
import json
import sys

import click

from .exceptions import SkeinJupyterError

__all__ = ["cli", "main"]


class _ReportedError(click.ClickException):
    """A library error shown as one ``Error: …`` line with its own exit code."""

    def __init__(self, error):
        super().__init__(str(error))
        self.exit_code = error.exit_code


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SkeinJupyterError as error:
            details = getattr(error, "details", None)
            if details:  # context such as the end of a container log, before the one-line error
                click.echo(details, err=True)
            raise _ReportedError(error) from None


def _progress(quiet):
    from .progress import Progress

    return Progress.quiet() if quiet else Progress()


def _echo_json(data):
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def _echo_rows(rows, as_json, empty, header, line):
    """A listing: JSON, a sentence when there is nothing, or ``header`` and one ``line(row)`` per row."""
    if as_json:
        _echo_json(rows)
    elif not rows:
        click.echo(empty)
    else:
        click.echo(header)
        for row in rows:
            click.echo(line(row))


quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="skein-jupyter")
def cli():
    """Run Jupyter servers and papermill batch runs on Hadoop YARN through Skein.

    \b
    Example:
      skein-jupyter sandbox up      # a local Hadoop to try things on
    """


# ----------------------------------------------------------------- recipes

def recipe_options(command):
    """Options every launch command shares; each sets one recipe field (the highest layer)."""
    options = [
        click.option("--env", "environment", metavar="ENV",
                     help="Packed environment: a local .tar.gz, an hdfs:// archive, or a published name."),
        click.option("--name", help="Application name."),
        click.option("--queue", help="YARN queue."),
        click.option("--memory", help="Container memory, e.g. 4GiB (a bare number is MiB)."),
        click.option("--vcores", type=int, help="Container virtual cores."),
        click.option("--gpus", type=int, help="Container GPUs (yarn.io/gpu)."),
        click.option("--node-label", help="YARN node label expression."),
        click.option("--tag", "tags", multiple=True, help="YARN application tag (repeatable)."),
        click.option("--set", "settings", multiple=True, metavar="FIELD=VALUE",
                     help="Set any recipe field by its dotted path, e.g. --set notebook.idle_timeout=2h "
                          "(value read as YAML; repeatable)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


_FLAG_FIELDS = {"environment": "environment", "name": "name", "queue": "queue", "memory": "resources.memory",
                "vcores": "resources.vcores", "gpus": "resources.gpus", "node_label": "node_label"}


def recipe_flags(settings=(), tags=(), **options):
    """Recipe options -> ``{dotted path: value}``; a field set twice is a usage error."""
    import yaml

    from .exceptions import UsageError
    from .recipe import field_paths

    flags = {_FLAG_FIELDS[key]: value for key, value in options.items() if value is not None}
    if tags:
        flags["tags"] = list(tags)
    known = [path for path, _ in field_paths()]
    for setting in settings:
        path, sep, text = setting.partition("=")
        path = path.strip()
        if not sep or path not in known:
            import difflib

            close = difflib.get_close_matches(path, known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise UsageError(f"--set {setting!r}: unknown field{hint}; use --set FIELD=VALUE with a recipe "
                             "field such as notebook.idle_timeout (see `skein-jupyter config show`)")
        if path in flags:
            raise UsageError(f"{path} is given twice on the command line (--set {path} and its own flag); "
                             "give it once")
        try:
            flags[path] = yaml.safe_load(text)
        except yaml.YAMLError:
            flags[path] = text
    return flags


@cli.command("spec")
@click.argument("recipe", type=click.Path(dir_okay=False))
@recipe_options
def spec_command(recipe, **options):
    """Print the Skein application spec a recipe makes, as YAML.

    Submit it yourself with `skein application submit`, or read what a
    launch would do. Environment names are resolved on the cluster; nothing
    is uploaded or submitted. Specs hold no secrets.

    \b
    Example:
      skein-jupyter spec recipes/nightly-report.yaml --memory 4GiB
    """
    from .config import load_recipe
    from .launch import render_spec
    from .spec import spec_to_yaml

    model, _ = load_recipe(recipe, flags=recipe_flags(**options))
    click.echo(spec_to_yaml(render_spec(model)), nl=False)


@cli.group(cls=_Group)
def config():
    """Inspect the configuration layers.

    Layers, lowest first: packaged defaults, the user config file,
    SKEIN_JUPYTER_* environment variables, the recipe, then flags.

    \b
    Example:
      SKEIN_JUPYTER_QUEUE=etl skein-jupyter config show --kind run
    """


@config.command("show")
@click.argument("recipe", required=False, type=click.Path(dir_okay=False))
@click.option("--kind", type=click.Choice(["notebook", "run", "sweep"]),
              help="Kind of job to show settings for, without a recipe [default: notebook].")
@recipe_options
@json_option
def config_show(recipe, kind, as_json, **options):
    """Show every setting of a job, merged, and where each value came from.

    \b
    Example:
      skein-jupyter config show recipes/notebook-server.yaml --memory 8GiB
    """
    from .config import env_var_name, explain, load_recipe, user_config_path

    if recipe is None and kind is None:
        kind = "notebook"
    model, sources = load_recipe(recipe, kind=kind, flags=recipe_flags(**options))
    rows = explain(model, sources)
    if as_json:
        _echo_json({"config_file": str(user_config_path()),
                    "settings": [{"field": p, "value": v, "source": s, "env_var": env_var_name(p)}
                                 for p, v, s in rows]})
        return
    click.echo(f"# config file: {user_config_path()}")
    width = max(len(p) for p, _, _ in rows)
    for path, value, source in rows:
        click.echo(f"{path:{width}}  {json.dumps(value):40}  {source}")


# ----------------------------------------------------------------- notebook servers

def tunnel_options(command):
    for option in reversed([
        click.option("--local-port", type=int, help="Laptop port of the SSH tunnel [default: the server's port if free]."),
        click.option("--ssh-user", help="User for the SSH tunnel [default: $SKEIN_JUPYTER_SSH_USER or you]."),
        click.option("--edge-host", help="This edge node's name as the laptop reaches it "
                                         "[default: $SKEIN_JUPYTER_EDGE_HOST or this host's name]."),
    ]):
        command = option(command)
    return command


def _show_server(server, as_json, local_port, ssh_user, edge_host):
    from .notebook import tunnel

    way = tunnel(server, local_port, ssh_user, edge_host)
    if as_json:
        _echo_json({**server.to_dict(), "url": server.url(), "tunnel_command": way.command,
                    "tunnel_url": way.url})
        return
    click.echo(f"Jupyter ({server.frontend}) running in {server.app_id} on {server.host}:{server.port}")
    click.echo(f"  URL on the cluster network: {server.url()}")
    click.echo(f"  From your laptop, open a tunnel:  {way.command}")
    click.echo(f"  then browse to:                   {way.url}")
    click.echo(f"  Stop it with: skein-jupyter notebook stop {server.app_id}")


@cli.group(cls=_Group)
def notebook():
    """Jupyter servers (JupyterLab, Notebook 7, jupyter_server) on YARN.

    \b
    Example:
      skein-jupyter notebook start --env analytics --memory 4GiB --lab
      skein-jupyter notebook list
    """


@notebook.command("start")
@click.argument("recipe", required=False, type=click.Path(dir_okay=False))
@recipe_options
@click.option("--lab", "frontend", flag_value="lab", help="JupyterLab (the default).")
@click.option("--notebook7", "frontend", flag_value="notebook", help="Notebook 7.")
@click.option("--server", "frontend", flag_value="server", help="A plain jupyter_server (no web UI).")
@click.option("--idle-timeout", help="Stop after this long without activity, e.g. 2h.")
@click.option("--max-lifetime", help="Stop after this long whatever happens, e.g. 12h.")
@click.option("--tls", is_flag=True, default=None, help="Serve HTTPS with a certificate made for this server.")
@click.option("--timeout", default=300, show_default=True, help="Seconds to wait for the server to come up.")
@click.option("--dry-run", is_flag=True, help="Print the Skein spec instead of submitting.")
@tunnel_options
@json_option
@quiet_option
def notebook_start(recipe, frontend, idle_timeout, max_lifetime, tls, timeout, dry_run, local_port, ssh_user,
                   edge_host, as_json, quiet, **options):
    """Start a Jupyter server in a YARN container and print how to reach it.

    The server keeps running after the command exits; it stops when idle
    (1h by default), at its maximum lifetime, or with `notebook stop`.

    \b
    Example:
      skein-jupyter notebook start recipes/notebook-server.yaml --memory 8GiB
      skein-jupyter notebook start --env analytics.tar.gz --notebook7 --idle-timeout 30m
    """
    from .config import load_recipe

    flags = recipe_flags(**options)
    for path, value in (("notebook.frontend", frontend), ("notebook.idle_timeout", idle_timeout),
                        ("notebook.max_lifetime", max_lifetime), ("notebook.tls", tls)):
        if value is not None:
            if path in flags:
                from .exceptions import UsageError

                raise UsageError(f"{path} is given twice on the command line; give it once")
            flags[path] = value
    model, _ = load_recipe(recipe, kind="notebook", flags=flags)
    if dry_run:
        from .launch import render_spec
        from .spec import spec_to_yaml

        click.echo(spec_to_yaml(render_spec(model)), nl=False)
        return
    from .launch import skein_client
    from .notebook import check_local_port, start

    if local_port is not None:
        check_local_port(local_port)  # before anything is submitted
    with skein_client(model) as client:
        server = start(model, client, timeout=timeout, progress=_progress(quiet))
    _show_server(server, as_json, local_port, ssh_user, edge_host)


@notebook.command("info")
@click.argument("app_id")
@click.option("--wait", default=0, show_default=True, help="Seconds to wait for a starting server.")
@tunnel_options
@json_option
def notebook_info(app_id, wait, local_port, ssh_user, edge_host, as_json):
    """Print a running server's URL with its token and the SSH tunnel command.

    \b
    Example:
      skein-jupyter notebook info application_1700000000000_0042 --json
    """
    from .launch import skein_client
    from .notebook import info

    with skein_client() as client:
        server = info(client, app_id, wait=wait)
    _show_server(server, as_json, local_port, ssh_user, edge_host)


@notebook.command("list")
@json_option
def notebook_list(as_json):
    """List your running servers with their age, resources and idle time.

    \b
    Example:
      skein-jupyter notebook list
    """
    from .launch import skein_client
    from .notebook import list_servers
    from .units import format_duration

    with skein_client() as client:
        rows = list_servers(client)

    def line(r):
        idle = format_duration(r["idle_seconds"]) if r["idle_seconds"] is not None else "-"
        return (f"{r['app_id']:32} {r['name'][:24]:24} {r['state']:9} {format_duration(r['age_seconds']):>8} "
                f"{r['memory_mb']:>6}Mi {r['vcores']:>6} {idle:>8}")

    _echo_rows(rows, as_json, "No running servers",
               f"{'APPLICATION':32} {'NAME':24} {'STATE':9} {'AGE':>8} {'MEMORY':>8} {'VCORES':>6} {'IDLE':>8}", line)


@notebook.command("stop")
@click.argument("app_id")
@quiet_option
def notebook_stop(app_id, quiet):
    """Shut a server down cleanly; its application ends SUCCEEDED.

    \b
    Example:
      skein-jupyter notebook stop application_1700000000000_0042
    """
    from .launch import skein_client
    from .notebook import stop

    with skein_client() as client:
        report = stop(client, app_id)
    click.echo(f"Stopped {app_id} ({report.state}, {report.final_status})")


# ----------------------------------------------------------------- papermill runs

def _sweep_settings(path):
    """``--sweep FILE``: a YAML list of parameter sets, or a mapping of names to lists (a grid).

    A mapping with ``parameters:``, ``grid:`` or ``parallel:`` keys is a recipe's ``sweep:`` section.
    """
    import yaml

    from .exceptions import UsageError

    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise UsageError(f"--sweep {path} does not exist; give a YAML file of parameter sets") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"--sweep {path} is not valid YAML: {getattr(exc, 'problem', None) or exc}; "
                         "fix the syntax") from None
    if isinstance(data, list):
        return {"sweep.parameters": data}
    if isinstance(data, dict) and data and set(data) <= {"parameters", "grid", "parallel"}:
        return {f"sweep.{key}": value for key, value in data.items()}
    if isinstance(data, dict) and data:
        return {"sweep.grid": data}
    raise UsageError(f"--sweep {path} holds no parameter sets; write a list of sets (- alpha: 0.1) or a "
                     "grid (alpha: [0.1, 0.5])")


def _show_outcome(outcome, as_json, info=None):
    from .units import format_duration

    if as_json:
        _echo_json({**outcome.to_dict(), **(info or {})})
        return
    summary = outcome.summary or {}
    duration = f" in {format_duration(summary['duration'])}" if summary.get("duration") else ""
    click.echo(f"{outcome.kind.title()} {outcome.app_id} {outcome.status.replace('_', ' ')}{duration} "
               f"(YARN: {outcome.state}, {outcome.final_status})")
    if info and info.get("line") and not summary:
        click.echo(f"  {info['line']}")
    if outcome.kind == "sweep" and outcome.results:
        click.echo(f"  {'SET':>4}  {'STATUS':10} {'DURATION':>9}  OUTPUT")
        for r in outcome.results:
            click.echo(f"  {r['set']:>4}  {r['status']:10} {format_duration(r['duration']):>9}  {r['output'] or '-'}")
    for r in outcome.results if outcome.kind == "run" else []:
        if r["status"] != "succeeded":
            where = f" in cell {r['cell'] + 1}" if r.get("cell") is not None else ""
            click.echo(f"  {r['status'].replace('_', ' ')}{where}: {r['ename']}: {r['evalue']}")
        if r.get("output"):
            click.echo(f"  output notebook: {r['output']}")
        if r.get("html"):
            click.echo(f"  HTML:            {r['html']}")
    if summary.get("table") and outcome.kind == "sweep":
        click.echo(f"  table: {summary['table']} (and .csv)")
    elif not summary and outcome.state in ("FINISHED", "FAILED", "KILLED"):
        click.echo(f"  no result recorded: {outcome.diagnostics.strip().splitlines()[-1] if outcome.diagnostics else '-'}")
    if info and info.get("output"):
        click.echo(f"  outputs: {info['output']}")


def _fail_unless_succeeded(outcome):
    from .exceptions import ApplicationError

    if outcome.succeeded:
        return
    if outcome.summary and outcome.kind == "sweep":
        counts = ", ".join(f"{n} {s}" for s, n in sorted(outcome.summary["counts"].items()))
        raise ApplicationError(f"sweep {outcome.app_id} {outcome.status} ({counts}); outputs of every set are "
                               f"in {outcome.summary['output']}; logs: skein-jupyter logs {outcome.app_id}")
    if outcome.results:
        r = outcome.results[0]
        where = f" in cell {r['cell'] + 1}" if r.get("cell") is not None else ""
        raise ApplicationError(f"run {outcome.app_id} {r['status'].replace('_', ' ')}{where} ({r['ename']}); the output notebook "
                               f"{'with what ran is at ' + r['output'] if r.get('output') else 'was not saved'}; "
                               f"logs: skein-jupyter logs {outcome.app_id}")
    raise ApplicationError(f"{outcome.kind} {outcome.app_id} ended {outcome.state} ({outcome.final_status}) "
                           f"without a result; see `skein-jupyter logs {outcome.app_id}`")


@cli.command("run")
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
@click.option("-o", "--output", metavar="DIR", help="Output directory on the cluster "
              "[default: /user/{user}/skein-jupyter/runs/{app_id}].")
@click.option("--html", is_flag=True, default=None, help="Also write the output notebook as HTML.")
@click.option("--retries", type=int, help="Retries after a lost container.")
@click.option("--retry-failed-cells", is_flag=True, default=None, help="Also retry a notebook that failed in a cell.")
@click.option("--sweep", "sweep_file", metavar="FILE", help="Run every parameter set in FILE (a YAML list, or a "
              "grid of names to lists) in one application.")
@click.option("--parallel", type=int, help="Sweeps: at most this many sets at a time.")
@click.option("--detach", is_flag=True, help="Print the application id and return at once.")
@click.option("--dry-run", is_flag=True, help="Print the Skein spec instead of submitting.")
@json_option
@quiet_option
def run_command(target, typed, raw, yamls, files, kernel, engine, cell_timeout, start_timeout, timeout, output,
                html, retries, retry_failed_cells, sweep_file, parallel, detach, dry_run, as_json, quiet, **options):
    """Run a notebook with papermill in a YARN container, or a sweep of parameter sets.

    Follows the run with a cell progress bar and ends with a summary; exits
    0 if the notebook succeeded and 1 if it failed, timed out or was
    stopped (its output notebook, with what ran, is saved all the same).

    \b
    Example:
      skein-jupyter run report.ipynb --env analytics -p alpha 0.5 --html
      skein-jupyter run recipes/nightly-report.yaml --detach
      skein-jupyter run report.ipynb --env analytics --sweep sets.yaml --parallel 4
    """
    import os

    from .config import load_recipe
    from .exceptions import UsageError
    from .parameters import parameters_from_flags

    flags = recipe_flags(**options)
    is_recipe = target.endswith((".yaml", ".yml"))
    if not is_recipe:  # whether it exists and is a notebook is the recipe's check
        if not target.endswith(".ipynb"):
            raise UsageError(f"{target} is not a notebook (.ipynb) or a recipe (.yaml); give one of those")
        flags["run.notebook"] = target if "://" in target else os.path.abspath(target)
    parameters = parameters_from_flags(files=files, yamls=yamls, typed=typed, raw=raw)
    for path, value in (("run.parameters", parameters or None), ("run.kernel", kernel), ("run.engine", engine),
                        ("run.cell_timeout", cell_timeout), ("run.start_timeout", start_timeout),
                        ("run.timeout", timeout), ("run.output", output), ("run.html", html),
                        ("run.retries", retries), ("run.retry_failed_cells", retry_failed_cells),
                        ("sweep.parallel", parallel)):
        if value is not None:
            if path in flags:
                raise UsageError(f"{path} is given twice on the command line; give it once")
            flags[path] = value
    kind = None if is_recipe else "run"
    if sweep_file:
        flags.update(_sweep_settings(sweep_file))
        kind = "sweep"
    elif parallel is not None and not is_recipe:
        raise UsageError("--parallel needs --sweep FILE (the parameter sets to run in parallel)")
    model, _ = load_recipe(target if is_recipe else None, kind=kind, flags=flags)
    if model.kind == "notebook":
        raise UsageError(f"{target} is a notebook-server recipe; start it with `skein-jupyter notebook start {target}`")
    if dry_run:
        from .launch import render_spec
        from .spec import spec_to_yaml

        click.echo(spec_to_yaml(render_spec(model)), nl=False)
        return
    from .launch import skein_client
    from .runs import Preflight, start_and_follow

    preflight = Preflight(model)  # its checks run while the Skein driver starts
    with skein_client(model) as client:
        submission, outcome = start_and_follow(model, client, _progress(quiet), detach=detach, preflight=preflight)
    if outcome is None:
        if as_json:
            _echo_json({"app_id": submission.app_id})
        else:
            click.echo(submission.app_id)
        return
    _show_outcome(outcome, as_json)
    _fail_unless_succeeded(outcome)


@cli.command("status")
@click.argument("app_id")
@click.option("--wait", is_flag=True, help="Follow it to the end (progress bar, then the result), as `run` "
              "does without --detach.")
@json_option
@quiet_option
def status_command(app_id, wait, as_json, quiet):
    """Show where a run or sweep stands: cell progress while it runs, its result after.

    Exits 1 when it has ended without succeeding.

    \b
    Example:
      skein-jupyter status application_1700000000000_0042 --json
      skein-jupyter status application_1700000000000_0042 --wait
    """
    from .launch import skein_client
    from .runs import follow, status

    with skein_client() as client:
        if wait:
            outcome = follow(client, app_id, _progress(quiet))
            _show_outcome(outcome, as_json)
            _fail_unless_succeeded(outcome)
            return
        outcome, info = status(client, app_id)
    _show_outcome(outcome, as_json, info)
    if outcome.state in ("FINISHED", "FAILED", "KILLED") and not outcome.succeeded:
        sys.exit(1)


@cli.command("logs")
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
    from .applications import application_logs, log_sections

    logs = application_logs(app_id, timeout=timeout)
    if log_type:
        sections = log_sections(logs, log_type)
        if not sections:
            from .exceptions import UsageError

            raise UsageError(f"{app_id} has no {log_type} log; see the log types with `skein-jupyter logs {app_id}`")
        logs = "\n".join(sections) + "\n"
    click.echo(logs, nl=False)


@cli.command("kill")
@click.argument("app_id")
@click.option("--timeout", default=120, show_default=True,
              help="Seconds to let a run save its output before it is killed outright.")
@quiet_option
def kill_command(app_id, timeout, quiet):
    """Stop a run, sweep or server; a run saves its partial output first.

    \b
    Example:
      skein-jupyter kill application_1700000000000_0042
    """
    from .launch import skein_client
    from .runs import kill

    with skein_client() as client:
        report = kill(client, app_id, timeout=timeout)
    click.echo(f"Stopped {app_id} ({report.state}, {report.final_status})")


@cli.command("fetch")
@click.argument("app_id")
@click.argument("directory", required=False, metavar="[DIR]")
@json_option
def fetch_command(app_id, directory, as_json):
    """Download a run's output notebooks, HTML and summary (into ./APP_ID by default).

    \b
    Example:
      skein-jupyter fetch application_1700000000000_0042 reports/
    """
    from .launch import skein_client
    from .runs import fetch

    with skein_client() as client:
        files = fetch(client, app_id, directory)
    if as_json:
        _echo_json({"files": files})
        return
    for path in files:
        click.echo(path)


# ----------------------------------------------------------------- environments

@cli.group(cls=_Group)
def env():
    """Pack Python environments for YARN and publish them on HDFS.

    \b
    Example:
      skein-jupyter env pack --prefix ~/venvs/analytics -o analytics.tar.gz
      skein-jupyter env upload analytics.tar.gz --to hdfs:///apps/skein-jupyter/environments --public
    """


@env.command("pack")
@click.option("--conda", metavar="NAME", help="Pack the conda environment of this name (conda-pack).")
@click.option("--prefix", metavar="PATH", help="Pack the conda environment or virtualenv at PATH.")
@click.option("--venv", metavar="PATH", help="Pack the virtualenv at PATH (venv-pack); same as --prefix.")
@click.option("-o", "--output", required=True, metavar="FILE", help="Archive to write: .tar.gz, .tgz, .zip or .tar.")
@click.option("--for", "job", type=click.Choice(["all", "notebook", "run"]), default="all", show_default=True,
              help="Jobs the environment must run; their packages are checked before packing.")
@click.option("--name", help="Name in `env list` [default: the archive's name].")
@click.option("--compress-level", default=4, show_default=True, help="Compression, 0 (fast) to 9 (small).")
@click.option("--threads", default=1, show_default=True, help="Compression threads (conda-pack only; -1: all cores).")
@click.option("--exclude", multiple=True, metavar="PATTERN", help="Leave out files matching this glob (repeatable).")
@click.option("--force", is_flag=True, help="Replace an existing output file.")
@json_option
@quiet_option
def env_pack(conda, prefix, venv, output, job, name, compress_level, threads, exclude, force, as_json, quiet):
    """Pack an environment with its Jupyter kernelspecs patched for YARN.

    Packs the running Python's environment unless --conda, --prefix or
    --venv names another. Writes FILE and its metadata record FILE.json.

    \b
    Example:
      skein-jupyter env pack --conda analytics -o analytics.tar.gz --for notebook
    """
    from .exceptions import UsageError
    from .packing import pack

    if venv and prefix:
        raise UsageError("give either --venv PATH or --prefix PATH, not both")
    result = pack(output, conda=conda, prefix=prefix or venv, job=job, compress_level=compress_level,
                  n_threads=threads, exclude=exclude, force=force, name=name, progress=_progress(quiet))
    meta = result.metadata
    if as_json:
        _echo_json({"archive": str(result.archive), "seconds": round(result.seconds, 2), **meta})
        return
    click.echo(f"Packed {meta['kind']} environment {meta['prefix']} into {result.archive} "
               f"({meta['size'] / 2**20:.1f} MiB, {result.seconds:.1f}s)")
    click.echo(f"  python {meta['python']} on {meta['platform']}, {len(meta['packages'])} packages, "
               f"sha256 {meta['sha256'][:16]}")
    for patch in result.patched_kernels:
        click.echo(f"  kernel {patch.name}: {patch.original} -> {patch.patched}")


@env.command("upload")
@click.argument("archive", type=click.Path(dir_okay=False))
@click.option("--to", "directory", metavar="DIR",
              help="Directory on the cluster [default: hdfs:///user/<you>/.skein-jupyter/environments].")
@click.option("--public", is_flag=True, help="World-readable, shared by YARN's public localization cache.")
@json_option
@quiet_option
def env_upload(archive, directory, public, as_json, quiet):
    """Upload a packed environment, unless the same content is there already.

    \b
    Example:
      skein-jupyter env upload analytics.tar.gz --to hdfs:///apps/skein-jupyter/environments --public
    """
    from .envstore import upload

    result = upload(archive, to=directory, public=public, progress=_progress(quiet))
    if as_json:
        _echo_json({"url": result.url, "uploaded": result.uploaded, "public": result.public,
                    "seconds": round(result.seconds, 2)})
    elif result.uploaded:
        click.echo(f"Uploaded {result.url}{' (public)' if public else ''} in {result.seconds:.1f}s")
    else:
        click.echo(f"Already uploaded: {result.url} (same content); nothing transferred")


@env.command("list")
@click.argument("directory", required=False, metavar="[DIR]")
@json_option
def env_list(directory, as_json):
    """List the packed environments in a directory on the cluster.

    DIR defaults to your own (hdfs:///user/<you>/.skein-jupyter/environments);
    admins publish in hdfs:///apps/skein-jupyter/environments.

    \b
    Example:
      skein-jupyter env list hdfs:///apps/skein-jupyter/environments
    """
    from .envstore import list_environments

    records = list_environments(directory)
    _echo_rows(records, as_json, "No environments there",
               f"{'NAME':20} {'SHA256':16} {'SIZE':>9} {'PYTHON':8} {'PACKER':18} UPLOADED",
               lambda r: f"{r.get('name', '?'):20} {r.get('sha256', '?')[:16]:16} {r.get('size', 0) / 2**20:7.1f}Mi "
                         f"{r.get('python', '?'):8} {r.get('packer', '?'):18} {r.get('uploaded', '?')}"
                         f"{'  public' if r.get('public') else ''}")


# ----------------------------------------------------------------- sandbox

def _sandbox(directory, ports=()):
    from .sandbox import Sandbox, SandboxConfig
    from .sandbox.config import parse_ports

    overrides = parse_ports(",".join(ports)) if ports else None
    return Sandbox(SandboxConfig.load(directory, ports=overrides))


dir_option = click.option(
    "--dir", "directory", type=click.Path(file_okay=False),
    help="Sandbox directory [default: $SKEIN_JUPYTER_SANDBOX_DIR or ~/.local/share/skein-jupyter/sandbox].")


@cli.group(cls=_Group)
def sandbox():
    """A real single-node Hadoop (HDFS + YARN) on this machine.

    \b
    Example:
      skein-jupyter sandbox up && eval "$(skein-jupyter sandbox env)"
      yarn application -list
    """


@sandbox.command("up")
@dir_option
@click.option("--port", "ports", multiple=True, metavar="NAME=PORT",
              help="Use another port for a listener, e.g. --port resourcemanager.http=18088 (repeatable).")
@click.option("--timeout", default=300, show_default=True, help="Seconds to wait for the cluster.")
@quiet_option
def sandbox_up(directory, ports, timeout, quiet):
    """Fetch Hadoop (once), start HDFS and YARN, and wait until they serve.

    Running it on a sandbox that is up only says so.

    \b
    Example:
      skein-jupyter sandbox up --port resourcemanager.http=18088
    """
    box = _sandbox(directory, ports)
    result = box.up(progress=_progress(quiet), timeout=timeout)
    if result.already_running:
        click.echo(f"Sandbox already running in {box.config.root}")
        return
    click.echo(f"Sandbox up in {result.seconds_to_node_running:.1f}s "
               f"(started {', '.join(result.started)}"
               f"{'; fetched jars' if result.fetched_jars else ''}"
               f"{'; formatted HDFS' if result.formatted else ''})")
    click.echo(f"  HDFS  {box.config.hdfs_url}   web {box.config.web_url('namenode.http')}")
    click.echo(f"  YARN  {box.config.web_url('resourcemanager.http')}")
    click.echo('  Use it from a shell with: eval "$(skein-jupyter sandbox env)"')


@sandbox.command("down")
@dir_option
@quiet_option
def sandbox_down(directory, quiet):
    """Stop every daemon of the sandbox and any container left behind.

    \b
    Example:
      skein-jupyter sandbox down
    """
    stopped = _sandbox(directory).down(progress=_progress(quiet))
    click.echo(f"Stopped {', '.join(stopped)}" if stopped else "Sandbox was not running; nothing to stop")


@sandbox.command("status")
@dir_option
@json_option
def sandbox_status(directory, as_json):
    """Show each daemon (up or down) with its web address.

    Exits 1 when any daemon is down.

    \b
    Example:
      skein-jupyter sandbox status --json
    """
    box = _sandbox(directory)
    statuses = box.status()
    nodes = []
    if any(s.name == "resourcemanager" and s.running for s in statuses):
        try:
            nodes = box.nodes()
        except (OSError, ValueError):
            nodes = []
    if as_json:
        _echo_json({"root": str(box.config.root), "daemons": [s.to_dict() for s in statuses],
                    "nodes": nodes})
    else:
        for s in statuses:
            state = f"up (pid {s.pid})" if s.running else "down" + (" (stale pid file)" if s.stale_pid_file else "")
            click.echo(f"{s.name:16} {state:18} {s.url}")
        for node in nodes:
            health = f" - {node['health']}" if node["health"] else ""
            click.echo(f"node {node['id']:11} {node['state']}{health}")
    if not all(s.running for s in statuses):
        sys.exit(1)


@sandbox.command("env")
@dir_option
def sandbox_env(directory):
    """Print shell exports that point hadoop, hdfs, yarn and skein at the sandbox.

    \b
    Example:
      eval "$(skein-jupyter sandbox env)" && hdfs dfs -ls /
    """
    click.echo(_sandbox(directory).exports(), nl=False)


@sandbox.command("check")
@dir_option
@click.option("--timeout", default=300, show_default=True, help="Seconds to wait for the application.")
@json_option
@quiet_option
def sandbox_check(directory, timeout, as_json, quiet):
    """Run a first job: a Skein application with one echo service, then read its logs.

    Prints the time from submission to FINISHED: the floor any launch on
    this cluster is measured against.

    \b
    Example:
      skein-jupyter sandbox up && skein-jupyter sandbox check
    """
    import dataclasses

    from .exceptions import SandboxError
    from .sandbox.check import run_check

    box = _sandbox(directory)
    if not box.running:
        raise SandboxError("the sandbox is not running; start it with `skein-jupyter sandbox up`")
    result = run_check(box, timeout=timeout, progress=_progress(quiet))
    if as_json:
        _echo_json(dataclasses.asdict(result))
        return
    click.echo(f"{result.app_id} {result.final_status}: submit to FINISHED {result.seconds_to_finished:.1f}s, "
               f"logs read back after {result.seconds_to_logs:.1f}s")
    click.echo(f"  its output: {result.message}")
    click.echo(f"  see it yourself: yarn logs -applicationId {result.app_id}")


def main():
    cli(prog_name="skein-jupyter")
