"""skein-jupyter kernels from the clients' side: install/list/remove, the SSH forward, papermill and a server.

The fast tests check the options and the kernelspec files (in a private
Jupyter data directory) and forward ZeroMQ ports through a real throw-away
sshd (tests/throwaway_sshd.py). The ``yarn`` tests start kernels on the
sandbox from a local papermill (through the SSH forward) and from a local
jupyter_server's REST API, two applications in all.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time
import types
import urllib.request
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import kernel_socket, send_code, wait_until, write_notebook
from skein_jupyter.cli import cli
from skein_jupyter.exceptions import InfrastructureError, UsageError
from skein_jupyter.kernels import install_kernel, kernel_config, list_kernels, remove_kernel
from throwaway_sshd import ThrowawaySshd
from throwaway_sshd import _stop as stop_process


@pytest.fixture
def jupyter_dirs(tmp_path, monkeypatch):
    """A private Jupyter data directory (where --user installs) and nothing else on the kernel path."""
    data = tmp_path / "jupyter-data"
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(data))
    monkeypatch.setenv("JUPYTER_PATH", "")
    return data


def _files(root):
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*")) if Path(root).exists() else []


# ----------------------------------------------------------------- options and files (fast)

def test_kernel_config_normalizes_what_is_given_and_gives_it_back_unchanged(packed_small_venv):
    config = kernel_config(env="analytics", memory="4 GiB", vcores=2, idle_timeout="2h", lease="90s",
                           ssh_host="me@edge.example.com", queue="root.ml", node_label="gpu && fast", gpus=0)
    assert config == {"env": "analytics", "memory": 4096, "vcores": 2, "gpus": 0, "queue": "root.ml",
                      "node_label": "gpu && fast", "idle_timeout": 7200, "lease": 90,
                      "ssh_host": "me@edge.example.com", "name": "yarn-analytics"}
    assert kernel_config(**config) == config
    # Left out: the provisioner takes them from the user's configuration at start.
    assert kernel_config(env="hdfs:///apps/envs/ML_Team.tar.gz", memory=None) == {
        "env": "hdfs:///apps/envs/ML_Team.tar.gz", "name": "yarn-ml_team"}
    relative = os.path.relpath(packed_small_venv)
    assert kernel_config(env=relative)["env"] == os.path.abspath(packed_small_venv)


@pytest.mark.parametrize("options, message", [
    ({}, "env: missing"),
    ({"env": "two words"}, "not a valid environment name"),
    ({"env": "ftp://host/e.tar.gz"}, "unsupported scheme"),
    ({"env": "/no/such/env.tar.gz"}, "does not exist"),
    ({"env": "e", "memory": "lots"}, "memory: 'lots' is not a memory size"),
    ({"env": "e", "vcores": 0}, "vcores: 0 is not a whole number of 1 or more"),
    ({"env": "e", "gpus": -1}, "gpus"),
    ({"env": "e", "queue": "a queue"}, "not a YARN queue name"),
    ({"env": "e", "node_label": "a\nb"}, "not one line"),
    ({"env": "e", "idle_timeout": "soon"}, "idle_timeout: 'soon' is not a duration"),
    ({"env": "e", "lease": "5s"}, "lease: 5s is too short"),
    ({"env": "e", "ssh_host": "-oProxyCommand=touch /tmp/x"}, "not an SSH destination"),
    ({"env": "e", "name": "Has Space"}, "not a kernel name"),
    ({"env": "e", "colour": "blue"}, "unknown kernel option 'colour'"),
])
def test_kernel_config_refuses_bad_options_in_one_line(options, message):
    with pytest.raises(UsageError, match=re.escape(message)) as caught:
        kernel_config(**options)
    assert "\n" not in str(caught.value)


def test_install_list_remove_through_the_cli(jupyter_dirs, tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["kernel", "install", "--env", "analytics", "--memory", "3GiB", "--vcores", "2",
                                 "--idle-timeout", "30m", "--json", "--no-check"])
    assert result.exit_code == 0, result.output
    installed = json.loads(result.output)
    spec = json.loads((Path(installed["resource_dir"]) / "kernel.json").read_text())
    assert Path(installed["resource_dir"]) == jupyter_dirs / "kernels" / "yarn-analytics"
    assert spec == {"argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                    "display_name": "Python on YARN (analytics)", "language": "python",
                    "interrupt_mode": "message",
                    "metadata": {"kernel_provisioner": {"provisioner_name": "skein-jupyter", "config": {
                        "env": "analytics", "memory": 3072, "vcores": 2, "idle_timeout": 1800,
                        "name": "yarn-analytics"}}}}
    # What jupyter_client itself finds, with the provisioner this package registers.
    from jupyter_client.kernelspec import KernelSpecManager

    assert KernelSpecManager().get_kernel_spec("yarn-analytics").display_name == "Python on YARN (analytics)"

    # A second install of the name needs --replace; --prefix installs elsewhere.
    again = runner.invoke(cli, ["kernel", "install", "--env", "analytics", "--no-check"])
    assert again.exit_code == 2 and "--replace" in again.output
    replaced = runner.invoke(cli, ["kernel", "install", "--env", "analytics", "--replace", "--gpus", "1", "--no-check"])
    assert replaced.exit_code == 0, replaced.output
    prefix = tmp_path / "prefix"
    result = runner.invoke(cli, ["kernel", "install", "--env", "hdfs:///e/ml.tar.gz", "--name", "yarn-ml",
                                 "--display-name", "ML on YARN", "--ssh-host", "edge", "--prefix", str(prefix),
                                 "--no-check"])
    assert result.exit_code == 0, result.output
    assert (prefix / "share/jupyter/kernels/yarn-ml/kernel.json").is_file()
    assert f"add it to JUPYTER_PATH (export JUPYTER_PATH={prefix / 'share/jupyter'})" in result.output

    listed = runner.invoke(cli, ["kernel", "list"])
    assert listed.exit_code == 0
    lines = listed.output.splitlines()
    assert lines[0].split()[:3] == ["NAME", "ENV", "MEMORY"] and len(lines) == 2  # not on the kernel path: prefix
    assert lines[1].split()[:5] == ["yarn-analytics", "analytics", "-", "-", "1"]
    os.environ["JUPYTER_PATH"] = str(prefix / "share/jupyter")  # (monkeypatched: restored after the test)
    rows = json.loads(runner.invoke(cli, ["kernel", "list", "--json"]).output)
    assert [(row["name"], row["config"].get("ssh_host")) for row in rows] == [("yarn-analytics", None),
                                                                             ("yarn-ml", "edge")]

    # remove: ours only, and say which are ours when the name is wrong.
    (jupyter_dirs / "kernels" / "plain").mkdir()
    (jupyter_dirs / "kernels" / "plain" / "kernel.json").write_text(json.dumps(
        {"argv": ["python"], "display_name": "plain", "language": "python"}))
    refused = runner.invoke(cli, ["kernel", "remove", "plain"])
    assert refused.exit_code == 2 and "not a skein-jupyter kernel" in refused.output
    assert (jupyter_dirs / "kernels" / "plain" / "kernel.json").exists()
    missing = runner.invoke(cli, ["kernel", "remove", "nope"])
    assert missing.exit_code == 2 and "yarn-analytics, yarn-ml" in missing.output
    assert runner.invoke(cli, ["kernel", "remove", "yarn-ml"]).exit_code == 0
    assert [kernel.name for kernel in list_kernels()] == ["yarn-analytics"]
    assert remove_kernel("yarn-analytics").name == "yarn-analytics"
    assert list_kernels() == []


@pytest.mark.parametrize("args", [
    ["--env", "analytics", "--memory", "-1"],
    ["--env", "analytics", "--lease", "1s"],
    ["--env", "analytics", "--name", "UPPER case"],
    ["--env", "./missing.tar.gz"],
    ["--env", "analytics", "--sys-prefix", "--user"],
    ["--env", "analytics", "--display-name", " "],
    ["--env", "analytics", "--vcores", "two"],
])
def test_bad_install_exits_2_and_writes_nothing(jupyter_dirs, tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "sys-prefix"))
    before = _files(tmp_path)
    result = CliRunner().invoke(cli, ["kernel", "install", *args])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: ") and len(result.output.strip().splitlines()) == 1
    assert _files(tmp_path) == before


def test_install_without_cluster_tools_names_no_check(jupyter_dirs, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no hdfs, no yarn: off the cluster
    result = CliRunner().invoke(cli, ["kernel", "install", "--env", "analytics"])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: cannot ask the cluster") and "--no-check" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not jupyter_dirs.exists()


@pytest.mark.parametrize("args", [["run", "--dry-run"], ["schedule", "create", "k17", "--cron", "0 6 * * *"],
                                  ["notebook", "start"]])
def test_a_kernel_recipe_is_refused_by_run_schedule_and_notebook_start(tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "k.yaml").write_text("kind: kernel\nenvironment: hdfs:///envs/analytics.tar.gz\n")
    result = CliRunner().invoke(cli, [*args, "k.yaml"])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: ") and len(result.output.strip().splitlines()) == 1
    assert "kernel recipe" in result.output and "skein-jupyter kernel install --env ENV" in result.output


def test_sys_prefix_installs_into_this_environment_and_never_over_another_kernel(jupyter_dirs, tmp_path,
                                                                                 monkeypatch):
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "env"))
    result = CliRunner().invoke(cli, ["kernel", "install", "--env", "analytics", "--name", "python3",
                                      "--sys-prefix", "--no-check"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "env/share/jupyter/kernels/python3/kernel.json").is_file()
    plain = tmp_path / "env/share/jupyter/kernels/other"
    plain.mkdir()
    (plain / "kernel.json").write_text('{"argv": ["python"], "display_name": "other", "language": "python"}')
    with pytest.raises(UsageError, match="not a skein-jupyter kernel"):
        install_kernel({"env": "analytics", "name": "other"}, prefix=tmp_path / "env", replace=True,
                       check_cluster=False)
    assert json.loads((plain / "kernel.json").read_text())["display_name"] == "other"


# ----------------------------------------------------------------- the SSH forward (fast: a local sshd)

@pytest.fixture
def sshd(tmp_path):
    with ThrowawaySshd(tmp_path / "sshd") as server:
        yield server


def test_the_forward_carries_zeromq_to_every_port_and_ends_with_its_client(sshd, tmp_path):
    import zmq

    from skein_jupyter.kernel_tunnel import open_tunnel

    context = zmq.Context()
    servers = [context.socket(zmq.ROUTER) for _ in range(5)]
    try:
        ports = [server.bind_to_random_port("tcp://127.0.0.1") for server in servers]
        options = ["-F", str(sshd.client_config)]
        started = time.monotonic()
        with open_tunnel("127.0.0.1", "127.0.0.1", ports, ssh_options=options, timeout=60) as tunnel:
            print(f"forward up in {time.monotonic() - started:.2f}s")
            assert tunnel.alive() and len(set(tunnel.local_ports)) == 5
            assert not set(tunnel.local_ports) & set(ports)
            for server, local in zip(servers, tunnel.local_ports):
                client = context.socket(zmq.DEALER)
                client.connect(f"tcp://127.0.0.1:{local}")
                client.send(f"to {local}".encode())
                assert server.poll(10_000), f"nothing arrived through local port {local}"
                assert server.recv_multipart()[-1] == f"to {local}".encode()
                client.close(linger=0)
        assert not tunnel.alive()

        # A client that dies (SIGKILL) takes its forward with it: nothing listens on its ports after.
        script = ("import sys, time\nfrom skein_jupyter.kernel_tunnel import open_tunnel\n"
                  f"t = open_tunnel('127.0.0.1', '127.0.0.1', {ports!r}, ssh_options={options!r})\n"
                  "print(*t.local_ports, flush=True)\ntime.sleep(600)\n")
        client = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        try:
            local = [int(port) for port in client.stdout.readline().split()]
            assert len(local) == 5
        finally:
            client.send_signal(signal.SIGKILL)
            client.wait(timeout=30)
        wait_until(lambda: not _listening(local[0]), 30, "the orphaned forward to end")
    finally:
        for server in servers:
            server.close(linger=0)
        context.term()


def _listening(port):
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_a_forward_that_cannot_come_up_is_one_clear_error(sshd):
    from skein_jupyter.kernel_tunnel import open_tunnel

    with pytest.raises(InfrastructureError, match="did not answer within 3s"):
        open_tunnel("127.0.0.1", "127.0.0.1", [1], ssh_options=["-F", str(sshd.client_config)], timeout=3)
    # No key for this server: BatchMode refuses to prompt, ssh exits, its reason is the message.
    with pytest.raises(InfrastructureError, match="failed: .*(denied|verification)"):
        open_tunnel("127.0.0.1", "127.0.0.1", [1], ssh_options=["-F", "/dev/null", "-p", str(sshd.port)],
                    timeout=30)


# ----------------------------------------------------------------- real clients, kernels on the sandbox

def _app_of(container_id):
    """``application_<cluster>_<n>`` of ``container_[e<epoch>_]<cluster>_<n>_<attempt>_<n>``."""
    match = re.search(r"container_(?:e\d+_)?(\d+)_(\d+)_\d+_\d+", container_id)
    assert match, f"not a container id: {container_id!r}"
    return f"application_{match.group(1)}_{match.group(2)}"


def _clients_env(data, **more):
    return {**os.environ, "JUPYTER_DATA_DIR": str(data), "JUPYTER_PATH": "", "PYTHONUNBUFFERED": "1", **more}


@pytest.mark.yarn
@pytest.mark.parametrize("args, message", [
    (["--env", "nosuch-env-17"], "kernel option env: no environment named 'nosuch-env-17'"),
    (["--env", "hdfs:///nope/missing-17.tar.gz"], "kernel option env: hdfs:///nope/missing-17.tar.gz does not exist"),
])
def test_install_asks_the_cluster_whether_the_environment_exists(jupyter_dirs, tmp_path, args, message):
    result = CliRunner().invoke(cli, ["kernel", "install", *args])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"Error: {message}") and len(result.output.strip().splitlines()) == 1
    assert _files(tmp_path) == []


@pytest.mark.yarn
def test_install_refuses_a_queue_or_container_the_cluster_cannot_run(uploaded_venv, skein_client, jupyter_dirs,
                                                                     tmp_path):
    from skein_jupyter.kernels import check_against_cluster

    check_against_cluster(kernel_config(env=uploaded_venv.url, memory="1GiB"), skein_client)  # fits: no error
    with pytest.raises(UsageError, match="above the cluster maximum"):
        check_against_cluster(kernel_config(env=uploaded_venv.url, memory="999GiB"), skein_client)
    with pytest.raises(UsageError, match="'nosuchqueue' is not a queue of this cluster"):
        check_against_cluster(kernel_config(env=uploaded_venv.url, queue="nosuchqueue"), skein_client)
    # and the command says so in one line, writing nothing (its own Skein client, as a user's)
    result = CliRunner().invoke(cli, ["kernel", "install", "--env", uploaded_venv.url, "--memory", "999GiB"])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: resources.memory: ") and len(result.output.strip().splitlines()) == 1
    assert _files(tmp_path) == []


@pytest.mark.yarn
def test_papermill_runs_a_notebook_whose_cells_run_on_yarn_through_the_ssh_forward(packed_venv, uploaded_venv,
                                                                                    skein_client, sshd, tmp_path):
    import nbformat

    from skein_jupyter.applications import wait_for_final_state
    from skein_jupyter.kernel_tunnel import SSH_CONFIG_VARIABLE

    name = f"yarn-t-{uuid.uuid4().hex[:8]}"
    env = _clients_env(tmp_path / "jupyter-data", **{SSH_CONFIG_VARIABLE: str(sshd.client_config)})
    # The packed archive by its local path, as a user gives it (found on HDFS by its hash: uploaded_venv).
    subprocess.run([sys.executable, "-m", "skein_jupyter", "kernel", "install", "--env", str(packed_venv),
                    "--name", name, "--memory", "1GiB", "--ssh-host", "127.0.0.1", "--lease", "30s"],
                   env=env, check=True, timeout=120)
    notebook = write_notebook(tmp_path / "in.ipynb", ["import os, socket\nprint(os.environ['CONTAINER_ID'])",
                                                      "x = 21 * 2\nx"], kernel=name)
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "papermill", str(notebook), str(tmp_path / "out.ipynb"),
                          "-k", name, "--start-timeout", "600"], env=env, capture_output=True, text=True, timeout=900)
    print(f"papermill on a YARN kernel: {time.monotonic() - started:.1f}s")
    assert run.returncode == 0, run.stderr[-3000:]
    cells = nbformat.read(tmp_path / "out.ipynb", as_version=4).cells  # (texts as str, not lists of lines)
    printed = "".join(out.get("text", "") for out in cells[0].outputs).strip()
    assert printed.startswith("container_")
    assert cells[1].outputs[0]["data"]["text/plain"] == "42"
    assert "Permission denied" not in (sshd.log.read_text())
    # papermill shut the kernel down: its application ends by itself, SUCCEEDED.
    report = wait_for_final_state(skein_client, _app_of(printed), timeout=120)
    assert str(report.final_status) == "SUCCEEDED"


@pytest.mark.yarn
def test_a_local_jupyter_server_lists_the_kernel_and_starts_it_over_rest(uploaded_venv, skein_client, tmp_path):
    from skein_jupyter.applications import wait_for_final_state

    name = f"yarn-t-{uuid.uuid4().hex[:8]}"
    install_kernel({"env": uploaded_venv.url, "name": name, "memory": "1GiB"}, prefix=tmp_path / "prefix")
    env = _clients_env(tmp_path / "jupyter-data", JUPYTER_PATH=str(tmp_path / "prefix/share/jupyter"))
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = types.SimpleNamespace(host="127.0.0.1", port=port, base_url="/", token=uuid.uuid4().hex)
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "jupyter_server", "--no-browser", "--ServerApp.ip=127.0.0.1",
                                 f"--ServerApp.port={port}", "--ServerApp.port_retries=0", "--allow-root",
                                 f"--ServerApp.root_dir={tmp_path}", f"--IdentityProvider.token={server.token}"],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        def call(method, path, body=None, timeout=30):
            request = urllib.request.Request(f"http://127.0.0.1:{port}/{path}", method=method,
                                             data=None if body is None else json.dumps(body).encode(),
                                             headers={"Authorization": f"token {server.token}"})
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read()

        def up():
            try:
                return call("GET", "api/status")[0] == 200
            except OSError:
                assert proc.poll() is None, log.read_text()[-3000:]
                return False

        wait_until(up, 120, "the local jupyter_server")
        specs = json.loads(call("GET", "api/kernelspecs")[1])["kernelspecs"]
        assert specs[name]["spec"]["display_name"] == "Python on YARN (" + uploaded_venv.url.rsplit("/", 1)[-1][:-7] + ")"
        started = time.monotonic()
        status, body = call("POST", "api/kernels", {"name": name}, timeout=900)
        print(f"POST /api/kernels answered in {time.monotonic() - started:.1f}s")
        kernel_id = json.loads(body)["id"]
        ws = kernel_socket(server, kernel_id)
        try:
            msg_id = send_code(ws, "import os\nprint(os.environ['CONTAINER_ID'])")
            printed, replied, idle = "", False, False
            deadline = time.monotonic() + 300
            # The reply (shell) may overtake the output (iopub): the output is complete at iopub's idle.
            while not (replied and idle) and time.monotonic() < deadline:
                msg = json.loads(ws.recv())
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                if msg["msg_type"] == "stream":
                    printed += msg["content"]["text"]
                replied = replied or msg["msg_type"] == "execute_reply"
                idle = idle or (msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle")
        finally:
            ws.close()
        assert replied and printed.strip().startswith("container_"), printed
        assert call("DELETE", f"api/kernels/{kernel_id}", timeout=120)[0] == 204
        report = wait_for_final_state(skein_client, _app_of(printed.strip()), timeout=120)
        assert str(report.final_status) == "SUCCEEDED"
    finally:
        stop_process(proc)
        print(f"server log:\n{log.read_text()[-3000:]}")
