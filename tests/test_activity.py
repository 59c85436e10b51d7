"""What counts as activity on a notebook server, the idle clock and the warning before a stop (no cluster)."""
import json

import pytest

from skein_jupyter.runtime.activity import (Activity, IdleClock, StopWarning, clock, read_activity,
                                            warning_lead)

T0 = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC


def iso(epoch):
    import datetime

    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def quiet(last=T0):
    return Activity(last_activity=last)


def run(clock_, looks):
    """Feed ``(now, activity)`` looks to the clock; the decisions."""
    return [clock_.observe(activity, now) for now, activity in looks]


# ----- what the server reports

def test_read_activity_takes_the_latest_activity_of_server_kernels_and_terminals():
    status = {"started": iso(T0), "last_activity": iso(T0 + 10), "connections": 0, "kernels": 2}
    kernels = [{"id": "a", "execution_state": "idle", "connections": 0, "last_activity": iso(T0 + 30)},
               {"id": "b", "execution_state": "idle", "connections": 0, "last_activity": iso(T0 + 20)}]
    terminals = [{"name": "1", "last_activity": iso(T0 + 45)}]
    activity = read_activity(status, kernels, terminals)
    assert activity == Activity(last_activity=T0 + 45, kernels=2, busy_kernels=0, connections=0, terminals=1)
    assert not activity.active


def test_a_busy_kernel_or_a_connection_is_activity_an_open_terminal_alone_is_not():
    status = {"last_activity": iso(T0), "connections": 0}
    busy = read_activity(status, [{"execution_state": "busy", "connections": 0, "last_activity": iso(T0)}], [])
    connected = read_activity(status, [{"execution_state": "idle", "connections": 2, "last_activity": iso(T0)}], [])
    starting = read_activity(status, [{"execution_state": "starting", "connections": 0}], [])
    terminal = read_activity(status, [], [{"name": "1", "last_activity": iso(T0)}])
    assert (busy.active, busy.busy_kernels) == (True, 1)
    assert (connected.active, connected.connections) == (True, 2)
    assert not starting.active and not terminal.active


def test_missing_fields_and_the_status_connection_count_are_handled():
    activity = read_activity({"last_activity": iso(T0), "connections": 1}, [{"execution_state": "idle"}], [])
    assert activity.connections == 1 and activity.active  # api/status counted a connection the list did not


# ----- the idle clock

def test_quiet_server_idles_from_its_last_activity_then_stops():
    idle = IdleClock(idle_timeout=60, max_lifetime=None, started=T0)
    early, warned, stopped = run(idle, [(T0 + 20, quiet()), (T0 + 50, quiet()), (T0 + 61, quiet())])
    assert (early.idle_seconds, early.warning, early.stop) == (20, None, None)
    assert warned.stop is None and warned.warning is not None
    assert warned.warning.reason == "idle" and warned.warning.stops_at == T0 + 60
    assert stopped.stop == "idle for 61s (idle timeout 60s)"


def test_a_busy_kernel_is_never_stopped_by_the_idle_timeout():
    idle = IdleClock(idle_timeout=60, max_lifetime=None, started=T0)
    busy = Activity(last_activity=T0, kernels=1, busy_kernels=1)  # time.sleep(400): no messages, no client
    decisions = run(idle, [(T0 + t, busy) for t in range(0, 3600, 5)])
    assert all(d.stop is None and d.warning is None and d.idle_seconds == 0 for d in decisions)


def test_the_clock_starts_when_the_server_became_quiet_not_at_the_last_reported_activity():
    """A kernel that computed (or a tab that stayed open) for an hour without messages: the clock starts
    at the last look that saw it active, not at the last message an hour ago."""
    idle = IdleClock(idle_timeout=60, max_lifetime=None, started=T0)
    connected = Activity(last_activity=T0, kernels=1, connections=1)
    run(idle, [(T0 + t, connected) for t in range(0, 3600, 5)])
    after = run(idle, [(T0 + 3600, quiet()), (T0 + 3600 + 40, quiet()), (T0 + 3595 + 61, quiet())])
    assert [d.idle_seconds for d in after] == [5, 45, 61]
    assert after[0].stop is None and after[0].warning is None
    assert after[1].warning is not None and after[1].warning.stops_at == T0 + 3595 + 60
    assert after[2].stop and after[2].stop.startswith("idle for 61s")


def test_activity_clears_the_warning_and_restarts_the_clock():
    idle = IdleClock(idle_timeout=60, max_lifetime=None, started=T0)
    warned, used, later = run(idle, [(T0 + 50, quiet()), (T0 + 55, quiet(last=T0 + 54)), (T0 + 100, quiet(T0 + 54))])
    assert warned.warning is not None
    assert (used.warning, used.idle_seconds) == (None, 1)  # an API request or a terminal keystroke at T0 + 54
    assert later.warning is not None and later.warning.stops_at == T0 + 114 and later.stop is None


def test_a_connection_clears_the_warning():
    idle = IdleClock(idle_timeout=60, max_lifetime=None, started=T0)
    warned, connected = run(idle, [(T0 + 50, quiet()), (T0 + 55, Activity(T0, kernels=1, connections=1))])
    assert warned.warning is not None
    assert (connected.warning, connected.stop, connected.idle_seconds) == (None, None, 0)


def test_the_maximum_lifetime_applies_to_a_busy_server_and_is_warned_first():
    life = IdleClock(idle_timeout=60, max_lifetime=3600, started=T0)
    busy = Activity(last_activity=T0, kernels=1, busy_kernels=1, connections=1)
    before, warned, stopped = run(life, [(T0 + 3000, busy), (T0 + 3400, busy), (T0 + 3600, busy)])
    assert before.warning is None and before.stop is None
    assert warned.warning == StopWarning("lifetime", T0 + 3600, "its maximum lifetime of 1h ends")
    assert stopped.stop == "reached its maximum lifetime of 3600s"


def test_a_server_that_does_not_answer_is_not_judged_idle_but_its_lifetime_ends():
    life = IdleClock(idle_timeout=60, max_lifetime=3600, started=T0)
    assert life.unanswered(T0 + 600).stop is None  # no idleness decided without an answer
    stopped = life.unanswered(T0 + 3600)
    assert stopped.stop == "reached its maximum lifetime of 3600s" and stopped.warning is not None
    assert IdleClock(idle_timeout=60, max_lifetime=None, started=T0).unanswered(T0 + 10 ** 6).stop is None


def test_the_earlier_stop_is_the_one_warned_about():
    both = IdleClock(idle_timeout=600, max_lifetime=700, started=T0)
    decision = both.observe(quiet(), T0 + 590)  # idle stop at T0 + 600, lifetime at T0 + 700: both within lead
    assert decision.warning is not None and decision.warning.reason == "idle"
    decision = both.observe(quiet(last=T0 + 595), T0 + 596)  # used: only the lifetime is near now
    assert decision.warning is not None and decision.warning.reason == "lifetime"


def test_no_timeouts_means_no_warning_and_no_stop():
    never = IdleClock(idle_timeout=None, max_lifetime=0, started=T0)
    decision = never.observe(quiet(), T0 + 10 ** 6)
    assert (decision.idle_seconds, decision.warning, decision.stop) == (10 ** 6, None, None)


# ----- the warning

@pytest.mark.parametrize("timeout, lead", [(86400, 300), (3600, 300), (1200, 300), (400, 100), (120, 30), (60, 30),
                                           (20, 20)])
def test_the_lead_is_a_quarter_of_the_timeout_from_30_seconds_to_five_minutes(timeout, lead):
    assert warning_lead(timeout) == lead


def test_a_configured_lead_is_used_and_bounded_by_the_timeout():
    lead = IdleClock(idle_timeout=600, max_lifetime=None, started=T0, lead=30)
    assert lead.observe(quiet(), T0 + 569).warning is None
    assert lead.observe(quiet(), T0 + 570).warning is not None
    longer = IdleClock(idle_timeout=60, max_lifetime=None, started=T0, lead=600)
    assert longer.observe(quiet(), T0 + 1).warning is not None  # at most the whole timeout


def test_the_warning_says_when_and_why_and_round_trips_as_json():
    idle = IdleClock(idle_timeout=3600, max_lifetime=None, started=T0)
    warning = idle.observe(quiet(), T0 + 3400).warning
    assert warning is not None
    assert warning.line() == ("stopping at 09:00 UTC: idle since 08:00 UTC (idle timeout 1h); "
                              "any use keeps it running")
    data = json.loads(warning.to_json())
    assert data == {"reason": "idle", "stops_at": T0 + 3600, "message": warning.message}
    assert StopWarning.from_json(warning.to_json()) == warning
    assert clock(T0 + 3600) == "09:00 UTC"


def test_the_same_warning_while_quiet_so_it_is_published_once():
    idle = IdleClock(idle_timeout=60, max_lifetime=None, started=T0)
    warnings = {idle.observe(quiet(), T0 + t).warning for t in range(45, 60)}
    assert len(warnings) == 1


# ----- what notebook info shows

def _server():
    from skein_jupyter.notebook import ServerInfo, Tunnel

    server = ServerInfo(app_id="application_1_0001", protocol="http", host="worker-1", port=41234, base_url="/",
                        token="t0ken", frontend="lab")
    return server, Tunnel("ssh -N -L 41234:worker-1:41234 alice@edge", 41234, "http://localhost:41234/lab?token=t")


def test_notebook_info_prints_the_warning_and_its_json_carries_it(capsys):
    from skein_jupyter.cli.render import show_server

    server, way = _server()
    warning = StopWarning("idle", T0 + 3600, "idle since 08:00 UTC (idle timeout 1h); any use keeps it running")
    show_server(server, way, as_json=False, warning=warning)
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == ("  Warning: stopping at 09:00 UTC: idle since 08:00 UTC (idle timeout 1h); "
                        "any use keeps it running")
    show_server(server, way, as_json=True, warning=warning)
    assert json.loads(capsys.readouterr().out)["warning"] == {"reason": "idle", "stops_at": T0 + 3600,
                                                              "message": warning.message}
    show_server(server, way, as_json=False)
    assert "Warning" not in capsys.readouterr().out
    show_server(server, way, as_json=True)
    assert json.loads(capsys.readouterr().out)["warning"] is None
