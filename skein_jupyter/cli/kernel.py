"""``skein-jupyter kernel``: kernelspecs whose kernels start in YARN containers."""
import os

import click

from .options import json_option, one_of
from .render import echo_json, echo_rows

__all__ = ["kernel"]

KERNEL_HEADER = f"{'NAME':24} {'ENV':28} {'MEMORY':>7} {'VCORES':>6} {'GPUS':>4} {'QUEUE':12} SSH"


def _kernel_line(row: dict) -> str:
    config = row["config"]
    env = str(config.get("env", "?"))
    if len(env) > 28:
        env = "…" + env[-27:]
    memory = f"{config['memory']}M" if "memory" in config else "-"
    return (f"{row['name']:24} {env:28} {memory:>7} {config.get('vcores', '-'):>6} {config.get('gpus', '-'):>4} "
            f"{config.get('queue', '-'):12} {config.get('ssh_host') or '-'}")


@click.group()
def kernel():
    """Jupyter kernels that run in YARN containers, for any local Jupyter.

    Installs a kernelspec that JupyterLab, Notebook 7, nbclient and papermill
    list like any other; starting it submits a YARN application whose
    container runs ipykernel from the packed environment.

    \b
    Example:
      skein-jupyter kernel install --env analytics --memory 4GiB
      papermill report.ipynb out.ipynb -k yarn-analytics
    """


@kernel.command("install")
@click.option("--env", "env", required=True, metavar="ENV",
              help="Packed environment: a published name, a local .tar.gz, or an hdfs:// archive.")
@click.option("--name", help="Kernelspec name: lower-case letters, digits, '.', '_', '-' [default: yarn-<env>].")
@click.option("--display-name", help="Name Jupyter shows [default: Python on YARN (<env>)].")
@click.option("--memory", help="Container memory, e.g. 4GiB (a bare number is MiB).")
@click.option("--vcores", type=int, help="Container virtual cores.")
@click.option("--gpus", type=int, help="Container GPUs (yarn.io/gpu).")
@click.option("--queue", help="YARN queue.")
@click.option("--node-label", help="YARN node label expression.")
@click.option("--idle-timeout", help="End the kernel after this long without running code, e.g. 2h "
              "[default: never].")
@click.option("--lease", help="End the application this long after its client stops renewing the lease "
              "(crashed, killed), at least 10s [default: 60s].")
@click.option("--ssh-host", metavar="[USER@]HOST",
              help="Reach the kernel through SSH forwarding via this host (from a laptop outside the cluster).")
@click.option("--user", "user", is_flag=True, help="Install for you (jupyter --data-dir) [the default].")
@click.option("--sys-prefix", is_flag=True, help="Install into this Python environment (sys.prefix).")
@click.option("--prefix", metavar="PATH", help="Install into PATH/share/jupyter/kernels.")
@click.option("--replace", is_flag=True, help="Replace a skein-jupyter kernel of the same name.")
@click.option("--no-check", is_flag=True, help="Do not ask the cluster whether the environment exists and the "
              "queue and resources fit (e.g. installing into an image offline); the kernel's start checks them.")
@json_option
def kernel_install(env, name, display_name, memory, vcores, gpus, queue, node_label, idle_timeout, lease, ssh_host,
                   user, sys_prefix, prefix, replace, no_check, as_json):
    """Install a kernelspec whose kernels start in YARN containers.

    Options left out take your configuration (`skein-jupyter config show
    --kind kernel`) when the kernel starts. Every option is checked first,
    and the cluster is asked whether the environment exists and the queue
    and resources fit: on a bad one nothing is written (exit 2).

    \b
    Example:
      skein-jupyter kernel install --env analytics --memory 4GiB --vcores 2 --idle-timeout 2h
      skein-jupyter kernel install --env analytics --name yarn-gpu --gpus 1 --queue gpu --sys-prefix
      skein-jupyter kernel install --env hdfs:///apps/envs/ml.tar.gz --ssh-host me@edge.example.com
    """
    from ..kernels import install_kernel, list_kernels, sys_prefix as this_prefix

    where = one_of({"--user": user, "--sys-prefix": sys_prefix, "--prefix": prefix}, "install in one place")
    installed = install_kernel(
        {"env": env, "name": name, "memory": memory, "vcores": vcores, "gpus": gpus, "queue": queue,
         "node_label": node_label, "idle_timeout": idle_timeout, "lease": lease, "ssh_host": ssh_host},
        display_name=display_name, user=where in (None, "--user"),
        prefix=this_prefix() if where == "--sys-prefix" else prefix, replace=replace, check_cluster=not no_check)
    if as_json:
        echo_json(installed.to_dict())
    else:
        click.echo(f"Installed kernel {installed.name} ({installed.display_name}) in {installed.resource_dir}")
        click.echo(f"Use it: papermill NOTEBOOK.ipynb OUT.ipynb -k {installed.name}, or pick "
                   f"\"{installed.display_name}\" in JupyterLab")
        if prefix and installed.name not in {kernel.name for kernel in list_kernels()}:
            data = os.path.join(os.path.abspath(prefix), "share", "jupyter")
            click.echo(f"Note: Jupyter does not look in {data} here; to use, list or remove this kernel, add it "
                       f"to JUPYTER_PATH (export JUPYTER_PATH={data})")


@kernel.command("list")
@json_option
def kernel_list(as_json):
    """List the installed skein-jupyter kernels with their environment and resources.

    A dash is an option left to your configuration at start.

    \b
    Example:
      skein-jupyter kernel list --json
    """
    from ..kernels import list_kernels

    rows = [kernel.to_dict() for kernel in list_kernels()]
    echo_rows(rows, as_json, "No skein-jupyter kernels: install one with `skein-jupyter kernel install --env ENV`",
              KERNEL_HEADER, _kernel_line)


@kernel.command("remove")
@click.argument("name")
@json_option
def kernel_remove(name, as_json):
    """Remove an installed skein-jupyter kernel (never another kernelspec).

    \b
    Example:
      skein-jupyter kernel remove yarn-analytics
    """
    from ..kernels import remove_kernel

    removed = remove_kernel(name)
    if as_json:
        echo_json(removed.to_dict())
    else:
        click.echo(f"Removed kernel {removed.name} ({removed.resource_dir})")
