"""The sandbox cluster, for real: lifecycle, shell environment, and the faults it must handle."""
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from conftest import free_ports, processes_under, wait_until
from skein_jupyter.cli import cli
from skein_jupyter.exceptions import SandboxError
from skein_jupyter.sandbox import Sandbox, SandboxConfig

pytestmark = pytest.mark.yarn


def _run(args, env=None):
    return CliRunner().invoke(cli, args, env=env, catch_exceptions=False)


def _error_line(result):
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


# ----- the session's sandbox

def test_up_on_a_running_sandbox_says_so(sandbox):
    result = _run(["sandbox", "up", "--dir", str(sandbox.config.root)])
    assert result.exit_code == 0
    assert result.output.strip() == f"Sandbox already running in {sandbox.config.root}"


def test_status_shows_every_daemon_up_and_the_node_running(sandbox):
    result = _run(["sandbox", "status", "--dir", str(sandbox.config.root), "--json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert [(d["name"], d["running"]) for d in status["daemons"]] == [
        ("namenode", True), ("datanode", True), ("resourcemanager", True), ("nodemanager", True)]
    assert [n["state"] for n in status["nodes"]] == ["RUNNING"]


def test_env_exports_make_the_hadoop_tools_and_skein_work(sandbox, tmp_path):
    """After eval "$(skein-jupyter sandbox env)", a bare shell reaches the sandbox."""
    script = textwrap.dedent("""\
        set -e
        eval "$(skein-jupyter sandbox env --dir "$BOX")"
        yarn classpath --glob | tr ':' '\\n' | grep -c 'hadoop-yarn-client-.*\\.jar$'
        hdfs dfs -ls /
        yarn application -list -appStates ALL 2>/dev/null | head -1
        skein application ls -a >/dev/null && echo skein-ok
        """)
    env = {"PATH": os.path.dirname(sys.executable) + ":/usr/bin:/bin", "HOME": os.environ["HOME"],
           "BOX": str(sandbox.config.root)}
    proc = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "1"
    assert any(line.endswith(" /tmp") and line.startswith("drwxrwxrwt") for line in lines)
    assert any(line.endswith(" /user") for line in lines)
    assert any("Total number of applications" in line for line in lines)
    assert lines[-1] == "skein-ok"


def test_port_in_use_names_the_port_and_starts_nothing(sandbox, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        root = tmp_path / "box"
        env = {"SKEIN_JUPYTER_SANDBOX_PORTS": free_ports()}
        result = _run(["sandbox", "up", "--dir", str(root), "--port", f"namenode={port}"], env=env)
    assert result.exit_code == 1
    assert _error_line(result) == (
        f"Error: port {port} (namenode) is already in use by another process; stop it, or give the "
        f"sandbox another port: skein-jupyter sandbox up --port namenode=PORT")
    assert not list(root.glob("run/*.pid"))
    assert processes_under(root) == []


def test_down_when_nothing_runs_says_so(tmp_path):
    result = _run(["sandbox", "down", "--dir", str(tmp_path / "box")])
    assert result.exit_code == 0
    assert result.output.strip() == "Sandbox was not running; nothing to stop"


def test_stale_pid_file_is_reported_and_never_kills_another_process(tmp_path):
    """A pid file left by a killed sandbox may name a pid now used by something else."""
    root = tmp_path / "box"
    (root / "run").mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    (root / "run" / "namenode.pid").write_text(f"{dead.pid} 12345\n")
    # This very test process, with another start time: a reused pid.
    (root / "run" / "resourcemanager.pid").write_text(f"{os.getpid()} 1\n")
    status = _run(["sandbox", "status", "--dir", str(root)])
    assert status.exit_code == 1
    assert "namenode         down (stale pid file)" in status.output
    assert "resourcemanager  down (stale pid file)" in status.output
    down = _run(["sandbox", "down", "--dir", str(root)])
    assert down.exit_code == 0
    assert "nothing to stop" in down.output
    assert not list((root / "run").glob("*.pid"))


def test_nearly_full_disk_is_refused_before_starting(tmp_path, monkeypatch):
    monkeypatch.setenv("SKEIN_JUPYTER_SANDBOX_PORTS", free_ports())
    box = Sandbox(SandboxConfig.load(tmp_path / "box", min_free_disk_mb=2**40))
    with pytest.raises(SandboxError, match=r"only \d+ MB free on the disk of .* or YARN marks its node "
                                           r"UNHEALTHY") as info:
        box.up()
    assert info.value.exit_code == 1
    assert processes_under(tmp_path / "box") == []


def test_unreachable_maven_leaves_nothing_half_written(tmp_path):
    cache = tmp_path / "cache"
    env = {"SKEIN_JUPYTER_SANDBOX_PORTS": free_ports(), "SKEIN_JUPYTER_CACHE_DIR": str(cache),
           "SKEIN_JUPYTER_MAVEN_MIRROR": "http://127.0.0.1:1/maven2",
           "MAVEN_OPTS": f"-Dmaven.repo.local={tmp_path / 'm2'}"}
    result = _run(["sandbox", "up", "--dir", str(tmp_path / "box")], env=env)
    assert result.exit_code == 1
    line = _error_line(result)
    assert line.startswith("Error: could not fetch Hadoop 3.5.0 jars from http://127.0.0.1:1/maven2: ")
    assert line.endswith("check the network, or set SKEIN_JUPYTER_MAVEN_MIRROR to a Maven repository "
                         "you can reach")
    assert list(cache.iterdir()) == []


def test_missing_java_is_a_clear_error(tmp_path):
    env = {"SKEIN_JUPYTER_SANDBOX_PORTS": free_ports(), "JAVA_HOME": str(tmp_path / "no-jdk")}
    result = _run(["sandbox", "up", "--dir", str(tmp_path / "box")], env=env)
    assert result.exit_code == 1
    assert _error_line(result) == (f"Error: JAVA_HOME={tmp_path / 'no-jdk'} has no bin/java; install "
                                   "OpenJDK 17 (e.g. `apt-get install openjdk-17-jdk-headless`) and set "
                                   "JAVA_HOME to it")


# ----- a second, throw-away sandbox: its whole life, and a killed NodeManager

SLEEP_SPEC = """\
name: sleeper
queue: default
services:
  sleeper:
    resources: {memory: 64, vcores: 1}
    script: sleep 600
"""


def test_second_sandbox_lifecycle_leaves_no_orphans_after_a_killed_nodemanager(sandbox, tmp_path):
    root = tmp_path / "box2"
    ports = dict(item.split("=") for item in free_ports().split(","))
    box = Sandbox(SandboxConfig.load(root, ports={k: int(v) for k, v in ports.items()},
                                     nodemanager_memory_mb=2048, nodemanager_vcores=2))
    try:
        first = box.up()
        assert set(first.started) == {"namenode", "datanode", "resourcemanager", "nodemanager"}
        assert box.up().already_running

        # Its own Skein config: the session's global driver talks to the main sandbox.
        env = dict(os.environ, **box.env(), SKEIN_CONFIG=str(tmp_path / "skein"))
        (tmp_path / "spec.yaml").write_text(SLEEP_SPEC)
        submit = subprocess.run(["skein", "application", "submit", str(tmp_path / "spec.yaml")],
                                env=env, capture_output=True, text=True, timeout=300)
        assert submit.returncode == 0, submit.stderr
        nm_local = root / "data" / "nm-local"
        # The AM and the sleep container both run with their cwd in the NodeManager's dirs.
        wait_until(lambda: len(processes_under(nm_local)) >= 2, 180, "the sleep container to run")

        nodemanager = next(s for s in box.status() if s.name == "nodemanager")
        os.kill(nodemanager.pid, signal.SIGKILL)
        wait_until(lambda: not next(s for s in box.status() if s.name == "nodemanager").running, 30,
                   "the NodeManager to die")
        status = {s.name: s for s in box.status()}
        assert status["nodemanager"].stale_pid_file
        assert processes_under(nm_local), "containers should outlive a SIGKILLed NodeManager"

        stopped = box.down()
        assert stopped == ["resourcemanager", "datanode", "namenode"]
    finally:
        box.down()
    assert processes_under(root) == []
    assert not list((root / "run").glob("*.pid"))
