"""jupyter-scheduler in a notebook server's container, with skein-jupyter's YARN backend.

``notebook.scheduler`` in a recipe (``notebook start --scheduler``). The environment has
jupyter-scheduler (its JupyterLab and server extensions); skein-jupyter is not installed there:
the application ships the package, with the pure-Python packages it imports, as an archive YARN
unpacks into ``skein_jupyter_lib/``. It goes *first* on the server process's ``sys.path`` only,
so the backend is the version that started the server even if the environment has an older
skein-jupyter; kernels and terminals do not see it (jupyter-scheduler's job processes, started by
the server, inherit it). The server process exports ``SKEIN_CONFIG`` (the container's driver),
``SKEIN_JUPYTER_CACHE_DIR`` and, under simple authentication, ``HADOOP_USER_NAME`` (the job's
user): kernels and terminals inherit these, so a ``skein`` client there uses the same driver.

Runs are submitted through one Skein driver of the container's own, started by the server
process with the application's own credentials and tied to it (it ends when the server process
ends: Skein's "global" driver would start a session of its own and outlive the container). Its
address is written where Skein looks for a global driver, in a configuration directory in the
container's working directory (never the home directory, which on a NodeManager may be shared),
so every process of the extension uses that one JVM. On a Kerberized cluster it logs in with the
keytab the job ships (the recipe's ``kerberos.keytab``); without one it has the application's
delegation tokens only.
The job database lives in the container's working directory, which is
writable and private to the user (the localized environment is read-only).
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .common import log

if TYPE_CHECKING:
    from traitlets.config import Config

    from .job import LabSchedulerJob

__all__ = ["prepare", "configure", "start_driver", "stop_driver"]

#: Under the container's working directory: Skein's config (driver address), caches, the job database.
SKEIN_DIR, CACHE_DIR, DB_DIR = ".skein", ".skein-jupyter-cache", ".jupyter-scheduler"


def prepare(scheduler: LabSchedulerJob, user: str, home: Path) -> str | None:
    """Check what the scheduler needs and set this process's environment for it; the error, or None.

    Must run before anything imports skein (it reads ``SKEIN_CONFIG`` once).
    """
    if importlib.util.find_spec("jupyter_scheduler") is None:
        return ("the environment lacks jupyter_scheduler for notebook.scheduler (--scheduler); install "
                "jupyter-scheduler in it and pack it again")
    library = home / scheduler.library
    if not (library / "skein_jupyter" / "__init__.py").is_file():
        return f"{scheduler.library} (the skein-jupyter package the application ships) is missing in the container"
    for name in (SKEIN_DIR, CACHE_DIR, DB_DIR):
        (home / name).mkdir(mode=0o700, exist_ok=True)
    os.environ["SKEIN_CONFIG"] = str(home / SKEIN_DIR)
    os.environ["SKEIN_JUPYTER_CACHE_DIR"] = str(home / CACHE_DIR)
    # Hadoop honours it under simple authentication only; the job's user is who the application runs as.
    os.environ.setdefault("HADOOP_USER_NAME", user)
    try:
        from .scheduler import _yarn_on_path

        _yarn_on_path()  # the driver runs `yarn classpath`; the backend may run `hdfs dfs`
    except RuntimeError as exc:
        return str(exc)
    sys.path.insert(0, str(library))
    return None


def configure(config: Config, home: Path) -> None:
    """Put the backend and the container's database into the server's traitlets ``config``.

    The backend's options are the shipped package's own (``SERVER_OPTIONS``,
    ``--Section.name=value``), read from it once :func:`prepare` put it on the path:
    the one place that names its classes.
    """
    import importlib

    options = importlib.import_module("skein_jupyter.jupyter_scheduler").SERVER_OPTIONS
    for option in options:
        name, _, value = option[len("--"):].partition("=")
        section, _, trait = name.rpartition(".")
        config[section][trait] = value
    config.SchedulerApp.db_url = f"sqlite:///{home / DB_DIR / 'scheduler.sqlite'}"


_client = None  # the driver's owner: the driver lives as long as it does


def start_driver(scheduler: LabSchedulerJob) -> str | None:
    """Start the container's Skein driver (keytab login if shipped) and publish it as the global one;
    the error, or None."""
    import json
    import time

    import skein

    global _client
    logs = (os.environ.get("LOG_DIRS") or "").split(",")[0]
    began = time.monotonic()
    try:
        _client = skein.Client(keytab=scheduler.keytab and os.path.abspath(scheduler.keytab),
                               principal=scheduler.principal,
                               log=os.path.join(logs, "skein-driver.log") if logs else None,
                               java_options=["-Xmx256m"])  # the container's memory is the notebook's
    except Exception as exc:  # no Java, no Hadoop configuration: the scheduler cannot submit
        return f"the Skein driver for jupyter-scheduler did not start: {exc}"
    # What skein.Client.from_global_driver() reads (an address and a pid; no secret).
    fd = os.open(os.path.join(os.environ["SKEIN_CONFIG"], "driver"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"address": _client.address, "pid": _client._proc.pid}, handle)
    log(f"jupyter-scheduler: Skein driver started in {time.monotonic() - began:.1f}s")
    return None


def stop_driver() -> None:
    """Stop the container's driver; never raises (the container is ending anyway)."""
    try:
        os.unlink(os.path.join(os.environ["SKEIN_CONFIG"], "driver"))
        if _client is not None:
            _client.close()
    except Exception as exc:
        log(f"jupyter-scheduler: Skein driver not stopped cleanly: {exc}")
