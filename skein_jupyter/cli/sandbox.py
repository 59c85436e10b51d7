"""``skein-jupyter sandbox``: a real single-node Hadoop on this machine."""
import sys

import click

from .options import json_option, progress, quiet_option
from .render import echo_json, show_sandbox_status

__all__ = ["sandbox"]


def _sandbox(directory, ports=(), gpus=None):
    from ..sandbox import Sandbox, SandboxConfig
    from ..sandbox.config import parse_ports

    overrides = parse_ports(",".join(ports)) if ports else None
    return Sandbox(SandboxConfig.load(directory, ports=overrides, gpus=gpus))


dir_option = click.option(
    "--dir", "directory", type=click.Path(file_okay=False),
    help="Sandbox directory [default: $SKEIN_JUPYTER_SANDBOX_DIR or ~/.local/share/skein-jupyter/sandbox].")


@click.group()
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
@click.option("--gpus", type=click.IntRange(min=0), default=None,
              help="Declare N countable yarn.io/gpu on the node (no GPU hardware needed); "
                   "remembered for later `up` [default: as last time, else 0].")
@click.option("--restart", is_flag=True,
              help="If the sandbox runs with another --gpus, stop it (killing its applications) and start it again.")
@click.option("--timeout", default=300, show_default=True, help="Seconds to wait for the cluster.")
@quiet_option
def sandbox_up(directory, ports, gpus, restart, timeout, quiet):
    """Fetch Hadoop (once), start HDFS and YARN, and wait until they serve.

    Running it on a sandbox that is up only says so.

    \b
    Example:
      skein-jupyter sandbox up --port resourcemanager.http=18088
      skein-jupyter sandbox up --gpus 2     # then: skein-jupyter run NB.ipynb --gpus 1 ...
    """
    box = _sandbox(directory, ports, gpus)
    result = box.up(progress=progress(quiet), timeout=timeout, restart=restart)
    if result.already_running:
        click.echo(f"Sandbox already running in {box.config.root}")
        return
    click.echo(f"Sandbox up in {result.seconds_to_node_running:.1f}s "
               f"(started {', '.join(result.started)}"
               f"{'; fetched jars' if result.fetched_jars else ''}"
               f"{'; formatted HDFS' if result.formatted else ''})")
    click.echo(f"  HDFS  {box.config.hdfs_url}   web {box.config.web_url('namenode.http')}")
    gpus = f"   {box.config.gpus} GPU(s) (yarn.io/gpu)" if box.config.gpus else ""
    click.echo(f"  YARN  {box.config.web_url('resourcemanager.http')}{gpus}")
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
    stopped = _sandbox(directory).down(progress=progress(quiet))
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
    show_sandbox_status(box.config.root, statuses, nodes, as_json)
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

    from ..exceptions import SandboxError
    from ..sandbox.check import run_check

    box = _sandbox(directory)
    if not box.running:
        raise SandboxError("the sandbox is not running; start it with `skein-jupyter sandbox up`")
    result = run_check(box, timeout=timeout, progress=progress(quiet))
    if as_json:
        echo_json(dataclasses.asdict(result))
        return
    click.echo(f"{result.app_id} {result.final_status}: submit to FINISHED {result.seconds_to_finished:.1f}s, "
               f"logs read back after {result.seconds_to_logs:.1f}s")
    click.echo(f"  its output: {result.message}")
    click.echo(f"  see it yourself: yarn logs -applicationId {result.app_id}")
