"""The per-user scheduler: ``python -m skein_jupyter_runtime.scheduler scheduler.json`` in a YARN container.

Every ``poll`` seconds it reads the schedule definitions from HDFS (WebHDFS,
:mod:`.webhdfs`), decides with :mod:`.cron` what is due, and submits each
schedule's stored spec with a Skein client of its own. Nothing lives only in
this process or in the application's key-value store: a new container or a
new attempt starts from what is on HDFS.

Against double fires: before submitting for a fire time, its history record
is created (state ``submitting``, an exclusive create); the application is
submitted with a tag naming that fire (:func:`.cron.fire_tag`) and one naming
the schedules directory (:func:`.cron.directory_tag`). A record still
``submitting`` (a submission failed, or a predecessor died in between) is
looked up by those tags among the user's own applications: within the grace
period it is submitted if none has them, after it recorded ``not submitted``.

Failures: one failing schedule never stops the others; after
:data:`MAX_FAILED_PASSES` failed passes in a row, or a broken Skein driver,
the process exits non-zero and YARN starts a new container. Messages of
exceptions are logged and recorded in one line without URL queries (a
WebHDFS URL may carry a delegation token), never as tracebacks.

Logs name schedules, fire times and application ids, never parameter values:
the scheduler does not read the jobs it submits.
"""
from __future__ import annotations

import json
import secrets
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from . import cron

__all__ = ["DEFINITION", "SPEC", "HISTORY", "TRIGGERS", "FILES", "CONFIG", "HEARTBEAT", "record_name", "Scheduler", "main"]

DEFINITION, SPEC, HISTORY, TRIGGERS, FILES = "schedule.json", "spec.yaml", "history", "triggers", "files"
CONFIG = "scheduler.json"
HEARTBEAT = ".heartbeat.json"  # a dot name: never taken for a schedule
FINAL = ("FINISHED", "FAILED", "KILLED")
STAMP = "%Y-%m-%dT%H:%M:%SZ"
#: Records kept per schedule (older finished ones are removed by the scheduler).
KEEP = 500
#: Passes failing one after another before the container exits (YARN starts a new one).
MAX_FAILED_PASSES = 10
#: Record states that never change again.
DONE = FINAL + ("unknown", "skipped", "not submitted")
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
        self.created: dict[str, str] = {}  # schedule -> its definition's ``created`` (a new one: a new history)

    # -- HDFS

    def _write(self, path: str, data: dict) -> None:
        """Replace ``path`` atomically: write a temporary name, then rename over it (mode 600)."""
        temporary = path + ".tmp"
        # createparent=false: a schedule deleted meanwhile is not brought back by a late write
        self.hdfs.write(temporary, (json.dumps(data, sort_keys=True) + "\n").encode(), createparent=False)
        self.hdfs.rename(temporary, path, overwrite=True)

    def heartbeat(self, done: int, failed: int) -> None:
        """Write when this pass ended (``scheduler status`` shows it); a failure is only logged."""
        try:
            self._write(f"{self.root}/{HEARTBEAT}", {"last_pass": datetime.now(UTC).strftime(STAMP),
                                                     "schedules": done, "failed": failed})
        except FileNotFoundError:
            pass  # no schedules directory yet
        except Exception as exc:
            log(f"heartbeat not written: {describe(exc)}")

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
        """The application this scheduler's user already submitted with ``tag`` from this directory, or None.

        Only the user's own applications (``user=``) that also carry the
        schedules directory's tag count: another user's, or another
        directory's, schedule of the same name never stands in for a fire.
        """
        begin = since - timedelta(minutes=10)
        wanted = {tag.lower(), cron.directory_tag(self.root).lower()}
        for report in self.client.get_applications(states=["NEW", "NEW_SAVING", "SUBMITTED", "ACCEPTED",
                                                           "RUNNING", "FINISHED", "FAILED", "KILLED"],
                                                   user=self.config["user"], started_begin=begin):
            if wanted <= {t.lower() for t in report.tags}:
                return str(report.id)
        return None

    def _submit(self, name: str, tag: str) -> str:
        import skein

        spec = skein.ApplicationSpec.from_yaml(self.hdfs.cat(f"{self.root}/{name}/{SPEC}").decode())
        spec.tags = set(spec.tags) | {cron.schedule_tag(name), tag, cron.directory_tag(self.root)}
        return str(self.client.submit(spec))

    # -- firing

    def fire(self, name: str, scheduled: datetime, how: str, key: str, now: datetime,
             extra: dict | None = None) -> dict:
        """Fire ``name`` once for ``key``: record, look for the fire's tag, submit if absent, record the id.

        A failure to submit (YARN or HDFS away for a moment) leaves the record
        ``submitting``: later passes retry while the fire is within the grace
        period, then look for the tag once more and record ``not submitted``.
        """
        tag = cron.fire_tag(name, key)
        file = record_name(key, how)
        path = f"{self.root}/{name}/{HISTORY}/{file}"
        record = self.history.get(name, {}).get(file)
        if record is not None and (record.get("app_id") or record.get("state") != "submitting"):
            return record  # fired (or given up) already
        if record is None:
            record = {"scheduled": scheduled.strftime(STAMP), "how": how, "tag": tag,
                      "fired": now.strftime(STAMP), "app_id": None, "state": "submitting", **(extra or {})}
            claimed = self._claim(path, record)  # the intent first: a successor finds it and checks YARN
            self.history.setdefault(name, {})[file] = claimed
            if claimed is not record:
                return claimed
        since = datetime.strptime(record["scheduled"], STAMP).replace(tzinfo=UTC)
        late = now - since > self.grace
        try:
            app_id = self._find_fired(tag, since)
            if app_id is None and late:
                record.update(state="not submitted", error=record.get("error") or
                              "not submitted within the grace period; no application has the fire's tag")
                log(f"{name}: gave up the fire for {record['scheduled']}: {record['error']}")
            else:
                app_id = app_id or self._submit(name, tag)
                record.pop("error", None)
                record.update(app_id=app_id, state="SUBMITTED")
                log(f"{name}: fired {how} for {record['scheduled']} as {app_id}")
        except Exception as exc:  # kept ``submitting``: retried by the next pass
            record["error"] = describe(exc)
            log(f"{name}: could not submit for {record['scheduled']} ({record['error']}); "
                + ("looking for it again next pass" if late else "retrying next pass"))
            self._write(path, record)
            if is_driver_error(exc):
                raise
            return record
        self._write(path, record)
        return record

    def _claim(self, path: str, record: dict) -> dict:
        """Write a new fire's record unless one exists; the record that holds.

        Atomic and exclusive: the record is written whole under a temporary
        name, then renamed without overwrite (HDFS refuses a rename onto an
        existing file), so a reader never sees half a record. When another
        record holds and cannot be read now, this raises: the fire is not
        taken as ours (the next pass looks again).
        """
        temporary = f"{path}.{secrets.token_hex(4)}.tmp"
        self.hdfs.write(temporary, (json.dumps(record, sort_keys=True) + "\n").encode(), overwrite=False,
                        createparent=False)
        try:
            if self.hdfs.rename(temporary, path):
                return record
        except Exception:
            self._discard(temporary)
            raise
        self._discard(temporary)
        found = json.loads(self.hdfs.cat(path))
        if not isinstance(found, dict):
            raise ValueError(f"{path} is not a record")
        return found

    def _discard(self, path: str) -> None:
        try:
            self.hdfs.delete(path)
        except Exception as exc:  # left behind: readers take only *.json
            log(f"could not remove {path}: {describe(exc)}")

    def skip(self, name: str, scheduled: datetime, how: str, reason: str, missed: int = 0) -> None:
        key = cron.stamp(scheduled)
        file = record_name(key, how)
        record = {"scheduled": scheduled.strftime(STAMP), "how": how, "app_id": None,
                  "fired": None, "state": "skipped", "reason": reason, "missed": missed}
        self._write(f"{self.root}/{name}/{HISTORY}/{file}", record)
        self.history.setdefault(name, {})[file] = record
        log(f"{name}: skipped {record['scheduled']} ({reason})")

    def _refresh(self, name: str, records: dict[str, dict]) -> bool:
        """Fill in final states of fired runs; whether a run of ``name`` is still going."""
        running = False
        for file, record in records.items():
            if not record.get("app_id") or record.get("state") in DONE:
                continue
            try:
                report = self.client.application_report(record["app_id"])
            except KeyError:  # the ResourceManager no longer knows it (restarted, or its history purged)
                record.update(state="unknown", final_status="UNKNOWN")
                self._write(f"{self.root}/{name}/{HISTORY}/{file}", record)
                continue
            except Exception as exc:
                if is_driver_error(exc):
                    raise
                continue
            state = str(report.state)
            if state in FINAL:
                record.update(state=state, final_status=str(report.final_status))
                self._write(f"{self.root}/{name}/{HISTORY}/{file}", record)
            else:
                running = True
        return running

    def _prune(self, name: str, records: dict[str, dict]) -> None:
        """Keep the last :data:`KEEP` records of ``name``: the oldest ended ones go first."""
        excess = len(records) - KEEP
        if excess <= 0:
            return
        for file in prunable(records, excess):
            self.hdfs.delete(f"{self.root}/{name}/{HISTORY}/{file}")
            del records[file]

    def _resume_unfinished(self, name: str, records: dict[str, dict], now: datetime) -> None:
        """Fires recorded but not seen through (``submitting``): retried within the grace, else looked up."""
        for file, record in list(records.items()):
            if record.get("state") == "submitting" and not record.get("app_id"):
                key, _, how = file[: -len(".json")].rpartition("-")
                self.fire(name, datetime.strptime(record["scheduled"], STAMP).replace(tzinfo=UTC), how, key, now)

    def tick(self, now: datetime | None = None) -> tuple[int, int]:
        """One pass over every schedule (one ``now`` for all); (schedules done, schedules failed)."""
        now = now or datetime.now(UTC)
        done = failed = 0
        for name in self._names(self.root):
            if name.startswith(".") or not cron.NAME.match(name):
                continue
            try:
                self.tick_one(name, now)
                done += 1
            except FileNotFoundError:
                self.history.pop(name, None)  # deleted while we looked
            except Exception as exc:  # one broken schedule never stops the others
                if is_driver_error(exc):
                    raise
                failed += 1
                log(f"{name}: {describe(exc)}")
        return done, failed

    def tick_one(self, name: str, now: datetime) -> None:
        try:
            text = self.hdfs.cat(f"{self.root}/{name}/{DEFINITION}")
        except FileNotFoundError:
            self.history.pop(name, None)
            return  # being created or deleted
        definition = cron.Definition.from_json(text)
        if self.created.get(name) != definition.created:  # deleted and created again: a new history
            self.history.pop(name, None)
            self.created[name] = definition.created
        records = self._load_history(name)
        self._resume_unfinished(name, records, now)
        running = self._refresh(name, records)
        for trigger in self._names(f"{self.root}/{name}/{TRIGGERS}"):
            if trigger.endswith(".json"):
                key = trigger[: -len(".json")]
                self.fire(name, now, "trigger", "t" + key, now)  # fires even while paused or overlapping
                self.hdfs.delete(f"{self.root}/{name}/{TRIGGERS}/{trigger}")
                running = True
        acted = [r["scheduled"] for r in records.values() if r.get("how") in ("cron", "misfire")]
        last = max(acted) if acted else None
        decision = cron.due(definition, datetime.strptime(last, STAMP).replace(tzinfo=UTC) if last else None,
                            now, self.grace)
        if decision is not None:
            if not decision.fire:
                self.skip(name, decision.scheduled, decision.how, "missed while the scheduler was down "
                          "(misfire: skip)", decision.missed + 1)
            elif cron.overlap_blocks(definition, running):
                self.skip(name, decision.scheduled, decision.how, "the previous run still runs (overlap: skip)",
                          decision.missed)
            else:
                self.fire(name, decision.scheduled, decision.how, cron.stamp(decision.scheduled), now,
                          {"missed": decision.missed} if decision.missed else None)
        self._prune(name, records)


def prunable(records: dict[str, dict], count: int) -> list[str]:
    """Up to ``count`` record files to remove: ended ones (never one in flight), oldest first."""
    ended = [file for file, record in records.items() if record.get("state") in DONE]
    ended.sort(key=lambda file: (records[file].get("scheduled") or "", file))
    return ended[:count]


def describe(exc: BaseException) -> str:
    """An exception in one line for logs and history records, with no URL query (it may hold a token)."""
    from .webhdfs import short

    return f"{type(exc).__name__}: {short(exc)}"


def is_driver_error(exc: BaseException) -> bool:
    """Whether ``exc`` says this container's Skein driver is broken (the container exits; YARN starts another)."""
    try:
        from skein.exceptions import DriverError, DriverNotRunningError
    except ImportError:
        return False
    return isinstance(exc, (DriverError, DriverNotRunningError))


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
    if not cron.has_zone_data():
        log("no IANA time-zone data in this container (no /usr/share/zoneinfo, no tzdata package): only UTC "
            "schedules fire; install tzdata in the environment, pack it again and restart the scheduler")
    hdfs = webhdfs.HDFS(lambda: webhdfs.connect(config["namenodes"], config["user"]))
    client = _skein_client(config)
    scheduler = Scheduler(config, hdfs, client)
    failures = 0
    while True:
        started = time.monotonic()
        try:
            done, failed = scheduler.tick()
            failures = failures + 1 if failed and not done else 0
            scheduler.heartbeat(done, failed)
        except Exception as exc:  # HDFS or YARN away for a moment: try again next time
            log(f"pass failed: {describe(exc)}")  # never a traceback: its messages may hold URLs with tokens
            if is_driver_error(exc):
                log("the Skein driver failed: exiting so that YARN starts a new container")
                return 1
            failures += 1
            try:
                hdfs.reconnect()
            except Exception as again:
                log(f"reconnecting to HDFS failed: {describe(again)}")
        if failures >= MAX_FAILED_PASSES:
            log(f"{failures} passes failed in a row: exiting so that YARN starts a new container")
            return 1
        time.sleep(max(0.5, config["poll"] - (time.monotonic() - started)))


if __name__ == "__main__":
    sys.exit(main())
