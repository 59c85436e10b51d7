"""Notifications on the sandbox, for real: a failing run with --html tells a webhook and an email
address, served by an HTTP server and an SMTP server (aiosmtpd) that the test starts on 127.0.0.1
(the sandbox's containers run on this machine); the secrets stay out of the logs and the spec."""
import email
import email.policy
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from conftest import wait_until, write_notebook
from skein_jupyter.cli import cli
from skein_jupyter.hdfs import HadoopFS

pytestmark = pytest.mark.yarn

#: The secret part of the webhook's URL: it must appear in no log, spec or output.
TOKEN = "T0K3N-c0ffee-9f8e7d"


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def webhook_server():
    """An HTTP server on 127.0.0.1 that records every POST (path, JSON body)."""
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            received.append((self.path, json.loads(body)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], received
    server.shutdown()
    server.server_close()


@pytest.fixture
def smtp_server():
    """An SMTP server (aiosmtpd) on 127.0.0.1 that records every message (envelope recipients, bytes)."""
    from aiosmtpd.controller import Controller

    received = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append((list(envelope.rcpt_tos), envelope.original_content or envelope.content))
            return "250 OK"

    for attempt in range(5):  # a free port can be taken by another test worker before we bind it: try another
        controller = Controller(Handler(), hostname="127.0.0.1", port=_free_port())
        try:
            controller.start()
            break
        except (OSError, RuntimeError):
            if attempt == 4:
                raise
    yield controller.port, received
    controller.stop()


def test_a_failing_run_notifies_a_webhook_and_emails_its_html(uploaded_venv, webhook_server, smtp_server,
                                                             skein_client, tmp_path, capsys):
    hook_port, posts = webhook_server
    smtp_port, mails = smtp_server
    secrets = tmp_path / "notifications.yaml"
    secrets.write_text(f"webhooks:\n  team:\n    url: http://127.0.0.1:{hook_port}/hooks/{TOKEN}\n"
                       f"smtp:\n  host: 127.0.0.1\n  port: {smtp_port}\n  security: none\n"
                       f"  from: skein-jupyter@example.com\n")
    secrets.chmod(0o600)
    notebook = write_notebook(tmp_path / "failing.ipynb", [
        ("divisor = 0", ["parameters"]), "print('first cell ran', flush=True)", "ratio = 1 / divisor"])
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = dict(os.environ, SKEIN_JUPYTER_NOTIFICATIONS=str(secrets), TMPDIR=str(temp))
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "skein_jupyter", "run", str(notebook), "--env", uploaded_venv.url,
                           "--memory", "512MiB", "--html", "--webhook", "team", "--email", "alice@example.com",
                           "--notify-on", "failure", "-q"], capture_output=True, text=True, timeout=600, env=env)
    ran = time.monotonic() - started
    assert proc.returncode == 1, proc.stdout + proc.stderr
    app_id = proc.stderr.strip().splitlines()[-1].split()[2]
    assert app_id.startswith("application_"), proc.stderr
    assert list(temp.iterdir()) == []  # job.json and notify.json were removed once submitted

    wait_until(lambda: posts and mails, 120, "the webhook POST and the email")
    with capsys.disabled():
        print(f"\nfailing run with --html -> exit 1: {ran:.1f}s; notifications received "
              f"{time.monotonic() - started - ran:.1f}s after the command returned")
    path, body = posts[0]
    assert path == f"/hooks/{TOKEN}" and len(posts) == 1
    assert (body["status"], body["event"], body["kind"], body["app_id"]) == ("failed", "failure", "run", app_id)
    assert (body["cell"], body["ename"]) == (2, "ZeroDivisionError") and "divisor" not in json.dumps(body)
    assert f"Run {body['name']} failed" in body["text"] and "in cell 3 (ZeroDivisionError)" in body["text"]

    recipients, raw = mails[0]
    assert recipients == ["alice@example.com"] and len(mails) == 1
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert app_id in message["Subject"] and "failed" in message["Subject"]
    assert "in cell 3 (ZeroDivisionError)" in message.get_body(("plain",)).get_content()
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_filename() == "failing.html"
    html = HadoopFS().cat(f"/user/{body['user']}/skein-jupyter/runs/{app_id}/failing.html")
    assert attachment.get_content() == html and "ZeroDivisionError" in html  # exactly the run's HTML

    logs = CliRunner().invoke(cli, ["logs", app_id])
    assert logs.exit_code == 0, logs.output
    assert "notification: sent to webhook 'team'" in logs.output and "notification: sent to email" in logs.output
    assert TOKEN not in logs.output and str(hook_port) not in logs.output


def test_a_notifications_file_on_hdfs_must_be_private(sandbox, tmp_path, capsys):
    import uuid

    from skein_jupyter import notifications
    from skein_jupyter.exceptions import UsageError
    from skein_jupyter.identity import hadoop_user
    from skein_jupyter.notifications import load_channels

    local = tmp_path / "notifications.yaml"
    local.write_text(f"webhooks:\n  team:\n    url: https://hooks.example.com/{TOKEN}\n")
    url = f"hdfs:///user/{hadoop_user()}/notifications-test-{uuid.uuid4().hex[:8]}.yaml"
    fs = HadoopFS()
    started = time.monotonic()
    try:
        fs.put([local], url)  # private: 600
        assert load_channels("alice", fs, url).webhooks["team"].url.endswith(TOKEN)
        fs.chmod("640", url)
        notifications._HDFS_CACHE.clear()  # a launch reads once for its checks and its spec; read again here
        with pytest.raises(UsageError, match="readable or writable by others \\(mode 640\\)") as info:
            load_channels("alice", fs, url)
        assert TOKEN not in str(info.value)
    finally:
        fs.rm(url)
    with capsys.disabled():
        print(f"\nnotifications file on HDFS: read when 600, refused when 640: {time.monotonic() - started:.1f}s")
