"""Start, find and stop the sandbox's daemon processes, one pid file each."""
from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from ..exceptions import PortInUseError

__all__ = ["Daemon", "DAEMONS", "Process", "check_ports", "kill_strays"]


@dataclasses.dataclass(frozen=True)
class Daemon:
    """One Hadoop daemon: which launcher and subcommand start it, what it listens on."""

    name: str
    tool: str
    main_class: str
    ports: tuple
    web_port: str
    heap_mb: int


DAEMONS = (
    Daemon("namenode", "hdfs", "org.apache.hadoop.hdfs.server.namenode.NameNode",
           ("namenode", "namenode.http"), "namenode.http", 384),
    Daemon("datanode", "hdfs", "org.apache.hadoop.hdfs.server.datanode.DataNode",
           ("datanode", "datanode.http", "datanode.ipc"), "datanode.http", 256),
    Daemon("resourcemanager", "yarn", "org.apache.hadoop.yarn.server.resourcemanager.ResourceManager",
           ("resourcemanager", "resourcemanager.scheduler", "resourcemanager.tracker",
            "resourcemanager.admin", "resourcemanager.http"), "resourcemanager.http", 512),
    Daemon("nodemanager", "yarn", "org.apache.hadoop.yarn.server.nodemanager.NodeManager",
           ("nodemanager", "nodemanager.localizer", "nodemanager.http"), "nodemanager.http", 384),
)


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks, or None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


@dataclasses.dataclass(frozen=True)
class Process:
    """A started daemon as recorded in its pid file: pid plus start time.

    The start time tells a live daemon from an unrelated process that got
    the same pid after the sandbox was killed (a stale pid file).
    """

    pid: int
    start_time: int

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> Process | None:
        try:
            pid, start = Path(path).read_text().split()
            return cls(int(pid), int(start))
        except (OSError, ValueError):
            return None

    def write(self, path: str | os.PathLike[str]) -> None:
        Path(path).write_text(f"{self.pid} {self.start_time}\n")

    @property
    def alive(self) -> bool:
        return _start_time(self.pid) == self.start_time

    @classmethod
    def spawn(cls, command: Sequence[str], env: Mapping[str, str] | None,
              log_path: str | os.PathLike[str]) -> Process:
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        return cls(proc.pid, _start_time(proc.pid) or 0)

    def stop(self, timeout: float) -> bool:
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL. True if it had to be killed."""
        if not self.alive:
            return False
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                return False
            time.sleep(0.2)
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _wait_gone([self.pid], timeout)
        return True


def _wait_gone(pids: Iterable[int], timeout: float) -> None:
    """Wait until none of ``pids`` runs any more (zombies count as gone)."""
    deadline = time.monotonic() + timeout
    while any(_start_time(pid) is not None for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)


def check_ports(ports: Iterable[tuple[str, int]]) -> None:
    """Raise :class:`PortInUseError` for the first ``(name, port)`` something listens on."""
    for name, port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            # Same as the daemons: a port in TIME_WAIT is free, a listener is not.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                raise PortInUseError(
                    f"port {port} ({name}) is already in use by another process; stop it, or give "
                    f"the sandbox another port: skein-jupyter sandbox up --port {name}=PORT") from None


def kill_strays(directory: str | os.PathLike[str]) -> list[int]:
    """Kill processes whose working directory is under ``directory``; return their pids.

    YARN containers run in the NodeManager's local dirs. If the NodeManager
    was killed rather than stopped, they live on; this finds them.
    """
    directory = str(Path(directory).resolve())
    killed = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd == directory or cwd.startswith(directory + os.sep):
            try:
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
            except ProcessLookupError:
                pass
    _wait_gone(killed, 10)
    return killed
