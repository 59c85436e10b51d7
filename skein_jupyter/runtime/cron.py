"""When schedules fire: the pure logic both sides share (standard library and cronsim only).

The client checks a new schedule with it and shows next fire times; the
scheduler (:mod:`.scheduler`) decides with it what is due. Cron expressions
are parsed and evaluated by cronsim (a maintained, dependency-free library,
shipped to the container in the deps zip), in the schedule's IANA time zone
(:mod:`zoneinfo`), so daylight saving time is cron's own rule: a time that
does not exist on a spring-forward day fires at the first valid time after
it, and a time that happens twice on a fall-back day fires once.

Every time stored or compared here is an aware UTC :class:`datetime`;
a schedule's time zone only decides which instants its cron expression names.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import sys
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

__all__ = ["Definition", "ScheduleError", "check_name", "check_cron", "check_timezone", "fire_times",
           "next_fire", "due", "Decision", "overlap_blocks", "fire_tag", "schedule_tag", "stamp", "parse_stamp",
           "MISFIRE", "OVERLAP", "SCHEDULE_TAG", "FIRE_TAG", "SCHEDULER_TAG", "directory_tag"]

#: What happens to fire times missed while the scheduler was down: fire once for all of them, or not at all.
MISFIRE = ("run-once", "skip")
#: What happens when a fire time comes while the schedule's previous run still runs.
OVERLAP = ("skip", "allow")
#: YARN tags (YARN lowercases tags, hence lowercase schedule names).
SCHEDULE_TAG = "skein-jupyter-schedule:"
FIRE_TAG = "skein-jupyter-fire:"
SCHEDULER_TAG = "skein-jupyter-scheduler"
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
UTC = timezone.utc


class ScheduleError(ValueError):
    """A schedule's name, cron expression, time zone or stored definition is not valid; says which and why."""


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise ScheduleError(f"schedule name {name!r} is not valid; use 1-40 lowercase letters, digits, _ and - "
                            "starting with a letter or digit (YARN lowercases the tags that carry it)")
    return name


def _cronsim() -> Any:
    deps = os.path.abspath("skein_jupyter_deps.zip")  # in a container: the shipped deps zip
    if os.path.exists(deps) and deps not in sys.path:
        sys.path.insert(0, deps)
    import cronsim

    return cronsim


def check_cron(expression: str) -> str:
    """The expression if cronsim accepts it (five fields); else ScheduleError."""
    cronsim = _cronsim()
    if not isinstance(expression, str) or not expression.strip():
        raise ScheduleError("cron expression missing; give --cron '0 6 * * *' (minute hour day month weekday)")
    try:
        cronsim.CronSim(expression, datetime(2000, 1, 1, tzinfo=UTC))
    except cronsim.CronSimError as exc:
        raise ScheduleError(f"cron expression {expression!r} is not valid ({exc}); write five fields, "
                            "minute hour day-of-month month day-of-week, e.g. '0 6 * * *'") from None
    return expression


def check_timezone(name: str) -> Any:
    """The :class:`zoneinfo.ZoneInfo` of an IANA name (``Europe/Paris``, ``UTC``); else ScheduleError."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if name == "UTC":  # needs no time-zone data (a container may have none)
        return UTC
    try:
        if not name or name.startswith(("/", ".")) or ".." in name:
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"time zone {name!r} is not known; give an IANA name such as UTC, "
                            "Europe/Paris or America/New_York") from None


def stamp(moment: datetime) -> str:
    """A UTC instant as a sortable name part, e.g. ``20261201T060000Z``."""
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def parse_stamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def fire_times(cron: str, tz: str, after: datetime) -> Iterator[datetime]:
    """The instants (UTC) the expression names in zone ``tz``, strictly after ``after``, in order."""
    cronsim = _cronsim()
    zone = check_timezone(tz)
    for moment in cronsim.CronSim(cron, after.astimezone(zone)):
        yield moment.astimezone(UTC)


def next_fire(cron: str, tz: str, after: datetime) -> datetime:
    return next(fire_times(cron, tz, after))


@dataclasses.dataclass(frozen=True)
class Definition:
    """A schedule as stored in ``schedule.json``, checked field by field on read."""

    name: str
    cron: str
    timezone: str = "UTC"
    misfire: str = "run-once"
    overlap: str = "skip"
    paused: bool = False
    #: Fire times at or before this instant are never fired (creation, or the last resume: no catch-up).
    not_before: str = ""
    created: str = ""
    target: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name(self.name)
        check_cron(self.cron)
        check_timezone(self.timezone)
        if self.misfire not in MISFIRE:
            raise ScheduleError(f"misfire policy {self.misfire!r} is not one of {', '.join(MISFIRE)}")
        if self.overlap not in OVERLAP:
            raise ScheduleError(f"overlap policy {self.overlap!r} is not one of {', '.join(OVERLAP)}")
        if not isinstance(self.paused, bool) or not isinstance(self.target, dict):
            raise ScheduleError("paused must be true or false and target a mapping")
        if self.not_before:
            parse_stamp(self.not_before)

    @property
    def start(self) -> datetime:
        return parse_stamp(self.not_before) if self.not_before else datetime(1970, 1, 1, tzinfo=UTC)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> Definition:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ScheduleError(f"schedule definition is not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ScheduleError("schedule definition is not a JSON object")
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ScheduleError(f"schedule definition has unknown fields {', '.join(sorted(unknown))}")
        for key in ("name", "cron", "timezone", "misfire", "overlap", "not_before", "created"):
            if key in data and not isinstance(data[key], str):
                raise ScheduleError(f"schedule definition: {key} must be a string")
        return cls(**data)


@dataclasses.dataclass(frozen=True)
class Decision:
    """What to do about a schedule now: fire for ``scheduled`` (``how``: cron or misfire), or record a skip."""

    scheduled: datetime
    how: str            # "cron" | "misfire"
    fire: bool          # False: record it as skipped (a missed time under misfire: skip)
    missed: int = 0     # fire times missed before ``scheduled`` (not fired)


def due(definition: Definition, last: datetime | None, now: datetime, grace: timedelta,
        limit: int = 10000) -> Decision | None:
    """What is due for ``definition`` at ``now``, given the last fire time acted on (``last``), or None.

    A fire time no older than ``grace`` is on time (``how="cron"``). Older
    ones were missed (the scheduler was down): under ``run-once`` the latest
    missed time fires once for them all, under ``skip`` none fires and the
    latest is recorded as skipped, so the next on-time fire comes as usual.
    Times before the definition's start (creation or last resume) never fire.
    """
    if definition.paused:
        return None
    after = max(last, definition.start) if last is not None else definition.start
    latest: datetime | None = None
    count = 0
    for moment in fire_times(definition.cron, definition.timezone, after):
        if moment > now:
            break
        if count >= limit:  # a long outage: find the latest time without walking every missed one
            latest = _latest_before(definition, now) or latest
            count += 1  # at least this many
            break
        latest, count = moment, count + 1
    if latest is None:
        return None
    if now - latest <= grace:
        # Missed times and an on-time one: the on-time one fires; the missed ones are counted.
        return Decision(latest, "cron", True, missed=count - 1)
    return Decision(latest, "misfire", definition.misfire == "run-once", missed=count - 1)


def _latest_before(definition: Definition, now: datetime) -> datetime | None:
    """The last fire time at or before ``now``, looking back in growing windows (up to ten years)."""
    for days in (1, 31, 366, 3660):
        latest = None
        for moment in fire_times(definition.cron, definition.timezone, now - timedelta(days=days)):
            if moment > now:
                break
            latest = moment
        if latest is not None:
            return latest
    return None


def overlap_blocks(definition: Definition, previous_running: bool) -> bool:
    """Whether a fire must be skipped because the schedule's previous run still runs."""
    return previous_running and definition.overlap == "skip"


def schedule_tag(name: str) -> str:
    return SCHEDULE_TAG + name


def fire_tag(name: str, key: str) -> str:
    """The tag of the one application fired for ``key`` (a fire time's stamp, or ``t`` + a trigger's id)."""
    return f"{FIRE_TAG}{name}:{key}".lower()


def directory_tag(directory: str) -> str:
    """The tag naming a schedules directory: on the scheduler and on every application it fires."""
    return "skein-jupyter-schedules:" + hashlib.sha256(directory.rstrip("/").encode()).hexdigest()[:16]


def has_zone_data() -> bool:
    """Whether IANA time-zone data is here (the system's, or the ``tzdata`` package): zones other than UTC."""
    try:
        check_timezone("Europe/London")
        return True
    except ScheduleError:
        return False
