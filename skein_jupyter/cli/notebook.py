"""``skein-jupyter notebook``: Jupyter servers on YARN."""
import click

from ..kinds import FRONTENDS
from .options import (json_option, one_of, progress, quiet_option, recipe_flags, recipe_options, set_fields,
                      tunnel_options)
from .recipes import print_spec
from .render import SERVER_HEADER, echo_rows, server_line, show_server

__all__ = ["notebook"]


def _show(server, as_json, local_port, ssh_user, edge_host, warning=None):
    from ..notebook import tunnel

    show_server(server, tunnel(server, local_port, ssh_user, edge_host), as_json, warning)


def frontend_options(command):
    """One flag per frontend (``--lab``, ``--notebook7``, ``--server``); more than one is refused."""
    for frontend in reversed(list(FRONTENDS.values())):
        default = " (the default)" if frontend.name == "lab" else ""
        command = click.option(frontend.flag, f"frontend_{frontend.name}", is_flag=True, default=False,
                               help=f"{frontend.title}{default}.")(command)
    return command


def _frontend(options):
    """The frontend the flags pick, or None; two frontend flags conflict."""
    given = {frontend.flag: options.pop(f"frontend_{name}") for name, frontend in FRONTENDS.items()}
    flag = one_of(given, "a server has one frontend")
    return next((name for name, frontend in FRONTENDS.items() if frontend.flag == flag), None)


@click.group()
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
@frontend_options
@click.option("--idle-timeout", help="Stop after this long without activity, e.g. 2h.")
@click.option("--max-lifetime", help="Stop after this long whatever happens, e.g. 12h.")
@click.option("--tls", is_flag=True, default=None, help="Serve HTTPS with a certificate made for this server.")
@click.option("--workspace", metavar="NAME|URL",
              help="Workspace on HDFS to work in: a name (default: default) or an hdfs:// URL of a directory.")
@click.option("--sync-interval", help="Send files written by kernels and terminals this often, e.g. 30s.")
@click.option("--scheduler", is_flag=True, default=None,
              help="Enable jupyter-scheduler (Create Notebook Job, Notebook Jobs) with jobs run on YARN; "
                   "the environment needs jupyter-scheduler.")
@click.option("--timeout", default=300, show_default=True, help="Seconds to wait for the server to come up.")
@click.option("--dry-run", is_flag=True, help="Print the Skein spec instead of submitting.")
@tunnel_options
@json_option
@quiet_option
def notebook_start(recipe, idle_timeout, max_lifetime, tls, workspace, sync_interval, scheduler, timeout, dry_run,
                   local_port, ssh_user, edge_host, as_json, quiet, **options):
    """Start a Jupyter server in a YARN container and print how to reach it.

    The server keeps running after the command exits; it stops when idle
    (1h by default), at its maximum lifetime, or with `notebook stop`. It
    works in a workspace on HDFS (`default` unless --workspace says), copied
    in before it answers; saves reach HDFS at once, so nothing saved is lost
    when it stops or is killed, and the next server on the workspace has it.

    \b
    Example:
      skein-jupyter notebook start recipes/notebook-server.yaml --memory 8GiB
      skein-jupyter notebook start --env analytics.tar.gz --notebook7 --idle-timeout 30m
      skein-jupyter notebook start --env analytics --workspace churn-study
      skein-jupyter notebook start --env analytics --scheduler
    """
    from ..config import load_recipe

    frontend = _frontend(options)
    flags = set_fields(recipe_flags(**options), [
        ("notebook.frontend", frontend), ("notebook.idle_timeout", idle_timeout),
        ("notebook.max_lifetime", max_lifetime), ("notebook.tls", tls), ("notebook.workspace", workspace),
        ("notebook.sync_interval", sync_interval), ("notebook.scheduler", scheduler)])
    model, _ = load_recipe(recipe, kind="notebook", flags=flags)
    if dry_run:
        print_spec(model)
        return
    from ..launch import skein_client
    from ..notebook import check_local_port, start

    if local_port is not None:
        check_local_port(local_port)  # before anything is submitted
    with skein_client(model) as client:
        server = start(model, client, timeout=timeout, progress=progress(quiet))
    _show(server, as_json, local_port, ssh_user, edge_host)


@notebook.command("info")
@click.argument("app_id")
@click.option("--wait", default=0, show_default=True, type=click.FloatRange(min=0),
              help="Seconds to wait for a starting server; it is never stopped, whatever happens.")
@tunnel_options
@json_option
def notebook_info(app_id, wait, local_port, ssh_user, edge_host, as_json):
    """Print a running server's URL with its token and the SSH tunnel command.

    Only looks: a server that is still starting is left to start, and this
    exits 1 saying so (or waits for it with --wait). A server that will stop
    itself soon (idle, or at its maximum lifetime) shows a warning first.

    \b
    Example:
      skein-jupyter notebook info application_1700000000000_0042 --json
    """
    from ..launch import skein_client
    from ..notebook import info_with_warning

    with skein_client() as client:
        server, warning = info_with_warning(client, app_id, wait=wait)
    _show(server, as_json, local_port, ssh_user, edge_host, warning)


@notebook.command("list")
@json_option
def notebook_list(as_json):
    """List your running servers with their age, resources and idle time.

    \b
    Example:
      skein-jupyter notebook list
    """
    from ..launch import skein_client
    from ..notebook import list_servers

    with skein_client() as client:
        rows = list_servers(client)
    echo_rows(rows, as_json, "No running servers", SERVER_HEADER, server_line)


@notebook.command("stop")
@click.argument("app_id")
@quiet_option
def notebook_stop(app_id, quiet):
    """Shut a server down cleanly; its application ends SUCCEEDED.

    \b
    Example:
      skein-jupyter notebook stop application_1700000000000_0042
    """
    from ..launch import skein_client
    from ..notebook import stop

    with skein_client() as client:
        report = stop(client, app_id)
    click.echo(f"Stopped {app_id} ({report.state}, {report.final_status})")
