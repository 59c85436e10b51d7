"""Workspaces on the sandbox's HDFS, for real: restore before the first answer, saves within seconds,
nothing lost at stop, cull, lifetime, hard kill or SIGKILL, one live server per workspace."""
import base64
import json
import os
import signal
import statistics
import time
import urllib.request
import uuid

import pytest
from click.testing import CliRunner

from conftest import kernel_socket, processes_under, send_code, submitted_here, wait_until
from skein_jupyter.applications import wait_for_final_state
from skein_jupyter.cli import cli
from skein_jupyter.config import load_recipe
from skein_jupyter.exceptions import UsageError
from skein_jupyter.identity import hadoop_user
from skein_jupyter.notebook import start, stop
from skein_jupyter.workspaces import workspace_path

pytestmark = pytest.mark.yarn


def _name():
    return f"ws-{uuid.uuid4().hex[:10]}"


def _recipe(env_url, workspace, **flags):
    recipe, _ = load_recipe(kind="notebook", environ={}, flags={
        "environment": env_url, "resources.memory": "1 GiB", "notebook.workspace": workspace,
        "notebook.frontend": "server", **flags})
    return recipe


@pytest.fixture(scope="module")
def hdfs(webhdfs):
    return webhdfs


def _call(server, method, path, body=None):
    url = f"{server.protocol}://{server.host}:{server.port}{server.base_url}{path}"
    request = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None,
                                     method=method, headers={"Authorization": f"token {server.token}",
                                                             "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        data = response.read()
        return json.loads(data) if data else None


def _save(server, path, text):
    return _call(server, "PUT", f"api/contents/{path}", {"type": "file", "format": "text", "content": text})


def _execute(server, code):
    """Run ``code`` in a new kernel of ``server`` and wait for it to finish; the kernel is shut down."""
    kernel = _call(server, "POST", "api/kernels", {"name": "python3", "path": ""})  # cwd: the root, as a notebook's
    ws = kernel_socket(server, kernel["id"])
    try:
        msg_id = send_code(ws, code)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            msg = json.loads(ws.recv())
            if msg["msg_type"] == "execute_reply" and msg["parent_header"].get("msg_id") == msg_id:
                assert msg["content"]["status"] == "ok", msg["content"]
                return
        pytest.fail(f"no execute_reply within 120s for {code!r}")
    finally:
        ws.close()
        _call(server, "DELETE", f"api/kernels/{kernel['id']}")


def _hdfs_text(hdfs, path):
    try:
        return hdfs.cat_file(path).decode()
    except FileNotFoundError:
        return None


def _ended(skein_client, app_id, timeout=120):
    return wait_for_final_state(skein_client, app_id, timeout)


@pytest.fixture(scope="module")
def seeded(hdfs):
    """A workspace on HDFS with files in it before any server: 20 files and a subdirectory."""
    name = _name()
    path = workspace_path(name, hadoop_user())
    hdfs.mkdir(f"{path}/data")
    for i in range(20):
        with hdfs.open(f"{path}/data/part-{i:02}.csv", "wb") as f:
            f.write(f"row,{i}\n".encode() * 100)
    with hdfs.open(f"{path}/.ipynb_checkpoints/old-checkpoint.ipynb", "wb") as f:
        f.write(b"{}")
    return name, path


@pytest.fixture(scope="module")
def server(seeded, uploaded_venv, skein_client):
    name, _ = seeded
    server = start(_recipe(uploaded_venv.url, name, **{"notebook.sync_interval": "3s"}), skein_client, timeout=600)
    yield server
    if str(skein_client.application_report(server.app_id).state) not in ("FINISHED", "FAILED", "KILLED"):
        skein_client.kill_application(server.app_id)


def test_the_workspace_is_restored_before_the_server_first_answers(server, seeded, hdfs):
    listing = _call(server, "GET", "api/contents/data")
    names = sorted(item["name"] for item in listing["content"])
    assert names == [f"part-{i:02}.csv" for i in range(20)]
    assert _call(server, "GET", "api/contents/data/part-07.csv")["content"] == "row,7\n" * 100
    root = [item["name"] for item in _call(server, "GET", "api/contents")["content"]]
    assert ".ipynb_checkpoints" not in root  # excluded by default, never restored
    assert hdfs.info(seeded[1])["permission"] == "700"


def test_saves_reach_hdfs_within_seconds(server, seeded, hdfs):
    _, path = seeded
    latencies = []
    for i in range(5):
        text = f"saved {i} {uuid.uuid4().hex}\n"
        began = time.monotonic()
        _save(server, f"notes-{i}.txt", text)
        wait_until(lambda: _hdfs_text(hdfs, f"{path}/notes-{i}.txt") == text, 30, f"save {i} on HDFS", poll=0.05)
        latencies.append(time.monotonic() - began)
    print(f"\nsave -> on HDFS: median {statistics.median(latencies):.2f}s, max {max(latencies):.2f}s "
          f"(5 saves through the contents API)")
    # A rename and a delete through Jupyter reach HDFS as well.
    _call(server, "PATCH", "api/contents/notes-0.txt", {"path": "renamed.txt"})
    _call(server, "DELETE", "api/contents/notes-1.txt")
    wait_until(lambda: _hdfs_text(hdfs, f"{path}/renamed.txt") is not None
               and not hdfs.exists(f"{path}/notes-0.txt") and not hdfs.exists(f"{path}/notes-1.txt"),
               30, "rename and delete on HDFS")


def test_files_written_by_kernels_reach_hdfs_at_the_sync_interval(server, seeded, hdfs):
    _, path = seeded
    _execute(server, "import os\nos.makedirs('out', exist_ok=True)\n"
                     "open('out/result.txt', 'w').write('from the kernel')\n"
                     "os.makedirs('__pycache__', exist_ok=True)\nopen('__pycache__/x.pyc', 'w').write('cache')")
    wait_until(lambda: _hdfs_text(hdfs, f"{path}/out/result.txt") == "from the kernel", 60,
               "the kernel's file on HDFS")
    assert not hdfs.exists(f"{path}/__pycache__")


def test_a_second_server_on_the_workspace_is_refused_naming_the_first(server, seeded, uploaded_venv,
                                                                      skein_client):
    before = submitted_here()
    with pytest.raises(UsageError) as info:
        start(_recipe(uploaded_venv.url, seeded[0]), skein_client, timeout=600)
    assert server.app_id in str(info.value) and seeded[1] in str(info.value)
    assert submitted_here() == before  # nothing submitted
    result = CliRunner().invoke(cli, ["notebook", "list", "--json"])
    assert result.exit_code == 0, result.output
    row = next(r for r in json.loads(result.output) if r["app_id"] == server.app_id)
    assert row["workspace"] == seeded[1]


def test_stop_then_a_new_server_resumes_the_workspace(server, seeded, uploaded_venv, skein_client, hdfs):
    name, path = seeded
    _execute(server, "open('late.txt', 'w').write('written just before the stop')")
    report = stop(skein_client, server.app_id)  # the final sync sends late.txt (the interval may not have)
    assert str(report.final_status) == "SUCCEEDED"
    assert _hdfs_text(hdfs, f"{path}/late.txt") == "written just before the stop"
    assert not hdfs.exists(f"{path}/.skein-jupyter/lock")
    again = start(_recipe(uploaded_venv.url, name), skein_client, timeout=600)
    try:
        assert _call(again, "GET", "api/contents/late.txt")["content"] == "written just before the stop"
        assert _call(again, "GET", "api/contents/renamed.txt")["type"] == "file"
        assert _call(again, "GET", "api/contents/out/result.txt")["content"] == "from the kernel"
        result = CliRunner().invoke(cli, ["workspace", "list", "--json"])
        assert result.exit_code == 0, result.output
        row = next(r for r in json.loads(result.output) if r["path"] == path)
        assert row["server"] == again.app_id and row["bytes"] > 20 * 600 and row["last_used"]
    finally:
        stop(skein_client, again.app_id)


def test_saves_survive_a_hard_kill_and_a_sigkill_of_the_container(uploaded_venv, skein_client, hdfs, sandbox):
    name = _name()
    path = workspace_path(name, hadoop_user())
    first = start(_recipe(uploaded_venv.url, name, **{"notebook.sync_interval": "1h"}), skein_client, timeout=600)
    try:
        _save(first, "before-kill.txt", "saved before yarn application -kill")
        wait_until(lambda: hdfs.exists(f"{path}/before-kill.txt"), 30, "the save on HDFS")
    finally:
        skein_client.kill_application(first.app_id)  # what `yarn application -kill` does
    assert str(_ended(skein_client, first.app_id).state) == "KILLED"

    second = start(_recipe(uploaded_venv.url, name, **{"notebook.sync_interval": "1h"}), skein_client, timeout=600)
    try:
        assert _call(second, "GET", "api/contents/before-kill.txt")["content"] == "saved before yarn application -kill"
        _save(second, "before-sigkill.txt", "saved before SIGKILL")
        wait_until(lambda: hdfs.exists(f"{path}/before-sigkill.txt"), 30, "the save on HDFS")
        app_dir = next((sandbox.config.data_dir / "nm-local").glob(f"usercache/*/appcache/{second.app_id}"))
        runtime = [pid for pid in processes_under(app_dir) if b"skein_jupyter_runtime" in
                   open(f"/proc/{pid}/cmdline", "rb").read()]
        assert runtime, "no runtime process in the container"
        for pid in runtime:
            os.kill(pid, signal.SIGKILL)
        _ended(skein_client, second.app_id, 180)
    finally:
        if str(skein_client.application_report(second.app_id).state) not in ("FINISHED", "FAILED", "KILLED"):
            skein_client.kill_application(second.app_id)

    third = start(_recipe(uploaded_venv.url, name), skein_client, timeout=600)
    try:
        assert _call(third, "GET", "api/contents/before-sigkill.txt")["content"] == "saved before SIGKILL"
        assert _call(third, "GET", "api/contents/before-kill.txt")["type"] == "file"
    finally:
        stop(skein_client, third.app_id)


@pytest.mark.parametrize("how", ["max_lifetime"])  # culled by the idle timeout: tests/test_culling.py
def test_a_culled_or_expired_server_keeps_what_its_kernels_wrote(how, uploaded_venv, skein_client, hdfs):
    name = _name()
    path = workspace_path(name, hadoop_user())
    server = start(_recipe(uploaded_venv.url, name, **{"notebook.sync_interval": "1h", f"notebook.{how}": "60s"}),
                   skein_client, timeout=600)
    try:
        payload = base64.b64encode(os.urandom(3000)).decode()
        _execute(server, f"open('kept.txt', 'w').write({payload!r})")  # only the final sync can send it
        report = _ended(skein_client, server.app_id, 240)
    finally:
        if str(skein_client.application_report(server.app_id).state) not in ("FINISHED", "FAILED", "KILLED"):
            skein_client.kill_application(server.app_id)
    assert (str(report.state), str(report.final_status)) == ("FINISHED", "SUCCEEDED")
    assert _hdfs_text(hdfs, f"{path}/kept.txt") == payload
    assert not hdfs.exists(f"{path}/.skein-jupyter/lock")
    assert json.loads(hdfs.cat_file(f"{path}/.skein-jupyter/last-used.json"))["app_id"] == server.app_id
