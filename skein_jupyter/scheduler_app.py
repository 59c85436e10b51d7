"""The per-user scheduler application: start, find, describe and stop it.

(:mod:`skein_jupyter.scheduler` is about YARN's own scheduler, its queues.)

One long-running Skein application per user and schedules directory, tagged
``skein-jupyter-scheduler`` and with a tag naming the directory. Its one
container runs :mod:`skein_jupyter.runtime.scheduler` in your environment
(which has skein), with the runtime and deps zips; the service restarts a
lost container without limit, and the application has two attempts, so YARN
brings it back after a lost container, node or ApplicationMaster. All its
state is on HDFS.

The container starts its own Skein driver (Java) to submit: it needs
``JAVA_HOME`` and ``yarn`` (for ``yarn classpath``) on the NodeManager's
environment (``yarn.nodemanager.env-whitelist``), as the sandbox has. On a
Kerberized cluster it also needs a keytab (``--keytab``/``--principal``): the
application's delegation tokens cannot submit new applications for long.
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from typing import TYPE_CHECKING, Any

from .exceptions import UsageError
from .kinds import APP_TAG
from .progress import Progress
from .runtime import cron
from .runtime.scheduler import CONFIG, HEARTBEAT

if TYPE_CHECKING:
    import skein

__all__ = ["SchedulerStatus", "find_scheduler", "start", "status", "stop", "build_spec"]

NAME = "skein-jupyter-scheduler"
SERVICE = "scheduler"
MEMORY = "768 MiB"
ACTIVE = ["NEW", "NEW_SAVING", "SUBMITTED", "ACCEPTED", "RUNNING"]


def find_scheduler(client: skein.Client) -> Any:
    """The report of your live scheduler for the schedules directory in use, or None."""
    from .identity import hadoop_user
    from .schedules import schedules_dir

    tag = cron.directory_tag(schedules_dir())
    user = hadoop_user()
    for report in client.get_applications(states=ACTIVE, name=NAME):
        if tag in set(report.tags) and report.user == user:
            return report
    return None


def build_spec(environment: str, environment_public: bool, config_file: str, runtime: str, deps: str,
               queue: str, tags: set[str], keytab: str | None = None) -> skein.ApplicationSpec:
    import skein

    from .spec import ENV_DIR, MASTER_MEMORY, RUNTIME_FILE
    from .runtime.webhdfs import DEPS_FILE

    visibility = "public" if environment_public else "private" if "://" in environment else "application"
    files = {ENV_DIR: skein.File(environment, type="archive", visibility=visibility),
             RUNTIME_FILE: skein.File(runtime, type="file"), DEPS_FILE: skein.File(deps, type="file"),
             CONFIG: skein.File(config_file, type="file", visibility="application")}
    if keytab:
        files["scheduler.keytab"] = skein.File(keytab, type="file", visibility="application")
    import shlex

    script = "\n".join([shlex.join(["source", f"{ENV_DIR}/bin/activate"]),
                        shlex.join(["exec", "python", "-m", "skein_jupyter_runtime.scheduler", CONFIG])])
    service = skein.Service(resources=skein.Resources(memory=MEMORY, vcores=1), files=files,
                            env={"PYTHONPATH": RUNTIME_FILE}, script=script, max_restarts=-1)
    return skein.ApplicationSpec(name=NAME, queue=queue, tags=sorted(tags), max_attempts=2,
                                 master=skein.Master(resources=skein.Resources(memory=MASTER_MEMORY, vcores=1)),
                                 services={SERVICE: service})


def start(client: skein.Client, environment: str | None = None, queue: str | None = None, poll: float = 30,
          keytab: str | None = None, principal: str | None = None, progress: Progress | None = None) -> str:
    """Start your scheduler; UsageError if one runs already. Returns its application id."""
    from .config import load_recipe
    from .envstore import prepare
    from .identity import hadoop_user
    from .runtime_zip import deps_zip, runtime_zip
    from .schedules import schedules_dir
    from .workspaces import namenode_urls

    if poll < 1:
        raise UsageError("--poll must be at least 1 second")
    if bool(keytab) != bool(principal):
        raise UsageError("--keytab and --principal go together (a Kerberized cluster needs both)")
    flags = {key: value for key, value in (("environment", environment), ("queue", queue)) if value}
    recipe, _ = load_recipe(None, kind="notebook", flags=flags)  # the config layers: environment, queue
    if recipe.environment is None:
        raise UsageError("the scheduler needs a packed environment with skein: give it with `skein-jupyter "
                         "scheduler start --env ENV` (an archive, an hdfs:// URL or a name from `env list`), or "
                         "set environment: in your config file")
    progress = progress or Progress.quiet()
    existing = find_scheduler(client)
    if existing is not None:
        raise UsageError(f"your scheduler already runs as {existing.id} ({existing.state}); one per user: see "
                         "`skein-jupyter scheduler status`, or stop it first with `skein-jupyter scheduler stop`")
    assert recipe.environment is not None
    prepared = prepare(recipe.environment, progress=progress)
    check_environment(prepared.metadata)
    directory = schedules_dir()
    user = hadoop_user()
    config: dict[str, Any] = {"user": user, "directory": directory, "namenodes": namenode_urls(), "poll": poll,
                              "grace": max(60.0, 3 * poll)}
    if keytab:
        config.update(keytab="scheduler.keytab", principal=principal)
    fd, path = tempfile.mkstemp(prefix="skein-jupyter-scheduler-", suffix=".json")  # mode 600
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(config, f)
        spec = build_spec(prepared.url, prepared.public, path, str(runtime_zip()), str(deps_zip()),
                          recipe.queue, {APP_TAG, cron.SCHEDULER_TAG, cron.directory_tag(directory)}, keytab)
        progress.step("submitting the scheduler to YARN")
        app_id = client.submit(spec)  # Skein copies the config into the application's private staging dir
    finally:
        os.unlink(path)
    return str(app_id)


def check_environment(metadata: dict) -> None:
    """Refuse an environment the scheduler cannot run in (when its metadata says): skein, Python 3.9+."""
    name = f"environment {metadata.get('name', '')} ({metadata.get('url', 'local')})"
    packages = metadata.get("packages") or {}
    if packages and "skein" not in packages:
        raise UsageError(f"{name} lacks skein, which the scheduler submits with; install it in the environment "
                         "and pack it again")
    version = str(metadata.get("python") or "")
    try:
        major_minor = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        return
    if len(major_minor) == 2 and major_minor < (3, 9):
        raise UsageError(f"{name} has Python {version}; the scheduler needs Python 3.9 or later (zoneinfo)")


@dataclasses.dataclass
class SchedulerStatus:
    app_id: str | None
    state: str | None
    directory: str
    schedules: list[dict]
    #: When the scheduler last ended a pass over the schedules (UTC), from its heartbeat file; None if unknown.
    last_pass: str | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def status(client: skein.Client, fs: Any = None) -> SchedulerStatus:
    """Your scheduler (if it runs) and your schedules with their next fire times."""
    from .schedules import list_schedules, next_fires, schedules_dir

    report = find_scheduler(client)
    rows = []
    for definition in list_schedules(fs):
        upcoming = next_fires(definition)
        rows.append({"name": definition.name, "cron": definition.cron, "timezone": definition.timezone,
                     "paused": definition.paused,
                     "next": upcoming[0].strftime("%Y-%m-%dT%H:%M:%SZ") if upcoming else None})
    last_pass = None
    try:
        from .hdfs import HadoopFS

        beat = json.loads((fs or HadoopFS()).cat(f"{schedules_dir()}/{HEARTBEAT}") or "{}")
        last_pass = beat.get("last_pass") if isinstance(beat, dict) else None
    except ValueError:
        pass
    return SchedulerStatus(str(report.id) if report else None, str(report.state) if report else None,
                           schedules_dir(), rows, last_pass)


def stop(client: skein.Client) -> str | None:
    """Stop your scheduler (schedules stay; nothing fires until it starts again).

    Returns its id, or None when it was not running (a stop is idempotent, as ``sandbox down`` is).
    """
    from .applications import wait_for_final_state

    report = find_scheduler(client)
    if report is None:
        return None
    client.kill_application(report.id)
    wait_for_final_state(client, str(report.id), 60)
    return str(report.id)
