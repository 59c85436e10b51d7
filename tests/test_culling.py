"""Culling on the sandbox: a busy kernel is not culled, a warning comes first, a quiet server is culled.

One server for the module, with a short idle timeout; the tests follow its
life in order (each still holds when run alone): a cell sleeps well past the
idle timeout with no client connected and the server keeps running; once
quiet, the server publishes its warning and a connected client clears it;
quiet again, ``notebook info`` shows the next warning; then the server stops
itself and its application ends SUCCEEDED.
"""
import json
import re
import time
import urllib.error
import urllib.request
import uuid

import pytest
from click.testing import CliRunner

from conftest import kernel_socket, send_code, wait_until
from skein_jupyter.applications import application_logs, wait_for_final_state
from skein_jupyter.cli import cli
from skein_jupyter.config import load_recipe
from skein_jupyter.notebook import start
from skein_jupyter.runtime import keys

pytestmark = pytest.mark.yarn

IDLE_TIMEOUT = 30   # seconds; as short as that, the warning is up as soon as the server is quiet
SLEEP = 60          # seconds the cell computes, past the idle timeout and the watcher's polls


def _url(server, path, track=False):
    # The test's own looks are not activity, or they would keep the server alive.
    return f"http://{server.host}:{server.port}{server.base_url}{path}" + ("" if track else "?no_track_activity=1")


def _request(server, path, body=None, track=False):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(_url(server, path, track), data=data, method="GET" if body is None else "POST",
                                     headers={"Authorization": f"token {server.token}",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


WORKSPACE = f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def server(uploaded_venv, skein_client):
    """A jupyter_server with a short idle timeout; killed at the end if it did not stop itself."""
    recipe, _ = load_recipe(kind="notebook", environ={}, flags={
        "environment": uploaded_venv.url, "resources.memory": "1 GiB", "notebook.frontend": "server",
        "notebook.idle_timeout": f"{IDLE_TIMEOUT}s",
        "notebook.workspace": WORKSPACE, "notebook.sync_interval": "1h"})  # only a stop's sync sends files
    server = start(recipe, skein_client, timeout=600)
    yield server
    if str(skein_client.application_report(server.app_id).state) not in ("FINISHED", "FAILED", "KILLED"):
        skein_client.kill_application(server.app_id)


@pytest.fixture(scope="module")
def kv(server, skein_client):
    return skein_client.connect(server.app_id, wait=False).kv


def _state(skein_client, server):
    return str(skein_client.application_report(server.app_id).state)


def _execute(server, kernel_id, code):
    """Send ``code`` to the kernel over its websocket, wait until it is busy with it, then disconnect."""
    ws = kernel_socket(server, kernel_id)
    try:
        msg_id = send_code(ws, code)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            msg = json.loads(ws.recv())
            if (msg["msg_type"] == "status" and msg["parent_header"].get("msg_id") == msg_id
                    and msg["content"]["execution_state"] == "busy"):
                return
        pytest.fail("the kernel did not start the cell within 120 s")
    finally:
        ws.close()


def test_busy_kernel_with_no_client_is_not_culled(server, skein_client, kv):
    kernel = _request(server, "api/kernels", {"name": "python3", "path": ""})  # its cwd: the root dir
    _execute(server, kernel["id"], f"import pathlib, time\ntime.sleep({SLEEP})\n"
                                   "pathlib.Path('slept.txt').write_text('done')\n")
    disconnected = time.monotonic()
    # The watcher sees the busy kernel at its next look (every 5 s): a warning it published while the
    # server was quiet, before the cell started, is cleared then.
    wait_until(lambda: json.loads(kv.get(keys.NOTEBOOK_STATUS) or b"{}").get("busy_kernels") == 1
               and kv.get(keys.NOTEBOOK_WARNING) is None, 30, "the watcher to see the busy kernel", poll=0.5)
    # Past the idle timeout, its warning and two polls: the old watcher had stopped the server by then.
    while time.monotonic() < disconnected + IDLE_TIMEOUT + 10:
        assert _state(skein_client, server) == "RUNNING"
        assert kv.get(keys.NOTEBOOK_WARNING) is None, "a busy server was warned"
        time.sleep(2)
    assert _request(server, f"api/kernels/{kernel['id']}")["execution_state"] == "busy"
    status = json.loads(kv.get(keys.NOTEBOOK_STATUS))
    assert (status["busy_kernels"], status["connections"], status["idle_seconds"]) == (1, 0, 0)
    print(f"busy with no client for {time.monotonic() - disconnected:.0f}s (idle timeout {IDLE_TIMEOUT}s): "
          "still running")

    def written():
        try:
            return _request(server, "api/contents/slept.txt")
        except urllib.error.HTTPError:
            return None

    model = wait_until(written, SLEEP + 60, "the cell to finish and write its file", poll=1)
    assert model["content"] == "done"
    print(f"the cell finished {time.monotonic() - disconnected:.0f}s after the client left")


def test_warning_is_published_when_quiet_a_client_clears_it_and_notebook_info_shows_it(server, skein_client, kv):
    def warning():
        value = kv.get(keys.NOTEBOOK_WARNING)
        return json.loads(value) if value else None

    first = wait_until(warning, IDLE_TIMEOUT + 30, "the warning before the cull", poll=0.5)
    assert first["reason"] == "idle" and first["stops_at"] > time.time()
    assert first["message"].endswith(f"(idle timeout {IDLE_TIMEOUT}s); any use keeps it running")
    kernels = _request(server, "api/kernels") or [_request(server, "api/kernels", {"name": "python3"})]
    client = kernel_socket(server, kernels[0]["id"])  # a notebook tab opens again
    try:
        wait_until(lambda: warning() is None, 30, "the warning to be cleared by a connected client", poll=0.5)
        assert _state(skein_client, server) == "RUNNING"
    finally:
        client.close()
    second = wait_until(warning, IDLE_TIMEOUT + 30, "the warning once quiet again", poll=0.5)
    assert second["stops_at"] > first["stops_at"]  # the clock started again when the client left
    print(f"warnings announcing stops at {first['stops_at']:.0f} then {second['stops_at']:.0f}")
    line = re.compile(r"  Warning: stopping at \d\d:\d\d UTC: idle since \d\d:\d\d UTC "
                      rf"\(idle timeout {IDLE_TIMEOUT}s\); any use keeps it running")
    asked = time.monotonic()
    shown = CliRunner().invoke(cli, ["notebook", "info", server.app_id])
    print(f"notebook info took {time.monotonic() - asked:.1f}s:\n{shown.output}")
    assert shown.exit_code == 0, shown.output
    assert line.fullmatch(shown.output.splitlines()[1]), shown.output
    assert f"UTC: {second['message']}" in shown.output


def test_quiet_server_is_culled_after_its_warning_and_ends_succeeded(server, skein_client, kv, webhdfs):
    report = wait_for_final_state(skein_client, server.app_id, IDLE_TIMEOUT + 120)
    assert (str(report.state), str(report.final_status)) == ("FINISHED", "SUCCEEDED")
    # What the busy kernel wrote reached the workspace at the cull (the sync interval is an hour).
    from skein_jupyter.identity import hadoop_user
    from skein_jupyter.workspaces import workspace_path

    assert webhdfs.cat_file(f"{workspace_path(WORKSPACE, hadoop_user())}/slept.txt") == b"done"
    logs = application_logs(server.app_id, timeout=120)
    lines = [line.split("skein-jupyter runtime: ", 1)[1] for line in logs.splitlines()
             if "skein-jupyter runtime: " in line]
    warned = [i for i, line in enumerate(lines) if line.startswith("warning: stopping at ")]
    stopped = [i for i, line in enumerate(lines) if line.startswith("stopping the server: idle for ")]
    assert warned and len(stopped) == 1 and warned[-1] < stopped[0], "\n".join(lines)
    assert server.token not in logs
    print("\n".join(lines))
