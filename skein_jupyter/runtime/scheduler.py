"""The per-user scheduler: ``python -m skein_jupyter_runtime.scheduler scheduler.json`` in a YARN container.

Every ``poll`` seconds it reads the schedule definitions from HDFS (WebHDFS,
:mod:`.webhdfs`), decides with :mod:`.cron` what is due, and submits each
schedule's stored spec with a Skein client of its own. Nothing lives only in
this process or in the application's key-value store: a new container or a
new attempt starts from what is on HDFS.

No double fire: before submitting for a fire time, its history record is
written (state ``submitting``); the application is submitted with a tag
naming that fire (:func:`.cron.fire_tag`). A scheduler that finds a record
still ``submitting`` (its predecessor died in between) first looks for an
application with that tag and submits only if there is none.

Logs name schedules, fire times and application ids, never parameter values:
the scheduler does not read the jobs it submits.
"""
from __future__ import annotations

import json
import sys
import time
import traceback
from datetime import datetime, timedelta, timezone
from typing import Any

from . import cron

__all__ = ["DEFINITION", "SPEC", "HISTORY", "TRIGGERS", "FILES", "CONFIG", "record_name", "Scheduler", "main"]

DEFINITION, SPEC, HISTORY, TRIGGERS, FILES = "schedule.json", "spec.yaml", "history", "triggers", "files"
CONFIG = "scheduler.json"
FINAL = ("FINISHED", "FAILED", "KILLED")
UTC = timezone.utc


def log(message: str) -> None:
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S} scheduler: {message}", file=sys.stderr, flush=True)


def record_name(key: str, how: str) -> str:
    """The history file of one fire: sorts by time (``key`` is a stamp, a trigger's id is one too)."""
    return f"{key}-{how}.json"


def read_config(path: str) -> dict:
    """The scheduler's settings, checked field by field."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    types: dict[str, Any] = {"user": str, "directory": str, "namenodes": list, "poll": (int, float), "grace": (int, float),
             "principal": str, "keytab": str}
    for key, value in data.items():
        if key not in types or not isinstance(value, types[key]):
            raise ValueError(f"{path}: unexpected field {key}")
    for key in ("user", "directory", "namenodes", "poll", "grace"):
        if key not in data:
            raise ValueError(f"{path}: missing field {key}")
    return data


class Scheduler:
    """One scheduler loop over one schedules directory."""

    def __init__(self, config: dict, hdfs: Any, client: Any) -> None:
        self.config = config
        self.root = config["directory"].rstrip("/")
        self.hdfs = hdfs
        self.client = client
        self.grace = timedelta(seconds=config["grace"])
        self.history: dict[str, dict[str, dict]] = {}  # schedule -> record file -> record

    # -- HDFS

    def _write(self, path: str, data: dict) -> None:
        """Replace ``path`` atomically: write a temporary name, then rename over it (mode 600)."""
        temporary = path + ".tmp"
        self.hdfs.write(temporary, (json.dumps(data, sort_keys=True) + "\n").encode())
        self.hdfs.rename(temporary, path, overwrite=True)

    def _names(self, directory: str) -> list[str]:
        try:
            return sorted(entry["pathSuffix"] for entry in self.hdfs.list(directory))
        except FileNotFoundError:
            return []

    def _load_history(self, name: str) -> dict[str, dict]:
        cache = self.history.setdefault(name, {})
        for file in self._names(f"{self.root}/{name}/{HISTORY}"):
            if file.endswith(".json") and file not in cache:
                try:
                    cache[file] = json.loads(self.hdfs.cat(f"{self.root}/{name}/{HISTORY}/{file}"))
                except (ValueError, FileNotFoundError):
                    continue
        return cache

    # -- YARN

    def _find_fired(self, tag: str, since: datetime) -> str | None:
        """The application already submitted with ``tag`` (started since ``since``), or None."""
        begin = since - timedelta(minutes=10)
        for report in self.client.get_applications(states=["NEW", "NEW_SAVING", "SUBMITTED", "ACCEPTED",
                                                           "RUNNING", "FINISHED", "FAILED", "KILLED"],
                                                   started_begin=begin):
            if tag in {t.lower() for t in report.tags}:
                return str(report.id)
        return None

    def _submit(self, name: str, tag: str) -> str:
        import skein

        spec = skein.ApplicationSpec.from_yaml(self.hdfs.cat(f"{self.root}/{name}/{SPEC}").decode())
        spec.tags = set(spec.tags) | {cron.schedule_tag(name), tag}
        return str(self.client.submit(spec))

    # -- firing

    def fire(self, name: str, scheduled: datetime, how: str, key: str, extra: dict | None = None) -> dict:
        """Fire ``name`` once for ``key``: record, look for the fire's tag, submit if absent, record the id."""
        tag = cron.fire_tag(name, key)
        file = record_name(key, how)
        path = f"{self.root}/{name}/{HISTORY}/{file}"
        record = self.history.get(name, {}).get(file)
        if record is None:
            record = {"scheduled": scheduled.strftime("%Y-%m-%dT%H:%M:%SZ"), "how": how, "tag": tag,
                      "fired": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "app_id": None,
                      "state": "submitting", **(extra or {})}
            self._write(path, record)  # the intent first: a successor finds it and checks YARN
            self.history.setdefault(name, {})[file] = record
        try:
            app_id = self._find_fired(tag, scheduled) or self._submit(name, tag)
            record.update(app_id=app_id, state="SUBMITTED")
            log(f"{name}: fired {how} for {record['scheduled']} as {app_id}")
        except Exception as exc:  # recorded, not retried: the next fire time comes as usual
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[-1][:300]
            record.update(state="not submitted", error=reason)
            log(f"{name}: could not submit for {record['scheduled']}: {reason}")
        self._write(path, record)
        return record

    def skip(self, name: str, scheduled: datetime, how: str, reason: str, missed: int = 0) -> None:
        key = cron.stamp(scheduled)
        file = record_name(key, how)
        record = {"scheduled": scheduled.strftime("%Y-%m-%dT%H:%M:%SZ"), "how": how, "app_id": None,
                  "fired": None, "state": "skipped", "reason": reason, "missed": missed}
        self._write(f"{self.root}/{name}/{HISTORY}/{file}", record)
        self.history.setdefault(name, {})[file] = record
        log(f"{name}: skipped {record['scheduled']} ({reason})")

    def _refresh(self, name: str, records: dict[str, dict]) -> bool:
        """Fill in final states of fired runs; whether a run of ``name`` is still going."""
        running = False
        for file, record in records.items():
            if not record.get("app_id") or record.get("state") in FINAL:
                continue
            try:
                report = self.client.application_report(record["app_id"])
            except Exception:
                continue
            state = str(report.state)
            if state in FINAL:
                record.update(state=state, final_status=str(report.final_status))
                self._write(f"{self.root}/{name}/{HISTORY}/{file}", record)
            else:
                running = True
        return running

    def _resume_unfinished(self, name: str, records: dict[str, dict]) -> None:
        """Fires a predecessor recorded but did not see through (state ``submitting``)."""
        for file, record in list(records.items()):
            if record.get("state") == "submitting":
                key, _, how = file[: -len(".json")].rpartition("-")
                log(f"{name}: finishing the fire recorded for {record['scheduled']}")
                self.fire(name, datetime.strptime(record["scheduled"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC),
                          how, key)

    def tick(self, now: datetime | None = None) -> None:
        """One pass over every schedule."""
        for name in self._names(self.root):
            if name.startswith(".") or not cron.NAME.match(name):
                continue
            try:
                self.tick_one(name, now or datetime.now(UTC))
            except Exception as exc:  # one broken schedule never stops the others
                log(f"{name}: {type(exc).__name__}: {cron_short(exc)}")

    def tick_one(self, name: str, now: datetime) -> None:
        try:
            text = self.hdfs.cat(f"{self.root}/{name}/{DEFINITION}")
        except FileNotFoundError:
            return  # being created or deleted
        definition = cron.Definition.from_json(text)
        records = self._load_history(name)
        self._resume_unfinished(name, records)
        running = self._refresh(name, records)
        for trigger in self._names(f"{self.root}/{name}/{TRIGGERS}"):
            if trigger.endswith(".json"):
                key = trigger[: -len(".json")]
                self.fire(name, now, "trigger", "t" + key)  # a trigger fires even while paused or overlapping
                self.hdfs.delete(f"{self.root}/{name}/{TRIGGERS}/{trigger}")
                running = True
        acted = [r["scheduled"] for r in records.values() if r.get("how") in ("cron", "misfire")]
        last = max(acted) if acted else None
        decision = cron.due(definition, datetime.strptime(last, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
                            if last else None, now, self.grace)
        if decision is None:
            return
        if not decision.fire:
            self.skip(name, decision.scheduled, decision.how, "missed while the scheduler was down "
                      "(misfire: skip)", decision.missed + 1)
        elif cron.overlap_blocks(definition, running):
            self.skip(name, decision.scheduled, decision.how, "the previous run still runs (overlap: skip)",
                      decision.missed)
        else:
            self.fire(name, decision.scheduled, decision.how, cron.stamp(decision.scheduled),
                      {"missed": decision.missed} if decision.missed else None)


def cron_short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.split("?", 1)[0][:300]  # a URL's query may hold a delegation token


def _yarn_on_path() -> None:
    """Skein's driver runs ``yarn classpath``: find ``yarn`` under the Hadoop homes YARN passes to containers."""
    import os
    import shutil

    if shutil.which("yarn"):
        return
    for var in ("HADOOP_YARN_HOME", "HADOOP_HOME", "HADOOP_COMMON_HOME", "HADOOP_PREFIX"):
        home = os.environ.get(var)
        if home and os.access(os.path.join(home, "bin", "yarn"), os.X_OK):
            os.environ["PATH"] = os.pathsep.join([os.path.join(home, "bin"), os.environ.get("PATH", "")])
            return
    raise RuntimeError("no `yarn` command in the container (not on PATH, nor under HADOOP_YARN_HOME or "
                       "HADOOP_HOME); ask your admin to add HADOOP_HOME to yarn.nodemanager.env-whitelist")


def _skein_client(config: dict) -> Any:
    import skein

    _yarn_on_path()

    security = skein.Security.new_credentials()  # this container's own; nothing read from a home directory
    if config.get("keytab"):
        return skein.Client(security=security, keytab=config["keytab"], principal=config.get("principal"))
    return skein.Client(security=security)


def main(argv: list[str] | None = None) -> int:
    from . import webhdfs

    argv = sys.argv[1:] if argv is None else argv
    config = read_config(argv[0] if argv else CONFIG)
    log(f"watching {config['directory']} every {config['poll']:g}s as {config['user']}")
    hdfs = webhdfs.HDFS(lambda: webhdfs.connect(config["namenodes"], config["user"]))
    client = _skein_client(config)
    scheduler = Scheduler(config, hdfs, client)
    while True:
        started = time.monotonic()
        try:
            scheduler.tick()
        except Exception as exc:  # HDFS or YARN away for a moment: try again next time
            log(f"pass failed: {type(exc).__name__}: {cron_short(exc)}")
            traceback.print_exc(limit=3)
            try:
                hdfs.reconnect()
            except Exception:
                pass
        time.sleep(max(0.5, config["poll"] - (time.monotonic() - started)))


if __name__ == "__main__":
    sys.exit(main())
