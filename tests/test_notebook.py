"""Jupyter servers on the sandbox's YARN, for real: reach, kernels, frontends, culling, stop, secrecy."""
import json
import shutil
import ssl
import stat
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import skein
from click.testing import CliRunner

from conftest import kernel_socket, send_code, submitted_here, wait_until
from skein_jupyter.applications import application_logs, wait_for_final_state
from skein_jupyter.cli import cli
from skein_jupyter.config import load_recipe
from skein_jupyter.exceptions import ApplicationError
from skein_jupyter.notebook import start, stop

pytestmark = pytest.mark.yarn


def _recipe(env_url, **flags):
    """A server's recipe, on a workspace of its own (one live server per workspace)."""
    recipe, _ = load_recipe(kind="notebook", environ={}, flags={
        "environment": env_url, "resources.memory": "1 GiB", "notebook.workspace": f"t-{uuid.uuid4().hex[:10]}",
        **flags})
    return recipe


def _get(server, path, token=True):
    url = f"{server.protocol}://{server.host}:{server.port}{server.base_url}{path}"
    headers = {"Authorization": f"token {server.token}"} if token else {}
    context = ssl._create_unverified_context() if server.protocol == "https" else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30,
                                    context=context) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _post(server, path, body):
    url = f"{server.protocol}://{server.host}:{server.port}{server.base_url}{path}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"token {server.token}",
                                              "Content-Type": "application/json"})
    context = ssl._create_unverified_context() if server.protocol == "https" else None
    with urllib.request.urlopen(request, timeout=60, context=context) as response:
        return json.load(response)


@pytest.fixture(scope="module")
def lab(uploaded_venv, skein_client):
    """One JupyterLab server for the module; stopped at the end."""
    server = start(_recipe(uploaded_venv.url, **{"notebook.frontend": "lab"}), skein_client, timeout=600)
    yield server
    if str(skein_client.application_report(server.app_id).state) not in ("FINISHED", "FAILED", "KILLED"):
        skein_client.kill_application(server.app_id)


def test_api_status_needs_the_token(lab):
    status, body = _get(lab, "api/status")
    assert status == 200 and "started" in json.loads(body)
    assert _get(lab, "api/status", token=False)[0] == 403


def test_kernel_executes_code_over_the_websocket(lab):
    kernel = _post(lab, "api/kernels", {"name": "python3"})
    ws = kernel_socket(lab, kernel["id"])
    try:
        msg_id = send_code(ws, "1+1")
        deadline = time.monotonic() + 120
        result = None
        while result is None and time.monotonic() < deadline:
            msg = json.loads(ws.recv())
            if msg["msg_type"] == "execute_result" and msg["parent_header"].get("msg_id") == msg_id:
                result = msg["content"]["data"]["text/plain"]
        assert result == "2"
    finally:
        ws.close()


def test_the_kernel_comes_from_the_packed_environments_patched_kernelspec(lab):
    status, body = _get(lab, "api/kernelspecs")
    assert status == 200
    specs = json.loads(body)["kernelspecs"]
    assert {"python3", "analytics"} <= set(specs)
    assert specs["analytics"]["spec"]["argv"][0] == "python"


def test_jupyterlab_answers(lab):
    status, body = _get(lab, "lab")
    assert status == 200 and b"JupyterLab" in body


def test_skein_kv_get_works_as_in_skeins_docs(lab):
    proc = subprocess.run(["skein", "kv", "get", lab.app_id, "--key", "jupyter.notebook.info", "--wait"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data) == {"protocol", "host", "port", "base_url", "token"}
    assert data["token"] == lab.token and data["port"] == lab.port


def test_token_is_not_on_any_command_line(lab):
    offenders = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if lab.token.encode() in (entry / "cmdline").read_bytes():
                    offenders.append(entry.name)
            except OSError:
                continue
    assert offenders == []


def test_token_is_only_in_files_the_user_alone_can_read(lab, sandbox):
    app_dir = next((sandbox.config.data_dir / "nm-local").glob(f"usercache/*/appcache/{lab.app_id}"))
    holders = []
    for path in app_dir.rglob("*"):
        if path.is_file() and not path.is_symlink() and "filecache" not in path.parts:
            try:
                if lab.token.encode() in path.read_bytes():
                    holders.append(path)
            except OSError:
                continue
    assert holders, "jupyter_server keeps the token in its runtime files"
    for name in (".jupyter-runtime", ".jupyter-config", ".jupyter-data", ".ipython"):
        assert list(app_dir.glob(f"container_*/{name}")), f"{name} is not inside the container"
    for path in holders:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, f"{path} is readable by others"


def test_notebook_info_and_list_show_the_server(lab):
    runner = CliRunner()
    result = runner.invoke(cli, ["notebook", "info", lab.app_id, "--json", "--ssh-user", "alice",
                                 "--edge-host", "edge.example.com", "--local-port", "0"])
    assert result.exit_code == 2  # port 0 is not a port
    result = runner.invoke(cli, ["notebook", "info", lab.app_id, "--json", "--ssh-user", "alice",
                                 "--edge-host", "edge.example.com"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["token"] == lab.token and data["frontend"] == "lab"
    local = data["tunnel_command"].split()[3].split(":")[0]
    assert data["tunnel_command"] == f"ssh -N -L {local}:{lab.host}:{lab.port} alice@edge.example.com"
    assert data["tunnel_url"] == f"http://localhost:{local}/lab?token={lab.token}"
    listing = json.loads(runner.invoke(cli, ["notebook", "list", "--json"]).output)
    row = next(r for r in listing if r["app_id"] == lab.app_id)
    assert row["state"] == "RUNNING" and row["memory_mb"] >= 1024 and row["age_seconds"] >= 0


def test_local_port_in_use_is_refused(lab):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli, ["notebook", "info", lab.app_id, "--local-port", str(port)])
    assert result.exit_code == 2
    assert result.output.strip() == (f"Error: local port {port} is already in use on this machine; choose "
                                     "another with --local-port")


def test_notebook7_answers_then_stop_ends_succeeded(uploaded_venv, skein_client):
    runner = CliRunner()
    result = runner.invoke(cli, ["notebook", "start", "--env", uploaded_venv.url, "--notebook7",
                                 "--memory", "1GiB", "--workspace", f"t-{uuid.uuid4().hex[:10]}", "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    from skein_jupyter.notebook import ServerInfo

    server = ServerInfo(**{k: data[k] for k in ("app_id", "protocol", "host", "port", "base_url", "token",
                                                "frontend")})
    try:
        status, body = _get(server, "tree")
        assert status == 200 and b"Jupyter Notebook" in body
    finally:
        stopped = runner.invoke(cli, ["notebook", "stop", server.app_id])
    assert stopped.exit_code == 0, stopped.output
    report = skein_client.application_report(server.app_id)
    assert (str(report.state), str(report.final_status)) == ("FINISHED", "SUCCEEDED")
    again = runner.invoke(cli, ["notebook", "stop", server.app_id])
    assert again.exit_code == 2
    assert again.output.strip() == (f"Error: {server.app_id} has already ended (FINISHED, SUCCEEDED); "
                                    "nothing to stop")
    logs = application_logs(server.app_id, timeout=120)
    assert "skein-jupyter runtime: stopping the server: stop requested" in logs
    assert server.token not in logs
    assert "token=..." in logs  # jupyter_server names the token without showing it


def test_tls_server_culls_idle_kernels_then_shuts_itself_down_and_succeeds(uploaded_venv, skein_client):
    server = start(_recipe(uploaded_venv.url, **{"notebook.frontend": "server", "notebook.tls": True,
                                                 "notebook.kernel_idle_timeout": "3s",
                                                 "notebook.idle_timeout": "20s"}),
                   skein_client, timeout=600)
    assert server.protocol == "https"
    assert _get(server, "api/status")[0] == 200
    assert _get(server, "api/status", token=False)[0] == 403

    def kernel_ids():
        return {k["id"] for k in json.loads(_get(server, "api/kernels")[1])}

    kernel = _post(server, "api/kernels", {"name": "python3"})
    assert kernel["id"] in kernel_ids()
    wait_until(lambda: kernel["id"] not in kernel_ids(), 120, "the idle kernel to be culled")
    report = wait_for_final_state(skein_client, server.app_id, 180)
    assert (str(report.state), str(report.final_status)) == ("FINISHED", "SUCCEEDED")
    logs = application_logs(server.app_id, timeout=120)
    assert "stopping the server: idle for" in logs and server.token not in logs


def _pack_without_jupyter(test_venv, tmp_path, name):
    """The test environment without jupyter_server and the frontends (and their many static
    files, for a quicker localization), packed for runs."""
    from skein_jupyter.packing import pack

    env = tmp_path / name
    shutil.copytree(test_venv, env, symlinks=True)
    site = next(env.glob("lib/python3*/site-packages"))
    for pattern in ("jupyter_server*", "jupyterlab*", "notebook", "notebook-*"):
        for path in site.glob(pattern):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    for path in (env / "share" / "jupyter").glob("*"):
        if path.name != "kernels":
            shutil.rmtree(path)
    return pack(tmp_path / f"{name}.tar.gz", prefix=str(env), job="run").archive


def test_env_without_jupyter_server_is_refused_before_submitting(test_venv, tmp_path, skein_client):
    archive = _pack_without_jupyter(test_venv, tmp_path, "runonly")
    before = submitted_here()
    result = CliRunner().invoke(cli, ["notebook", "start", "--env", str(archive), "--memory", "1GiB"])
    assert result.exit_code == 2, result.output
    assert "lacks jupyter-server, jupyterlab for this notebook job" in result.output
    assert submitted_here() == before  # nothing was submitted


def test_server_that_cannot_start_fails_fast_and_leaves_no_app(test_venv, tmp_path, skein_client):
    """An hdfs:// archive without a metadata record cannot be checked before submitting:
    the runtime finds jupyter_server missing and the client stops the application."""
    from skein_jupyter.envstore import upload
    from skein_jupyter.hdfs import HadoopFS

    archive = _pack_without_jupyter(test_venv, tmp_path, "nojupyter")
    url = upload(archive, to=f"hdfs:///tmp/nojupyter-{uuid.uuid4().hex[:8]}").url
    HadoopFS().rm(url + ".json")
    started = time.monotonic()
    with pytest.raises(ApplicationError) as info_:
        start(_recipe(url, **{"notebook.frontend": "server"}), skein_client, timeout=600)
    assert "the environment lacks jupyter_server for the server frontend" in str(info_.value)
    assert info_.value.details.splitlines()[-1] == (
        "skein-jupyter runtime: error: the environment lacks jupyter_server for the server frontend; "
        "install jupyter-server in it and pack it again")
    app_id = str(info_.value).split("yarn logs -applicationId ")[1]
    assert str(skein_client.application_report(app_id).state) in ("FINISHED", "FAILED", "KILLED")
    assert time.monotonic() - started < 300


def test_info_on_a_starting_server_only_looks(uploaded_venv, skein_client):
    """`notebook info` typed while the server starts says so and exits 1; the server goes on starting."""
    from skein_jupyter.launch import submit
    from skein_jupyter.notebook import info

    app_id = submit(_recipe(uploaded_venv.url, **{"notebook.frontend": "server"}), skein_client).app_id
    try:
        early = CliRunner().invoke(cli, ["notebook", "info", app_id])
        assert early.exit_code == 1, early.output
        assert early.output.startswith(f"Error: the server in {app_id} is still starting (application ")
        assert len(early.output.strip().splitlines()) == 1
        assert str(skein_client.application_report(app_id).state) in ("SUBMITTED", "ACCEPTED", "RUNNING")
        server = info(skein_client, app_id, wait=300)  # the same server, untouched, comes up
        assert server.app_id == app_id
        later = CliRunner().invoke(cli, ["notebook", "info", app_id, "--json"])
        assert later.exit_code == 0, later.output
        assert json.loads(later.output)["port"] == server.port
        assert str(skein_client.application_report(app_id).state) == "RUNNING"
    finally:
        stop(skein_client, app_id)


def test_unknown_and_foreign_application_ids(skein_client, submit):
    runner = CliRunner()
    unknown = runner.invoke(cli, ["notebook", "info", "application_1_9999"])
    assert unknown.exit_code == 2
    assert unknown.output.strip() == ("Error: no application application_1_9999 on this cluster; see "
                                      "`skein-jupyter notebook list`")
    malformed = runner.invoke(cli, ["notebook", "stop", "not-an-app"])
    assert malformed.exit_code == 2
    app_id = submit(skein.ApplicationSpec(name="not-a-notebook", queue="default", services={
        "sleep": skein.Service(resources=skein.Resources(memory="64 MiB", vcores=1), script="sleep 120")},
        master=skein.Master(resources=skein.Resources(memory="256 MiB", vcores=1))))
    foreign = runner.invoke(cli, ["notebook", "stop", app_id])
    assert foreign.exit_code == 2
    assert foreign.output.strip() == (f"Error: {app_id} (not-a-notebook) is not a skein-jupyter notebook "
                                      "server; see `skein-jupyter notebook list`")


def test_the_tunnel_command_is_the_same_at_start_and_at_every_info():
    """With the server's own port taken here, start and later info calls still print one local port."""
    import socket as socket_module

    from skein_jupyter.notebook import ServerInfo, tunnel

    with socket_module.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = ServerInfo("application_1_0001", "http", "node1", taken.getsockname()[1], "/", "t0ken")
        commands = {tunnel(server, ssh_user="alice", edge_host="edge").command for _ in range(5)}
    assert len(commands) == 1, commands
    (command,) = commands
    assert f":node1:{server.port} alice@edge" in command and f"-L {server.port}:" not in command
