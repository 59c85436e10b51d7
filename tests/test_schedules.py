"""Schedules fired by the scheduler application, on the sandbox: one scheduler for the module.

The schedules live in a directory of this session's own
($SKEIN_JUPYTER_SCHEDULES_DIR), so the module runs beside other tests (and a
user's own scheduler) without touching theirs.
"""
import json
import os
import subprocess
import time
import uuid

import pytest
from click.testing import CliRunner

from conftest import wait_until, write_notebook
from skein_jupyter.applications import wait_for_final_state
from skein_jupyter.cli import cli
from skein_jupyter.hdfs import HadoopFS
from skein_jupyter.identity import hadoop_user
from skein_jupyter.runtime import cron

pytestmark = pytest.mark.yarn

PREFIX = f"t{uuid.uuid4().hex[:6]}"
ALL_STATES = ["NEW", "NEW_SAVING", "SUBMITTED", "ACCEPTED", "RUNNING", "FINISHED", "FAILED", "KILLED"]


def _cli(*args):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture(scope="module")
def scheduler(uploaded_venv, skein_client, tmp_path_factory):
    """This module's schedules directory and its scheduler (3 s poll); stopped and removed at the end."""
    from skein_jupyter import scheduler_app, schedules
    from skein_jupyter.identity import hadoop_user

    directory = f"/user/{hadoop_user()}/skein-jupyter/test-schedules-{PREFIX}"
    os.environ[schedules.DIR_VARIABLE] = directory
    started = time.monotonic()
    app_id = scheduler_app.start(skein_client, environment=uploaded_venv.url, poll=3)
    print(f"\nscheduler {app_id} submitted in {time.monotonic() - started:.1f}s")
    notebook = write_notebook(tmp_path_factory.mktemp("schedules") / "quick.ipynb",
                              [("alpha = 1", ["parameters"]), "print(alpha)"])
    try:
        yield {"app_id": app_id, "directory": directory, "notebook": str(notebook), "env": uploaded_venv.url}
    finally:
        stopped = _cli("scheduler", "stop")
        print(stopped.output)
        for report in skein_client.get_applications(states=["SUBMITTED", "ACCEPTED", "RUNNING"]):
            if any(tag.startswith(cron.SCHEDULE_TAG + PREFIX) for tag in report.tags) or report.id == app_id:
                skein_client.kill_application(report.id)
        HadoopFS().run("-rm", "-r", "-f", "-skipTrash", directory, check=False)
        del os.environ[schedules.DIR_VARIABLE]


def _records(name):
    from skein_jupyter.schedules import history

    return history(name)


def _create(scheduler, name, cron_expr="* * * * *", *more):
    result = _cli("schedule", "create", name, "--cron", cron_expr, scheduler["notebook"], "--env", scheduler["env"],
                  "--memory", "512 MiB", "-p", "alpha", "2", *more)
    assert result.exit_code == 0, result.output
    return result


def test_bad_input_is_refused_and_writes_nothing(scheduler, skein_client):
    fs = HadoopFS()
    name = f"{PREFIX}-bad"
    cases = [
        (["--cron", "61 * * * *"], "cron expression"),
        (["--cron", "* * * * *", "--timezone", "Mars/Olympus"], "time zone"),
        ([], "--cron missing"),
        (["--cron", "* * * * *", "--set", "resources.memory=1 PiB"], "resources.memory"),
    ]
    for flags, message in cases:
        result = _cli("schedule", "create", name, *flags, scheduler["notebook"], "--env", scheduler["env"])
        assert result.exit_code == 2, result.output
        assert message in result.output
    result = _cli("schedule", "create", "Upper", "--cron", "* * * * *", scheduler["notebook"])
    assert result.exit_code == 2 and "lowercase" in result.output
    more = [
        ([scheduler["notebook"].replace("quick.ipynb", "absent.ipynb")], "absent.ipynb"),  # does not validate
        ([scheduler["notebook"], "--email", "not-an-address"], "not-an-address"),
    ]
    for args, message in more:
        result = _cli("schedule", "create", name, "--cron", "* * * * *", *args, "--env", scheduler["env"])
        errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
        assert result.exit_code == 2 and len(errors) == 1 and message in errors[0], result.output
    assert not fs.exists(f"{scheduler['directory']}/{name}")
    submitted = [report.id for report in skein_client.get_applications(states=ALL_STATES, user=hadoop_user())
                 if cron.schedule_tag(name) in set(report.tags)]
    assert submitted == []


def test_every_minute_fires_survives_a_failed_attempt_and_pauses(scheduler, skein_client):
    from skein_jupyter import scheduler_app

    name = f"{PREFIX}-every"
    started = time.monotonic()
    _create(scheduler, name)
    print(f"created in {time.monotonic() - started:.1f}s")
    fs = HadoopFS()
    again = _cli("schedule", "create", name, "--cron", "* * * * *", scheduler["notebook"], "--env", scheduler["env"])
    assert again.exit_code == 2 and "exists" in again.output
    where = f"{scheduler['directory']}/{name}"
    modes = fs.modes(where, f"{where}/spec.yaml", f"{where}/files/papermill/job.json", f"{where}/history")
    assert set(modes.values()) <= {0o700, 0o600} and len(modes) == 4, modes
    spec = fs.cat(f"{where}/spec.yaml")
    assert "file://" not in spec and "alpha" not in spec  # files on HDFS; parameters only in the private job

    # trigger: fires at once, through the scheduler, recorded
    result = _cli("schedule", "trigger", name, "--json")
    assert result.exit_code == 0, result.output
    triggered = json.loads(result.output)
    assert triggered["how"] == "trigger" and triggered["app_id"].startswith("application_")
    print(f"triggered {triggered['app_id']} at {time.monotonic() - started:.1f}s")

    def cron_fires():
        return [r for r in _records(name) if r["how"] in ("cron", "misfire") and r.get("app_id")]

    wait_until(lambda: len(cron_fires()) >= 1, 150, "a first cron fire", poll=3)
    print(f"first cron fire at {time.monotonic() - started:.1f}s")

    # fail the scheduler's attempt: YARN starts another, which reads everything back from HDFS
    attempts = subprocess.run(["yarn", "applicationattempt", "-list", scheduler["app_id"]], capture_output=True,
                              text=True, check=True).stdout
    attempt = next(word for word in attempts.split() if word.startswith("appattempt_"))
    subprocess.run(["yarn", "applicationattempt", "-fail", attempt], capture_output=True, text=True, check=True)
    failed_at = time.monotonic()
    before = {r["scheduled"] for r in cron_fires()}
    # overlap: skip, so on a slow machine a minute can be skipped while the previous run still runs
    wait_until(lambda: {r["scheduled"] for r in cron_fires()} - before, 300, "a cron fire after the failed attempt",
               poll=3)
    print(f"a cron fire {time.monotonic() - failed_at:.1f}s after failing {attempt}")
    report = skein_client.application_report(scheduler["app_id"])
    assert str(report.state) == "RUNNING"
    assert scheduler_app.find_scheduler(skein_client).id == scheduler["app_id"]

    records = _records(name)
    fired = [r["app_id"] for r in records if r.get("app_id")]
    # No double fire, from YARN's side: each fire tag is on exactly one of this schedule's applications.
    mine = [report for report in skein_client.get_applications(states=ALL_STATES, user=hadoop_user())
            if cron.schedule_tag(name) in set(report.tags)]
    fire_tags = [tag for report in mine for tag in report.tags if tag.startswith(cron.FIRE_TAG)]
    assert len(fire_tags) == len(set(fire_tags)) == len(mine), sorted(fire_tags)
    assert {str(report.id) for report in mine} >= set(fired), (fired, mine)
    skipped = [r for r in records if r["state"] == "skipped"]
    assert all("overlap" in r["reason"] for r in skipped), skipped
    for app_id in fired[:3]:
        report = wait_for_final_state(skein_client, app_id, 180)
        assert cron.schedule_tag(name) in set(report.tags)
        assert str(report.final_status) == "SUCCEEDED", app_id
    print(f"fired runs ended at {time.monotonic() - started:.1f}s")

    # pause: a due minute passes without a fire; resume: no catch-up of the paused minute
    assert _cli("schedule", "pause", name).exit_code == 0
    paused_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    time.sleep(62 - time.gmtime().tm_sec + 6)  # past the next minute and two polls
    assert _cli("schedule", "resume", name).exit_code == 0
    time.sleep(8)
    late = [r for r in _records(name) if r["how"] in ("cron", "misfire") and r["scheduled"] > paused_at]
    assert late == [], late
    result = _cli("schedule", "show", name, "--json")
    assert json.loads(result.output)["paused"] is False and json.loads(result.output)["next_fires"]
    status = _cli("scheduler", "status", "--json")
    assert json.loads(status.output)["app_id"] == scheduler["app_id"]
    history = _cli("schedule", "history", name)
    assert triggered["app_id"] in history.output
    assert _cli("schedule", "delete", name).exit_code == 0
    print(f"test took {time.monotonic() - started:.1f}s")


def test_trigger_and_second_scheduler_are_refused_when_they_cannot_work(scheduler, skein_client):
    result = _cli("scheduler", "start", "--env", scheduler["env"])
    assert result.exit_code == 2 and "already runs" in result.output
    result = _cli("schedule", "trigger", f"{PREFIX}-missing")
    assert result.exit_code == 2 and "no schedule" in result.output
