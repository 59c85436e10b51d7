"""Notifications without a cluster: the recipe's notify section and flags, the private notifications
file, the secrets a job ships (never shown), the messages (JSON, Slack, email with the HTML attached),
and a send that fails without changing anything or naming its URL."""
import email
import email.policy
import json
import os
import socket

import pytest
from click.testing import CliRunner

from conftest import write_notebook
from skein_jupyter.cli import cli
from skein_jupyter.config import load_recipe
from skein_jupyter.exceptions import UsageError
from skein_jupyter.notifications import load_channels, resolve
from skein_jupyter.runtime import notify
from skein_jupyter.runtime.job import Job, JobError, NotifyJob, RunJob, from_json, to_json
from skein_jupyter.spec import SpecContext, job_from_recipe

TOKEN = "T0K3N-unit-5e5e"
PASSWORD = "pw-unit-0a0b"
GOOD = (f"webhooks:\n  team:\n    url: https://hooks.example.com/services/{TOKEN}\n    format: slack\n"
        f"  ops:\n    url: http://127.0.0.1:9/hook\n"
        f"smtp:\n  host: smtp.example.com\n  port: 587\n  user: alice\n  password: {PASSWORD}\n"
        f"  from: reports@example.com\n")


@pytest.fixture
def secrets_file(tmp_path, monkeypatch):
    def write(text=GOOD, mode=0o600):
        path = tmp_path / "notifications.yaml"
        path.write_text(text)
        path.chmod(mode)
        monkeypatch.setenv("SKEIN_JUPYTER_NOTIFICATIONS", str(path))
        return path
    return write


@pytest.fixture
def notebook(tmp_path):
    return write_notebook(tmp_path / "report.ipynb", [("alpha = 1", ["parameters"]), "print(alpha)"])


def _recipe(notebook, **flags):
    recipe, _ = load_recipe(kind="run", environ={}, config_path="/nonexistent/config.yaml", flags={
        "environment": "hdfs:///envs/analytics.tar.gz", "run.notebook": str(notebook), **flags})
    return recipe


@pytest.mark.parametrize("flags, message", [
    ({"notify.emails": ["alice at example.com"]}, "'alice at example.com' is not an email address"),
    ({"notify.emails": "alice@example.com, bob@"}, "'bob@' is not an email address"),
    ({"notify.when": "failure,crash"}, "'crash' is not an event"),
    ({"notify.webhooks": ["team chat"]}, "'team chat' is not a webhook name"),
])
def test_bad_notify_values_are_refused_naming_the_field(notebook, flags, message):
    with pytest.raises(UsageError, match="notify.") as info:
        _recipe(notebook, **flags)
    assert message in str(info.value)


def test_a_notebook_server_recipe_has_no_notify_section(tmp_path):
    recipe = tmp_path / "server.yaml"
    recipe.write_text("kind: notebook\nnotify:\n  emails: [alice@example.com]\n")
    with pytest.raises(UsageError, match="a notebook recipe has no notify: section"):
        load_recipe(recipe, environ={}, config_path=tmp_path / "none.yaml")


@pytest.mark.parametrize("text, mode, message", [
    (GOOD, 0o644, "is readable or writable by others (mode 644)"),
    (GOOD, 0o660, "chmod 600"),
    (GOOD.replace("https://hooks.example.com", "ftp://hooks.example.com"), 0o600,
     "webhooks.team.url is not an http(s)://host/... URL"),
    (GOOD.replace("format: slack", "format: teams"), 0o600, "webhooks.team.format is not one of json, slack"),
    (GOOD.replace("  user: alice\n", ""), 0o600, "smtp.user and smtp.password go together"),
    (GOOD.replace("from: reports@example.com", "from: reports"), 0o600, "smtp.from is missing or not an email"),
    (f"webhooks:\n  team:\n    url: [https://x/{TOKEN}\n", 0o600, "is not valid YAML at line"),
])
def test_a_bad_or_insecure_notifications_file_is_refused_without_showing_secrets(secrets_file, text, mode, message):
    path = secrets_file(text, mode)
    with pytest.raises(UsageError) as info:
        load_channels("alice", location=str(path))
    assert message in str(info.value) and TOKEN not in str(info.value) and PASSWORD not in str(info.value)


def test_channels_a_recipe_names_must_be_configured(secrets_file, notebook):
    secrets_file()
    with pytest.raises(UsageError, match=r"notify.webhooks: 'chat' is not a webhook of .* \(it has: ops, team\)"):
        resolve(_recipe(notebook, **{"notify.webhooks": ["chat"]}), "alice")
    secrets_file(GOOD.split("smtp:")[0])
    with pytest.raises(UsageError, match="notify.emails: no SMTP server in notifications file"):
        resolve(_recipe(notebook, **{"notify.emails": ["bob@example.com"]}), "alice")
    assert resolve(_recipe(notebook, **{"notify.webhooks": ["team"]}), "alice") == {
        "webhooks": {"team": {"url": f"https://hooks.example.com/services/{TOKEN}", "format": "slack"}},
        "smtp": None}  # only what the recipe names
    assert resolve(_recipe(notebook), "alice") is None  # no channel: no file read, nothing shipped


def test_the_job_names_channels_and_the_secrets_ship_apart(secrets_file, notebook, tmp_path):
    import skein_jupyter.spec as spec

    secrets_file()
    recipe = _recipe(notebook, **{"notify.webhooks": ["team"], "notify.emails": ["bob@example.com"],
                                  "notify.when": ["success", "failure"]})
    job = job_from_recipe(recipe, "alice")
    assert job.notify == NotifyJob(when=["success", "failure"], webhooks=["team"], emails=["bob@example.com"])
    assert from_json(to_json(job)) == job and TOKEN not in to_json(job) and PASSWORD not in to_json(job)
    assert job_from_recipe(_recipe(notebook), "alice").notify is None
    context = SpecContext(user="alice", runtime=str(tmp_path / "runtime.zip"))
    built = spec.build_spec(recipe, context)
    files = built.services["papermill"].files
    try:
        shipped = files[notify.NOTIFY_FILE]
        assert shipped.visibility == "application" and files["job.json"].visibility == "application"
        local = shipped.source[len("file://"):]
        assert oct(os.stat(local).st_mode & 0o777) == "0o600"
        data = json.loads(open(local).read())
        assert data["smtp"]["password"] == PASSWORD and TOKEN in data["webhooks"]["team"]["url"]
    finally:
        spec.discard_job_file(built)
    assert not os.path.exists(local)
    with pytest.raises(JobError, match="notify.when"):
        Job(kind="run", name="x", user="alice", run=RunJob(notebook="x.ipynb"), notify=NotifyJob(when=["crash"]))
    with pytest.raises(JobError, match="notify.emails"):
        Job(kind="run", name="x", user="alice", run=RunJob(notebook="x.ipynb"),
            notify=NotifyJob(emails=["a@example.com\nBcc: eve@example.com"]))


def test_bad_channels_exit_2_before_anything_and_the_spec_shows_no_secret(secrets_file, notebook, tmp_path):
    secrets_file()
    env = ["--env", str(tmp_path / "analytics.tar.gz")]
    (tmp_path / "analytics.tar.gz").write_bytes(b"")
    cases = [(["--webhook", "chat"], "notify.webhooks: 'chat' is not a webhook"),
             (["--email", "bob@@example.com"], "notify.emails (from command line): 'bob@@example.com' is not an email"),
             (["--notify-on", "always", "--email", "bob@example.com"], "'always' is not an event")]
    for args, message in cases:
        result = CliRunner().invoke(cli, ["run", str(notebook), *env, *args, "--dry-run"])
        assert result.exit_code == 2 and message in result.output, (args, result.output)
    secrets_file(mode=0o604)
    result = CliRunner().invoke(cli, ["run", str(notebook), *env, "--webhook", "team", "--dry-run"])
    assert result.exit_code == 2 and "is readable or writable by others" in result.output, result.output
    secrets_file()
    result = CliRunner().invoke(cli, ["run", str(notebook), *env, "--webhook", "team", "--email", "bob@example.com",
                                      "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "notify.json" in result.output and TOKEN not in result.output and PASSWORD not in result.output


# ----------------------------------------------------------------- the container's side

SUMMARY = {"status": "failed", "kind": "run", "name": "nightly", "app_id": "application_1_0042", "user": "alice",
           "duration": 75.2, "output": "/user/alice/skein-jupyter/runs/application_1_0042", "sets": 1,
           "counts": {"failed": 1}, "cell": 2, "ename": "ZeroDivisionError", "schedule": "nightly"}


def _job(**notify_fields):
    return Job(kind="run", name="nightly", user="alice", run=RunJob(notebook="report.ipynb"),
               notify=NotifyJob(**notify_fields))


def test_messages_json_and_slack():
    body = json.loads(notify.webhook_body(SUMMARY))
    assert (body["event"], body["status"], body["cell"], body["ename"]) == ("failure", "failed", 2, "ZeroDivisionError")
    assert body["subject"] == "[skein-jupyter] run nightly failed (application_1_0042)"
    assert "status: failed in cell 3 (ZeroDivisionError)" in body["text"] and "duration: 1m15s" in body["text"]
    assert "schedule: nightly" in body["text"]
    slack = json.loads(notify.webhook_body(SUMMARY, "slack"))
    assert list(slack) == ["text"] and slack["text"].startswith("*[skein-jupyter] run nightly failed")
    flow = dict(SUMMARY, kind="flow", steps=[{"name": "extract", "status": "succeeded", "attempts": 1,
                                              "duration": 12, "output": "/o/extract.ipynb"},
                                             {"name": "train", "status": "failed", "attempts": 2, "duration": 30}])
    text = notify.message_text(flow)
    assert "steps:" in text and "extract  succeeded  1         12.0s     /o/extract.ipynb" in text
    sweep = dict(SUMMARY, kind="sweep", sets=4, counts={"succeeded": 3, "timed_out": 1}, cell=None, ename=None)
    assert notify.events_of(sweep) == {"failure", "timeout"}
    assert "sets: 4 (3 succeeded, 1 timed_out)" in notify.message_text(sweep)


def test_email_with_the_html_attached(tmp_path):
    html = tmp_path / "report.html"
    html.write_text("<!DOCTYPE html><p>r\u00e9sultat \u2022 ZeroDivisionError</p>", encoding="utf-8")
    message = notify.email_message(SUMMARY, "reports@example.com", ["a@example.com", "b@example.com"],
                                   [html, tmp_path / "missing.html"])
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert parsed["To"] == "a@example.com, b@example.com" and "failed" in parsed["Subject"]
    assert "in cell 3 (ZeroDivisionError)" in parsed.get_body(("plain",)).get_content()
    (attachment,) = list(parsed.iter_attachments())
    assert attachment.get_filename() == "report.html" and attachment.get_content_type() == "text/html"
    assert attachment.get_content() == html.read_text(encoding="utf-8")


def test_only_the_events_asked_for_notify(tmp_path):
    job = _job(when=["failure"], webhooks=["team"])
    assert not notify.wanted(job, dict(SUMMARY, status="succeeded", counts={"succeeded": 1}))
    assert notify.wanted(job, SUMMARY) and not notify.wanted(_job(when=["failure"]), SUMMARY)
    # a success when only failures are asked for: nothing is read or sent
    assert notify.send(job, dict(SUMMARY, status="succeeded"), secrets_path=tmp_path / "absent.json") == {}


def test_a_failing_channel_is_logged_without_its_url_and_changes_nothing(tmp_path, capsys):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    secrets = tmp_path / "notify.json"
    secrets.write_text(json.dumps({"webhooks": {"team": {"url": f"http://127.0.0.1:{port}/{TOKEN}"}},
                                   "smtp": {"host": "127.0.0.1", "port": port, "security": "none",
                                            "from": "r@example.com", "user": "u", "password": PASSWORD}}))
    results = notify.send(_job(webhooks=["team"], emails=["a@example.com"]), SUMMARY, secrets_path=secrets,
                          deadline=4)
    assert results == {"webhook team": False, "email": False}
    logged = capsys.readouterr().err
    assert "notification: webhook 'team' not sent" in logged and "ConnectionRefusedError" in logged
    assert TOKEN not in logged and PASSWORD not in logged and str(port) not in logged


def test_the_guides_notification_examples_are_valid(tmp_path, notebook):
    """The YAML the batch users' guide shows (a recipe's notify: section, a notifications file) is accepted."""
    import yaml

    from skein_jupyter.notifications import parse_channels
    from test_guides import code_blocks

    blocks = [b.text for b in code_blocks("docs/guides/batch-users.rst") if b.language == "yaml"
              and "caption" not in b.options and ("notify:" in b.text or "webhooks:" in b.text)]
    assert len(blocks) == 2
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"kind": "run", "environment": "hdfs:///e.tar.gz", "run": {"notebook": str(notebook)},
                                      **yaml.safe_load(blocks[0])}))
    model, _ = load_recipe(recipe, environ={}, config_path=tmp_path / "none.yaml")
    assert model.notify.webhooks == ("team-chat",) and model.notify.when == ("failure", "timeout")
    channels = parse_channels(yaml.safe_load(blocks[1]), "guide")
    assert set(channels.webhooks) == {"team-chat", "ops"} and channels.smtp.port == 587


def test_a_sweeps_email_carries_the_html_of_sets_that_did_not_succeed_first(tmp_path):
    from types import SimpleNamespace

    rows = [{"set": i, "status": "failed" if i in (3, 6) else "succeeded",
             "html": f"/out/report-{i:02d}.html" if i != 4 else None} for i in range(8)]
    for i in range(8):
        (tmp_path / f"report-{i:02d}.html").write_text(f"set {i}")
    found = notify._html_files(SimpleNamespace(workdir=tmp_path), rows)
    assert [p.name for p in found] == ["report-03.html", "report-06.html", "report-00.html", "report-01.html",
                                       "report-02.html"]  # at most 5; no HTML for set 4
    assert notify.schedule_of(["skein-jupyter", "skein-jupyter-schedule:nightly"]) == "nightly"
    assert notify.schedule_of(["skein-jupyter-run"]) is None


def test_a_flow_notifies_from_its_coordinator_with_a_table_of_steps(secrets_file, notebook, tmp_path):
    import yaml

    import skein_jupyter.spec as spec

    secrets_file()
    path = tmp_path / "flow.yaml"
    path.write_text(yaml.safe_dump({
        "kind": "flow", "environment": "hdfs:///envs/analytics.tar.gz",
        "notify": {"webhooks": ["team"], "when": ["failure"]},
        "flow": {"steps": {"a": {"notebook": str(notebook)},
                           "b": {"notebook": str(notebook), "depends_on": ["a"]}}}}))
    recipe, _ = load_recipe(str(path), environ={}, config_path=tmp_path / "none.yaml")
    assert job_from_recipe(recipe, "alice").notify == NotifyJob(when=["failure"], webhooks=["team"])
    built = spec.build_spec(recipe, SpecContext(user="alice", runtime=str(tmp_path / "runtime.zip")))
    try:  # the secrets go to the coordinator, which tells how the flow ended, and to no step
        assert [name for name, service in built.services.items() if notify.NOTIFY_FILE in service.files] == ["flow"]
    finally:
        spec.discard_job_file(built)

    class Coordinator:  # what notify_end reads of the flow's coordinator
        job = from_json(to_json(job_from_recipe(recipe, "alice")))
        app_id, workdir = "application_1_0007", tmp_path

        class app_client:
            @staticmethod
            def get_specification():
                raise ConnectionError("the master is ending")

    sent = []
    rows = [{"step": "a", "status": "succeeded", "attempts": 1, "duration": 3.0, "output": "/o/a/nb.ipynb"},
            {"step": "b", "status": "failed", "attempts": 2, "duration": 4.0, "output": "/o/b/nb.ipynb"}]
    original = notify.send
    notify.send = lambda job, summary, attachments: sent.append(summary) or {}
    try:
        notify.notify_end(Coordinator, {"status": "failed", "duration": 9.0, "output": "/o"}, rows)
        notify.notify_end(Coordinator, {"status": "succeeded", "duration": 9.0, "output": "/o"}, rows)
    finally:
        notify.send = original
    (summary,) = sent  # a success was not asked for
    assert summary["kind"] == "flow" and [s["name"] for s in summary["steps"]] == ["a", "b"]
    assert "  b     failed     2" in notify.message_text(summary)
