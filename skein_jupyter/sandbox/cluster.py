"""The sandbox as a whole: bring it up, report on it, bring it down."""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import getpass
import json
import os
import shlex
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exceptions import PortInUseError, SandboxError, UsageError
from ..progress import Progress
from . import hadoop_config, jars
from .config import SandboxConfig
from .daemons import DAEMONS, Process, check_ports, kill_strays
from .java import find_java

if TYPE_CHECKING:
    from .java import JavaRuntime

__all__ = ["Sandbox", "DaemonStatus", "UpResult"]

READY_TIMEOUT = 300
STOP_TIMEOUT = 30


@dataclasses.dataclass(frozen=True)
class DaemonStatus:
    name: str
    running: bool
    pid: int | None
    url: str
    stale_pid_file: bool = False

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class UpResult:
    """What ``up`` did: which daemons it started and how long the node took to be RUNNING."""

    started: tuple
    fetched_jars: bool
    formatted: bool
    seconds_to_node_running: float

    @property
    def already_running(self) -> bool:
        return not self.started


def _get_json(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def _log_tail(path, lines=200):
    """The most telling line of a daemon's log: its last error, else its last line."""
    try:
        text = Path(path).read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return "no log"
    for line in reversed(text):
        if " ERROR " in line or "Exception" in line or "Error:" in line:
            return line.strip()[:400]
    return text[-1].strip()[:400] if text else "empty log"


class Sandbox:
    """A real single-node Hadoop (HDFS NameNode + DataNode, YARN ResourceManager + NodeManager).

    Parameters
    ----------
    config : SandboxConfig, optional
        Defaults to :meth:`SandboxConfig.load`: the saved settings of the
        default sandbox directory.

    Examples
    --------
    .. code-block:: python

        sandbox = Sandbox()
        sandbox.up()
        os.environ.update(sandbox.env())   # skein.Client() now talks to it
    """

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config if config is not None else SandboxConfig.load()

    # ----- where things are

    def _pid_file(self, daemon):
        return self.config.run_dir / f"{daemon.name}.pid"

    def _log_file(self, daemon):
        return self.config.log_dir / f"{daemon.name}.log"

    def env(self, java: JavaRuntime | None = None) -> dict[str, str]:
        """Environment variables that point Hadoop clients and Skein at this sandbox."""
        if java is None:
            java = find_java(self.config.java_home)
        path = os.environ.get("PATH", "")
        bin_dir = str(self.config.bin_dir)
        if path.split(os.pathsep)[0] != bin_dir:
            path = bin_dir + os.pathsep + path if path else bin_dir
        return {
            "JAVA_HOME": str(java.home),
            "HADOOP_CONF_DIR": str(self.config.conf_dir),
            "HADOOP_HOME": str(self.config.root),
            "PATH": path,
        }

    def exports(self) -> str:
        """``export`` lines for a POSIX shell, to use with ``eval``."""
        env = self.env()
        env["PATH"] = f"{self.config.bin_dir}:$PATH"
        lines = []
        for key, value in env.items():
            quoted = shlex.quote(value) if key != "PATH" else f'{shlex.quote(str(self.config.bin_dir))}:"$PATH"'
            lines.append(f"export {key}={quoted}")
        return "\n".join(lines) + "\n"

    # ----- state

    def _process(self, daemon):
        return Process.read(self._pid_file(daemon))

    def status(self) -> list[DaemonStatus]:
        """Each daemon's state, as a list of :class:`DaemonStatus`."""
        result = []
        for daemon in DAEMONS:
            proc = self._process(daemon)
            running = bool(proc and proc.alive)
            result.append(DaemonStatus(daemon.name, running, proc.pid if running else None,
                                       self.config.web_url(daemon.web_port),
                                       stale_pid_file=bool(proc and not running)))
        return result

    @property
    def running(self) -> bool:
        return all(status.running for status in self.status())

    def nodes(self) -> list[dict]:
        """The ResourceManager's view of its NodeManagers: state and health report."""
        url = self.config.web_url("resourcemanager.http") + "/ws/v1/cluster/nodes"
        nodes = (_get_json(url).get("nodes") or {}).get("node") or []
        return [{"id": n.get("id"), "state": n.get("state"), "health": n.get("healthReport", "")}
                for n in nodes]

    @contextlib.contextmanager
    def _lock(self):
        self.config.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.config.run_dir / "lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    # ----- up

    def running_gpus(self) -> int | None:
        """The GPUs the running sandbox was started with; None when no daemon runs."""
        if not any(status.running for status in self.status()):
            return None
        return int(SandboxConfig.saved(self.config.root).get("gpus", 0))

    def up(self, progress: Progress | None = None, timeout: float = READY_TIMEOUT,
           restart: bool = False) -> UpResult:
        """Start whatever of the four daemons is not running and wait until the cluster is usable.

        Safe to call on a running sandbox (nothing is started). On failure,
        the daemons this call started are stopped again.

        Parameters
        ----------
        restart : bool
            When the running sandbox declares another number of GPUs than
            ``config.gpus`` (or another node memory or vcores), stop it and start it again with the new number
            (its applications are killed); without it, such a change is refused.

        Returns
        -------
        UpResult

        Raises
        ------
        UsageError
            When the sandbox runs with another number of GPUs (or node size) and ``restart`` is false.
        """
        progress = progress or Progress.quiet()
        running_gpus = self.running_gpus()
        node = (self.config.nodemanager_memory_mb, self.config.nodemanager_vcores)
        saved = SandboxConfig.saved(self.config.root)
        running_node = (saved.get("nodemanager_memory_mb", node[0]), saved.get("nodemanager_vcores", node[1]))
        if running_gpus is not None and running_gpus != self.config.gpus:
            if not restart:
                raise UsageError(
                    f"the sandbox in {self.config.root} is running with {running_gpus} GPU(s), not "
                    f"{self.config.gpus}; add --restart to restart it with {self.config.gpus} "
                    "(its applications are killed), or drop --gpus to keep it as it is")
            progress.step(f"restarting the sandbox: {running_gpus} -> {self.config.gpus} GPU(s)")
            self.down(progress)
            self._wait_for_ports_free(30)
        elif running_gpus is not None and running_node != node:
            # Only the library asks for another node size (the test session does); the CLI keeps the saved one.
            if not restart:
                raise UsageError(
                    f"the sandbox in {self.config.root} is running with a node of {running_node[0]} MiB and "
                    f"{running_node[1]} vcores, not {node[0]} MiB and {node[1]} vcores; restart it to change that")
            progress.step(f"restarting the sandbox: node of {running_node[0]} MiB, {running_node[1]} vcores -> "
                          f"{node[0]} MiB, {node[1]} vcores")
            self.down(progress)
            self._wait_for_ports_free(30)
        start = time.monotonic()
        with self._lock():
            missing = [d for d in DAEMONS if not (self._process(d) and self._process(d).alive)]
            if not missing:
                return UpResult((), False, False, 0.0)
            java = find_java(self.config.java_home)
            self._check_disk()
            check_ports((name, self.config.ports[name]) for d in missing for name in d.ports)
            fetched = jars.ensure_jars(self.config.jar_cache, self.config.hadoop_version,
                                       mirror=self.config.maven_mirror, progress=progress)
            self._write_files(java)
            formatted = self._format_if_needed(java, progress)
            started = []
            try:
                for daemon in missing:
                    progress.step(f"starting {daemon.name}")
                    self._start(daemon, java)
                    started.append(daemon)
                self._wait_ready(progress, start + timeout)
                self._make_hdfs_dirs()
            except BaseException:
                for daemon in reversed(started):
                    self._stop(daemon)
                raise
            elapsed = time.monotonic() - start
            progress.step(f"sandbox ready in {elapsed:.1f}s")
            return UpResult(tuple(d.name for d in started), fetched, formatted, elapsed)

    def _check_disk(self):
        probe = self.config.root
        while not probe.exists():
            probe = probe.parent
        free_mb = shutil.disk_usage(probe).free // 2**20
        if free_mb < self.config.min_free_disk_mb:
            raise SandboxError(
                f"only {free_mb} MB free on the disk of {self.config.root}; the sandbox needs at least "
                f"{self.config.min_free_disk_mb} MB or YARN marks its node UNHEALTHY: free some space "
                "or set SKEIN_JUPYTER_SANDBOX_DIR to a roomier disk")

    def _write_files(self, java):
        config = self.config
        for directory in (config.log_dir, config.run_dir, config.data_dir):
            directory.mkdir(parents=True, exist_ok=True)
        hadoop_config.write_conf(config, java)
        lib = config.lib_dir
        if lib.is_symlink() and Path(os.readlink(lib)) != config.jar_cache:
            lib.unlink()
        if not lib.exists():
            lib.symlink_to(config.jar_cache)
        config.save()

    def _daemon_env(self, java, daemon=None):
        env = dict(os.environ, **self.env(java))
        if daemon is not None:
            env["SANDBOX_HEAP_MB"] = str(daemon.heap_mb)
        return env

    def _format_if_needed(self, java, progress):
        data = self.config.data_dir
        if (data / "name" / "current" / "VERSION").is_file():
            return False
        progress.step("formatting HDFS (first start)")
        # A DataNode directory from an earlier format has another clusterID.
        shutil.rmtree(data / "data", ignore_errors=True)
        command = [str(self.config.bin_dir / "hdfs"), "namenode", "-format", "-force", "-nonInteractive"]
        with open(self.config.log_dir / "format.log", "wb") as log:
            proc = subprocess.run(command, env=self._daemon_env(java), stdout=log,
                                  stderr=subprocess.STDOUT, timeout=300)
        if proc.returncode != 0:
            raise SandboxError(f"formatting HDFS failed: {_log_tail(self.config.log_dir / 'format.log')}; "
                               f"full log: {self.config.log_dir / 'format.log'}")
        return True

    def _start(self, daemon, java):
        command = [str(self.config.bin_dir / daemon.tool), daemon.name]
        proc = Process.spawn(command, self._daemon_env(java, daemon), self._log_file(daemon))
        proc.write(self._pid_file(daemon))

    def _wait_ready(self, progress, deadline):
        """Poll the daemons' REST endpoints (cheaper than CLI JVMs) until HDFS and YARN serve."""
        checks = [("HDFS out of safe mode with a live DataNode", self._hdfs_ready),
                  ("NodeManager RUNNING", self._yarn_ready)]
        for what, check in checks:
            progress.step(f"waiting for {what}")
            while True:
                for daemon in DAEMONS:
                    proc = self._process(daemon)
                    if not (proc and proc.alive):
                        log = self._log_file(daemon)
                        raise SandboxError(f"{daemon.name} exited during start-up: {_log_tail(log)}; "
                                           f"full log: {log}")
                if check():
                    break
                if time.monotonic() > deadline:
                    raise SandboxError(f"timed out waiting for {what}; see the logs in {self.config.log_dir}")
                time.sleep(0.5)

    def _hdfs_ready(self):
        base = self.config.web_url("namenode.http") + "/jmx?qry=Hadoop:service=NameNode,name="
        try:
            info = _get_json(base + "NameNodeInfo")["beans"][0]
            state = _get_json(base + "FSNamesystemState")["beans"][0]
        except (OSError, ValueError, KeyError, IndexError):
            return False
        return info.get("Safemode") == "" and state.get("NumLiveDataNodes", 0) >= 1

    def _yarn_ready(self):
        try:
            nodes = self.nodes()
        except (OSError, ValueError):
            return False
        for node in nodes:
            if node["state"] == "UNHEALTHY":
                raise SandboxError(f"YARN marked the node UNHEALTHY: {node['health']}; free disk space "
                                   "under the sandbox directory, then run `skein-jupyter sandbox up` again")
        return any(node["state"] == "RUNNING" for node in nodes)

    def webhdfs(self, method: str, path: str, **params: Any) -> dict:
        """Call WebHDFS as the current user (the sandbox uses simple authentication)."""
        params.setdefault("user.name", getpass.getuser())
        url = (self.config.web_url("namenode.http") + "/webhdfs/v1" + urllib.parse.quote(path)
               + "?" + urllib.parse.urlencode(params))
        request = urllib.request.Request(url, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            raise SandboxError(f"WebHDFS {params.get('op')} {path} failed: HTTP {exc.code} "
                               f"{exc.read()[:300].decode(errors='replace')}") from None
        return json.loads(body) if body else {}

    def _make_hdfs_dirs(self):
        user = getpass.getuser()
        self.webhdfs("PUT", "/tmp", op="MKDIRS")
        self.webhdfs("PUT", "/tmp", op="SETPERMISSION", permission="1777")
        self.webhdfs("PUT", f"/user/{user}", op="MKDIRS")

    # ----- down

    def _wait_for_ports_free(self, timeout: float) -> None:
        """After a stop: the daemons' sockets close a moment after their processes are reported gone."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                check_ports(self.config.ports.items())
                return
            except PortInUseError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def _stop(self, daemon):
        proc = self._process(daemon)
        killed = bool(proc) and proc.stop(STOP_TIMEOUT)
        self._pid_file(daemon).unlink(missing_ok=True)
        return killed

    def down(self, progress: Progress | None = None) -> list[str]:
        """Stop every daemon (SIGTERM, wait, then SIGKILL) and any container left behind.

        Returns
        -------
        list of str
            Names of the daemons that were running.
        """
        progress = progress or Progress.quiet()
        with self._lock():
            stopped = []
            # NodeManager first, so that it stops its containers while it can.
            for daemon in reversed(DAEMONS):
                proc = self._process(daemon)
                if proc and proc.alive:
                    progress.step(f"stopping {daemon.name}")
                    stopped.append(daemon.name)
                self._stop(daemon)
            nm_local = self.config.data_dir / "nm-local"
            if nm_local.exists():
                strays = kill_strays(nm_local)
                if strays:
                    progress.step(f"killed {len(strays)} container process(es) left behind")
            return stopped
