"""What counts as activity on a Jupyter server, the idle clock, and when to warn before stopping.

Pure logic, fed what jupyter_server reports (``api/status``, ``api/kernels``,
``api/terminals``) and the time; the watcher in :mod:`.notebook` does the
requests and acts on the decisions. A server is *active* while any kernel is
busy or any client (a browser tab, an API client) holds a kernel connection.
Everything else the server counts as activity (API requests, kernel messages,
terminal input and output) moves its ``last_activity``. Only when the server
is quiet does the idle clock run, from its last activity or from the last
time it was seen active, whichever is later: a client that disconnects
after hours of reading starts the clock when it leaves, not hours ago.

A busy kernel is never stopped by the idle timeout; the maximum lifetime
applies whatever happens. Some time before either stop (the *lead*,
:func:`warning_lead`), a :class:`StopWarning` is in force; an idle warning
goes away as soon as the server is used again.
"""
import dataclasses
import datetime
import json
from typing import Any, Dict, List, Mapping, Optional, Sequence

__all__ = ["Activity", "read_activity", "warning_lead", "StopWarning", "Decision", "IdleClock", "format_duration",
           "clock", "MAX_WARNING_LEAD", "MIN_WARNING_LEAD"]

#: The longest and shortest lead of a warning, in seconds.
MAX_WARNING_LEAD = 300.0
MIN_WARNING_LEAD = 30.0


def _epoch(text: str) -> float:
    """jupyter_server's ISO 8601 UTC timestamps (``...Z``) as seconds since the epoch."""
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def format_duration(seconds: float) -> str:
    """``5400`` -> ``"1h30m"``, ``20`` -> ``"20s"`` (whole seconds; the runtime cannot import the client's units).

    >>> format_duration(3600), format_duration(90), format_duration(0.4)
    ('1h', '1m30s', '0s')
    """
    seconds = int(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    if seconds or not parts:
        parts.append(f"{seconds}s")
    return "".join(parts)


def clock(epoch: float) -> str:
    """``HH:MM UTC`` of an epoch time, as warnings show it."""
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%H:%M UTC")


@dataclasses.dataclass(frozen=True)
class Activity:
    """What the server reports at one moment."""

    last_activity: float      # epoch seconds: the latest activity the server (or a kernel or terminal) reports
    kernels: int = 0
    busy_kernels: int = 0
    connections: int = 0      # kernel websocket connections: browser tabs and API clients
    terminals: int = 0

    @property
    def active(self) -> bool:
        """In use right now: a kernel computes or a client is connected."""
        return self.busy_kernels > 0 or self.connections > 0


def read_activity(status: Mapping[str, Any], kernels: Sequence[Mapping[str, Any]],
                  terminals: Sequence[Mapping[str, Any]]) -> Activity:
    """An :class:`Activity` from the JSON of ``api/status``, ``api/kernels`` and ``api/terminals``.

    >>> a = read_activity({"last_activity": "2026-12-01T10:00:00.000000Z", "connections": 0},
    ...                   [{"execution_state": "busy", "connections": 0, "last_activity": "2026-12-01T10:05:00Z"}],
    ...                   [{"name": "1", "last_activity": "2026-12-01T10:02:00Z"}])
    >>> (a.busy_kernels, a.connections, a.terminals, clock(a.last_activity), a.active)
    (1, 0, 1, '10:05 UTC', True)
    """
    times = [_epoch(status["last_activity"])]
    times += [_epoch(item["last_activity"]) for item in (*kernels, *terminals) if item.get("last_activity")]
    connections = sum(int(kernel.get("connections") or 0) for kernel in kernels)
    return Activity(last_activity=max(times), kernels=len(kernels),
                    busy_kernels=sum(1 for kernel in kernels if kernel.get("execution_state") == "busy"),
                    connections=max(connections, int(status.get("connections") or 0)), terminals=len(terminals))


def warning_lead(timeout: float) -> float:
    """How long before a stop its warning is published: a quarter of the timeout, at most
    :data:`MAX_WARNING_LEAD` (5 minutes), at least :data:`MIN_WARNING_LEAD` (30 seconds, time for a
    person to react), and never more than the timeout (a shorter timeout is warned about all along).

    >>> warning_lead(3600), warning_lead(600), warning_lead(60), warning_lead(20)
    (300.0, 150.0, 30.0, 20.0)
    """
    return float(min(timeout, max(min(MAX_WARNING_LEAD, timeout / 4), MIN_WARNING_LEAD)))


@dataclasses.dataclass(frozen=True)
class StopWarning:
    """The server will stop itself soon unless it is used: what ``skein-jupyter.notebook.warning`` holds.

    ``reason`` is ``idle`` or ``lifetime``; ``stops_at`` is the time of the stop
    (seconds since the epoch); ``message`` says why in words. The runtime
    publishes it; ``notebook info`` shows it.
    """

    reason: str               # "idle" or "lifetime"
    stops_at: float
    message: str

    def line(self) -> str:
        """``stopping at 14:05 UTC: idle since 13:05 UTC (idle timeout 1h)``"""
        return f"stopping at {clock(self.stops_at)}: {self.message}"

    def to_dict(self) -> Dict[str, Any]:
        return {"reason": self.reason, "stops_at": round(self.stops_at, 3), "message": self.message}

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict()).encode()

    @classmethod
    def from_json(cls, value: bytes) -> "StopWarning":
        """The warning :meth:`to_json` wrote; ValueError (or KeyError) for anything else."""
        data = json.loads(value)
        return cls(str(data["reason"]), float(data["stops_at"]), str(data["message"]))


@dataclasses.dataclass(frozen=True)
class Decision:
    """What the watcher does after one look: publish ``idle_seconds``, keep ``warning`` in force
    (None: clear it), and stop the server if ``stop`` says why."""

    idle_seconds: float
    warning: Optional[StopWarning] = None
    stop: Optional[str] = None


class IdleClock:
    """Decides, look after look, whether the server is idle, should be warned, or should stop.

    ``idle_timeout`` and ``max_lifetime`` are seconds (None or 0: never);
    ``started`` is the epoch time the server started; ``lead`` (seconds)
    overrides :func:`warning_lead` for both stops.
    """

    def __init__(self, idle_timeout: Optional[float], max_lifetime: Optional[float], started: float,
                 lead: Optional[float] = None) -> None:
        self.idle_timeout, self.max_lifetime, self.started = idle_timeout or None, max_lifetime or None, started
        self.lead = lead
        self.last_active: Optional[float] = None   # when the server was last seen active

    def _lead(self, timeout: float) -> float:
        return min(timeout, max(0.0, self.lead)) if self.lead is not None else warning_lead(timeout)

    def unanswered(self, now: float) -> Decision:
        """The decision when the server did not answer at ``now``: no idleness is decided without
        knowing, but the maximum lifetime still applies."""
        idle = round(max(0.0, now - self.last_active), 1) if self.last_active is not None else 0.0
        end = self._end_of_life()
        if end is not None and now >= end.stops_at:
            return Decision(idle, end, f"reached its maximum lifetime of {self.max_lifetime:.0f}s")
        return Decision(idle)

    def _end_of_life(self) -> Optional[StopWarning]:
        if not self.max_lifetime:
            return None
        return StopWarning("lifetime", self.started + self.max_lifetime,
                           f"its maximum lifetime of {format_duration(self.max_lifetime)} ends")

    def observe(self, activity: Activity, now: float) -> Decision:
        """The decision after seeing ``activity`` at ``now`` (epoch seconds)."""
        if activity.active:
            self.last_active = now
            idle = 0.0
            quiet_since = now
        else:
            quiet_since = max(activity.last_activity, self.last_active or activity.last_activity)
            idle = max(0.0, now - quiet_since)
        stops: List[StopWarning] = []
        leads: Dict[str, float] = {}
        end = self._end_of_life()
        if end is not None and self.max_lifetime:
            stops.append(end)
            leads["lifetime"] = self._lead(self.max_lifetime)
        if self.idle_timeout and not activity.active:
            stops.append(StopWarning("idle", quiet_since + self.idle_timeout,
                                     f"idle since {clock(quiet_since)} (idle timeout "
                                     f"{format_duration(self.idle_timeout)}); any use keeps it running"))
            leads["idle"] = self._lead(self.idle_timeout)
        if not stops:
            return Decision(round(idle, 1))
        first = min(stops, key=lambda stop: stop.stops_at)
        if now >= first.stops_at:
            why = (f"idle for {idle:.0f}s (idle timeout {self.idle_timeout:.0f}s)" if first.reason == "idle"
                   else f"reached its maximum lifetime of {self.max_lifetime:.0f}s")
            return Decision(round(idle, 1), first, why)
        warned = [stop for stop in stops if now >= stop.stops_at - leads[stop.reason]]
        return Decision(round(idle, 1), min(warned, key=lambda stop: stop.stops_at) if warned else None)
