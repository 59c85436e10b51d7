"""Schedules: cron definitions on HDFS that the user's scheduler application fires.

A schedule is a private directory ``<schedules dir>/<name>/`` (700, files
600): ``schedule.json`` (the :class:`~skein_jupyter.runtime.cron.Definition`),
``spec.yaml`` (the Skein spec of the run, sweep or flow, every file of it on
HDFS: the job, input notebook and runtime under ``files/``, the environment
where a launch put it), ``history/`` (one record per fire, written by the
scheduler) and ``triggers/`` (requests of ``schedule trigger``). The
schedules directory is ``/user/<you>/skein-jupyter/schedules``, or
``$SKEIN_JUPYTER_SCHEDULES_DIR``. The scheduler itself is in
:mod:`skein_jupyter.scheduler_app`.
"""
from __future__ import annotations

import json
import os
import secrets
import tempfile
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .exceptions import ApplicationError, UsageError
from .progress import Progress
from .runtime import cron
from .runtime.scheduler import DEFINITION, FILES, HISTORY, SPEC, TRIGGERS

if TYPE_CHECKING:
    import skein

    from .hdfs import HadoopFS
    from .recipe import Recipe

__all__ = ["schedules_dir", "check_new", "create", "load", "list_schedules", "set_paused", "delete", "history",
           "trigger", "next_fires", "describe_target", "DIR_VARIABLE"]

DIR_VARIABLE = "SKEIN_JUPYTER_SCHEDULES_DIR"
UTC = timezone.utc


def schedules_dir(user: str | None = None) -> str:
    """Where your schedules live on HDFS (``$SKEIN_JUPYTER_SCHEDULES_DIR`` overrides the default)."""
    from .identity import hadoop_user

    configured = os.environ.get(DIR_VARIABLE)
    if configured and (not configured.startswith("/") or "://" in configured or configured.rstrip("/") == ""):
        raise UsageError(f"{DIR_VARIABLE}={configured} is not an absolute HDFS path; give one such as "
                         "/user/you/skein-jupyter/schedules (no hdfs:// URL, not relative)")
    return (configured or f"/user/{user or hadoop_user()}/skein-jupyter/schedules").rstrip("/")


def _fs(fs: HadoopFS | None) -> HadoopFS:
    from .hdfs import HadoopFS

    return fs or HadoopFS()


def _usage(exc: cron.ScheduleError) -> UsageError:
    return UsageError(str(exc))


def check_new(name: str, cron_expr: str | None, tz: str, misfire: str, overlap: str) -> None:
    """The checks of ``schedule create`` that need no cluster; raise UsageError (nothing is written)."""
    try:
        cron.check_name(name)
        if not cron_expr:
            raise cron.ScheduleError("--cron missing; give a cron expression, e.g. --cron '0 6 * * *'")
        cron.check_cron(cron_expr)
        cron.check_timezone(tz)
    except cron.ScheduleError as exc:
        raise _usage(exc) from None
    if misfire not in cron.MISFIRE or overlap not in cron.OVERLAP:
        raise UsageError(f"--misfire is one of {', '.join(cron.MISFIRE)} and --overlap one of "
                         f"{', '.join(cron.OVERLAP)}")


def describe_target(recipe: Recipe, target: str) -> dict[str, Any]:
    """What a schedule fires, for people (no parameter values: they stay in the private job file)."""
    description: dict[str, Any] = {"target": target, "kind": recipe.kind, "name": recipe.app_name,
                                   "environment": str(recipe.environment.value) if recipe.environment else None}
    run = getattr(recipe, "run", None)
    if recipe.kind in ("run", "sweep") and run is not None:
        description.update(notebook=run.notebook, output=run.output, parameters=sorted(run.parameters))
    return description


def _preflight(recipe: Recipe) -> tuple[Any, Any]:
    """The checks ``run`` makes before submitting (runs and sweeps; other kinds check in their loader)."""
    if recipe.kind not in ("run", "sweep"):
        return None, None
    from .preflight import Preflight

    preflight = Preflight(recipe)
    return preflight.check, preflight.check_early


def create(name: str, cron_expr: str, recipe: Recipe, target: str, client: skein.Client,
           tz: str = "UTC", misfire: str = "run-once", overlap: str = "skip", fs: HadoopFS | None = None,
           progress: Progress | None = None, now: datetime | None = None, paused: bool = False) -> cron.Definition:
    """Check everything, then write the schedule's directory (``paused``: made paused); nothing is written if a
    check fails.

    ``recipe`` is the target as ``run`` loads it (from a notebook and flags, or
    a run, sweep or flow recipe); it is checked and rendered as ``run``
    would submit it, with its files uploaded into the schedule's directory.
    """
    check_new(name, cron_expr, tz, misfire, overlap)
    if recipe.kind == "notebook":
        raise UsageError(f"{target} is a notebook-server recipe; a schedule fires runs, sweeps and flows")
    if recipe.kind == "kernel":
        raise UsageError(f"{target} is a kernel recipe; kernels are started by Jupyter "
                         "(`skein-jupyter kernel install --env ENV`), a schedule fires runs, sweeps and flows")
    if recipe.proxy_user:
        raise UsageError("proxy_user: schedules run as their owner (the scheduler submits as you); drop it")
    from .launch import render_on_cluster
    from .spec import spec_to_yaml

    fs = _fs(fs)
    progress = progress or Progress.quiet()
    directory = f"{schedules_dir()}/{name}"
    if fs.exists(directory):
        raise UsageError(f"schedule {name} exists; choose another name, or `skein-jupyter schedule delete {name}` "
                         "first")
    checks, early_checks = _preflight(recipe)
    now = now or datetime.now(UTC)
    definition = cron.Definition(name=name, cron=cron_expr, timezone=tz, misfire=misfire, overlap=overlap,
                                 not_before=cron.stamp(now), created=cron.stamp(now),
                                 target=describe_target(recipe, target), paused=paused)
    with tempfile.TemporaryDirectory(prefix="skein-jupyter-schedule-") as stage:
        os.chmod(stage, 0o700)
        spec = render_on_cluster(recipe, client, directory, stage, progress, checks, early_checks)
        for sub in (HISTORY, TRIGGERS, FILES):
            os.makedirs(os.path.join(stage, sub), mode=0o700, exist_ok=True)
        _write_local(os.path.join(stage, SPEC), spec_to_yaml(spec))
        _write_local(os.path.join(stage, DEFINITION), definition.to_json())
        progress.step(f"writing schedule {name} to {directory}")
        _make_directory(fs, directory)
        try:
            # One JVM; the definition last, as the scheduler ignores a directory without one.
            fs.put([os.path.join(stage, entry) for entry in (FILES, HISTORY, TRIGGERS, SPEC, DEFINITION)],
                   directory)
        except BaseException:
            fs.run("-rm", "-r", "-f", "-skipTrash", directory, check=False)
            raise
    return definition


def _make_directory(fs: HadoopFS, directory: str) -> None:
    """Create the schedule's directory (700); UsageError if it exists (another create got there first)."""
    for attempt in range(2):
        proc = fs.run("-mkdir", directory, share="private", check=False)  # not -p: fails if it exists
        if proc.returncode == 0:
            return
        if "File exists" in proc.stderr:
            raise UsageError(f"schedule {directory.rsplit('/', 1)[-1]} exists; choose another name")
        if attempt == 0:  # the schedules directory itself is missing: the first schedule
            fs.run("-mkdir", "-p", directory.rsplit("/", 1)[0], share="private")
    fs.run("-mkdir", directory, share="private")


def _write_local(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def _put_definition(fs: HadoopFS, directory: str, definition: cron.Definition) -> None:
    """Replace ``schedule.json``: ``hdfs dfs -put`` writes a temporary name and renames it (atomic)."""
    with tempfile.TemporaryDirectory(prefix="skein-jupyter-schedule-") as local:
        path = os.path.join(local, DEFINITION)
        _write_local(path, definition.to_json())
        fs.put([path], f"{directory}/{DEFINITION}")


def _parse_many(text: str) -> list[dict]:
    """The JSON objects of ``hdfs dfs -cat`` of several files, one after another."""
    decoder, objects, index = json.JSONDecoder(), [], 0
    text = text.strip()
    while index < len(text):
        value, end = decoder.raw_decode(text, index)
        objects.append(value)
        index = end
        while index < len(text) and text[index].isspace():
            index += 1
    return objects


def load(name: str, fs: HadoopFS | None = None) -> cron.Definition:
    """The definition of schedule ``name``; UsageError if there is none."""
    try:
        cron.check_name(name)
    except cron.ScheduleError as exc:
        raise _usage(exc) from None
    text = _fs(fs).cat(f"{schedules_dir()}/{name}/{DEFINITION}")
    if not text.strip():
        raise UsageError(f"no schedule {name}; list yours with `skein-jupyter schedule list`")
    return _definition(text, name)


def _definition(text: str, name: str) -> cron.Definition:
    try:
        return cron.Definition.from_json(text)
    except cron.ScheduleError as exc:
        raise UsageError(f"schedule {name} is damaged ({exc}); remove it with `skein-jupyter schedule delete "
                         f"{name}` and create it again") from None


def list_schedules(fs: HadoopFS | None = None) -> list[cron.Definition]:
    """Your schedules, by name (one ``hdfs dfs -cat``)."""
    text = _fs(fs).cat(f"{schedules_dir()}/*/{DEFINITION}")
    try:
        found = _parse_many(text)
    except ValueError:
        raise UsageError(f"a schedule.json under {schedules_dir()} is damaged (not JSON); find it with `hdfs dfs "
                         "-cat`, then `skein-jupyter schedule delete NAME` and create it again") from None
    return sorted((_definition(json.dumps(data), str(data.get("name") if isinstance(data, dict) else "?"))
                   for data in found), key=lambda d: d.name)


def next_fires(definition: cron.Definition, count: int = 1, now: datetime | None = None) -> list[datetime]:
    """The next ``count`` fire times (UTC) of ``definition`` after now (none while paused)."""
    if definition.paused:
        return []
    after = max(now or datetime.now(UTC), definition.start)
    times = cron.fire_times(definition.cron, definition.timezone, after)
    return [next(times) for _ in range(count)]


def set_paused(name: str, paused: bool, fs: HadoopFS | None = None, now: datetime | None = None) -> cron.Definition:
    """Pause (no fire until resumed) or resume (from now: what was missed while paused never fires).

    A schedule already in that state is left as it is (and returned as it is).
    """
    import dataclasses

    fs = _fs(fs)
    definition = load(name, fs)
    if definition.paused == paused:
        return definition
    changes: dict[str, Any] = {"paused": paused}
    if not paused and definition.paused:
        changes["not_before"] = cron.stamp(now or datetime.now(UTC))
    updated = dataclasses.replace(definition, **changes)
    _put_definition(fs, f"{schedules_dir()}/{name}", updated)
    return updated


def delete(name: str, fs: HadoopFS | None = None) -> None:
    """Remove the schedule: definition, spec, files and history (runs it fired keep their outputs)."""
    fs = _fs(fs)
    try:
        cron.check_name(name)
    except cron.ScheduleError as exc:
        raise _usage(exc) from None
    directory = f"{schedules_dir()}/{name}"
    if not fs.exists(directory):  # a directory without schedule.json (a create cut short) is removed too
        raise UsageError(f"no schedule {name}; list yours with `skein-jupyter schedule list`")
    fs.run("-rm", "-r", "-f", "-skipTrash", directory)


def history(name: str, fs: HadoopFS | None = None) -> list[dict]:
    """The schedule's fires (and skips), oldest first."""
    fs = _fs(fs)
    load(name, fs)
    try:
        records = _parse_many(fs.cat(f"{schedules_dir()}/{name}/{HISTORY}/*.json"))
    except ValueError:  # a record being written: read again
        time.sleep(1)
        records = _parse_many(fs.cat(f"{schedules_dir()}/{name}/{HISTORY}/*.json"))
    return sorted(records, key=lambda r: (r.get("scheduled") or "", r.get("fired") or ""))


def trigger(name: str, client: skein.Client, fs: HadoopFS | None = None, wait: float = 120,
            progress: Progress | None = None) -> dict:
    """Ask the running scheduler to fire ``name`` now; returns the fire's history record.

    Raises UsageError if your scheduler is not running (nothing is written),
    ApplicationError (exit 3) if it did not fire within ``wait`` seconds or
    recorded the fire ``not submitted``.
    """
    from .scheduler_app import find_scheduler

    fs = _fs(fs)
    load(name, fs)
    if find_scheduler(client) is None:
        raise UsageError(f"your scheduler is not running, so nothing fires {name}; start it with "
                         "`skein-jupyter scheduler start --env ENV`")
    key = f"{cron.stamp(datetime.now(UTC))}-{secrets.token_hex(2)}"
    directory = f"{schedules_dir()}/{name}"
    with tempfile.TemporaryDirectory(prefix="skein-jupyter-trigger-") as local:
        path = os.path.join(local, f"{key}.json")
        _write_local(path, json.dumps({"requested": key}) + "\n")
        fs.put([path], f"{directory}/{TRIGGERS}/")
    progress = progress or Progress.quiet()
    progress.step(f"asked the scheduler to fire {name}")
    record_path = f"{directory}/{HISTORY}/t{key}-trigger.json"
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            record = json.loads(fs.cat(record_path) or "null")
        except ValueError:  # being written (a scheduler before atomic records): read it again
            record = None
        if isinstance(record, dict):
            if record.get("state") == "not submitted":
                raise ApplicationError(f"the scheduler could not submit {name}: {record.get('error')}; see "
                                       "`skein-jupyter scheduler status` and the scheduler's log")
            if record.get("state") != "submitting":
                return record
        time.sleep(2)
    raise ApplicationError(f"the scheduler did not fire {name} within {wait:g}s; it will when it can: see "
                           f"`skein-jupyter schedule history {name}` and `skein-jupyter scheduler status`")
