"""When schedules fire: names, cron, time zones and DST, misfire and overlap decisions (no cluster)."""
import dataclasses
from datetime import datetime, timedelta, timezone

import pytest

from skein_jupyter.runtime import cron

UTC = timezone.utc
GRACE = timedelta(seconds=60)


def at(text):
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def definition(**changes):
    return cron.Definition(**{"name": "nightly", "cron": "0 6 * * *", "not_before": "20261201T000000Z", **changes})


@pytest.mark.parametrize("name", ["nightly", "a", "report-2_b", "x" * 40])
def test_good_names(name):
    assert cron.check_name(name) == name


@pytest.mark.parametrize("name", ["", "Nightly", "-x", "a b", "a/b", "x" * 41, "é"])
def test_bad_names(name):
    with pytest.raises(cron.ScheduleError, match="not valid"):
        cron.check_name(name)


@pytest.mark.parametrize("expression", ["61 * * * *", "* * 32 * *", "* * * *", "nonsense", ""])
def test_bad_cron(expression):
    with pytest.raises(cron.ScheduleError):
        cron.check_cron(expression)


def test_bad_timezone():
    with pytest.raises(cron.ScheduleError, match="IANA"):
        cron.check_timezone("Mars/Olympus")
    with pytest.raises(cron.ScheduleError):
        cron.check_timezone("../etc/passwd")


def test_fire_times_follow_the_time_zone_across_dst():
    # New York springs forward on 2026-03-08: 02:30 does not exist that day, cron fires at 03:00 EDT.
    times = cron.fire_times("30 2 * * *", "America/New_York", at("2026-03-07T00:00:00"))
    assert [next(times) for _ in range(3)] == [at("2026-03-07T07:30:00"), at("2026-03-08T07:00:00"),
                                               at("2026-03-09T06:30:00")]
    # Paris falls back on 2026-10-25: 06:00 local is 05:00 UTC before, 06:00 UTC after (once a day).
    times = cron.fire_times("0 6 * * *", "Europe/Paris", at("2026-10-24T00:00:00"))
    assert [next(times) for _ in range(2)] == [at("2026-10-24T04:00:00"), at("2026-10-25T05:00:00")]


def test_due_on_time_fires_once():
    d = definition()
    decision = cron.due(d, None, at("2026-12-01T06:00:20"), GRACE)
    assert decision == cron.Decision(at("2026-12-01T06:00:00"), "cron", True)
    assert cron.due(d, at("2026-12-01T06:00:00"), at("2026-12-01T06:00:40"), GRACE) is None
    assert cron.due(d, None, at("2026-12-01T05:59:59"), GRACE) is None


def test_missed_times_run_once_or_skip():
    now = at("2026-12-04T12:00:00")  # the scheduler was down since before the 2nd's fire
    last = at("2026-12-01T06:00:00")
    once = cron.due(definition(), last, now, GRACE)
    assert once == cron.Decision(at("2026-12-04T06:00:00"), "misfire", True, missed=2)
    skipped = cron.due(definition(misfire="skip"), last, now, GRACE)
    assert skipped == cron.Decision(at("2026-12-04T06:00:00"), "misfire", False, missed=2)
    # Once acted on (fired or recorded as skipped), nothing is due until the next fire time.
    assert cron.due(definition(), at("2026-12-04T06:00:00"), now, GRACE) is None


def test_missed_times_with_an_on_time_one_fire_the_on_time_one():
    decision = cron.due(definition(cron="* * * * *"), at("2026-12-01T06:00:00"), at("2026-12-01T06:03:10"), GRACE)
    assert decision == cron.Decision(at("2026-12-01T06:03:00"), "cron", True, missed=2)


def test_paused_and_times_before_the_start_never_fire():
    assert cron.due(definition(paused=True), None, at("2026-12-01T06:00:10"), GRACE) is None
    resumed = definition(not_before="20261201T070000Z")  # resumed at 07:00: 06:00 is not caught up
    assert cron.due(resumed, at("2026-11-30T06:00:00"), at("2026-12-01T07:00:30"), GRACE) is None
    assert cron.due(resumed, None, at("2026-12-02T06:00:05"), GRACE).scheduled == at("2026-12-02T06:00:00")


def test_overlap_policy():
    assert cron.overlap_blocks(definition(), previous_running=True)
    assert not cron.overlap_blocks(definition(overlap="allow"), previous_running=True)
    assert not cron.overlap_blocks(definition(), previous_running=False)


def test_definition_round_trip_and_checks():
    d = definition(timezone="Europe/Paris", target={"target": "report.ipynb"})
    assert cron.Definition.from_json(d.to_json()) == d
    with pytest.raises(cron.ScheduleError, match="unknown fields"):
        cron.Definition.from_json('{"name": "x", "cron": "* * * * *", "command": "rm -rf /"}')
    with pytest.raises(cron.ScheduleError, match="misfire"):
        dataclasses.replace(d, misfire="always")
    with pytest.raises(cron.ScheduleError, match="must be a string"):
        cron.Definition.from_json('{"name": "x", "cron": 5}')


def test_tags_are_lowercase_and_short():
    tag = cron.fire_tag("x" * 40, "t" + cron.stamp(at("2026-12-01T06:00:00")) + "-abcd")
    assert tag == tag.lower() and len(tag) <= 100


def test_bad_schedule_input_exits_2_before_anything(tmp_path):
    from click.testing import CliRunner

    from skein_jupyter.cli import cli

    notebook = tmp_path / "n.ipynb"
    notebook.write_text("{}")
    for args, message in [(["Bad"], "lowercase"), (["ok"], "--cron missing"),
                          (["ok", "--cron", "* * 99 * *"], "cron expression"),
                          (["ok", "--cron", "* * * * *", "--timezone", "Nowhere/Land"], "time zone")]:
        result = CliRunner().invoke(cli, ["schedule", "create", *args, str(notebook)])
        assert result.exit_code == 2, result.output
        assert message in result.output and result.output.startswith("Error:")


def test_due_after_a_long_outage_fires_once():
    # Every minute, three weeks down: more missed times than the limit; run-once fires the latest once.
    d = definition(cron="* * * * *")
    now = at("2026-12-22T00:00:30")
    decision = cron.due(d, None, now, GRACE, limit=1000)
    assert decision is not None and decision.fire and decision.scheduled == at("2026-12-22T00:00:00")
    assert cron.due(d, decision.scheduled, now, GRACE, limit=1000) is None
    late = cron.due(d, None, at("2026-12-22T00:05:30"), timedelta(seconds=10), limit=1000)
    assert late is not None and late.how == "misfire" and late.scheduled == at("2026-12-22T00:05:00")
    assert cron.due(d, late.scheduled, at("2026-12-22T00:05:30"), GRACE, limit=1000) is None


def test_directory_tag_names_the_directory():
    assert cron.directory_tag("/user/a/s") == cron.directory_tag("/user/a/s/")
    assert cron.directory_tag("/user/a/s") != cron.directory_tag("/user/b/s")
    assert len(cron.directory_tag("/x")) <= 100


@pytest.mark.parametrize("value", ["hdfs://nn:8020/user/a/s", "relative/dir", "/"])
def test_schedules_dir_must_be_an_absolute_hdfs_path(monkeypatch, value):
    from skein_jupyter import schedules
    from skein_jupyter.exceptions import UsageError

    monkeypatch.setenv(schedules.DIR_VARIABLE, value)
    with pytest.raises(UsageError, match="absolute HDFS path"):
        schedules.schedules_dir()
    monkeypatch.setenv(schedules.DIR_VARIABLE, "/user/a/s/")
    assert schedules.schedules_dir() == "/user/a/s"


def test_a_damaged_definition_is_a_clear_error():
    from skein_jupyter import schedules
    from skein_jupyter.exceptions import UsageError

    with pytest.raises(UsageError, match="schedule nightly is damaged .*schedule delete nightly"):
        schedules._definition('{"name": "nightly", "cron": ', "nightly")


def test_scheduler_environment_checks():
    from skein_jupyter.exceptions import UsageError
    from skein_jupyter.scheduler_app import check_environment

    check_environment({})  # an hdfs:// archive without metadata: nothing known, nothing refused
    check_environment({"python": "3.11.4", "packages": {"skein": "0.8.2"}})
    with pytest.raises(UsageError, match="lacks skein"):
        check_environment({"python": "3.11.4", "packages": {"papermill": "2"}})
    with pytest.raises(UsageError, match="Python 3.9 or later"):
        check_environment({"python": "3.8.10", "packages": {"skein": "0.8.2"}})
    assert cron.check_timezone("UTC") == UTC
