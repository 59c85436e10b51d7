"""SSH local forwarding of a YARN kernel's ports, for a client outside the cluster's network.

With ``ssh_host`` in a kernel's config, the provisioner forwards the five
ports the container published (shell, iopub, stdin, control, heartbeat)
from 127.0.0.1 on the client's machine through ``ssh -N -L`` to the
container's host, and hands jupyter_client the local ports instead.

The forward is one plain ``ssh`` process (no ControlMaster: nothing shared
with the user's other sessions, and it ends with the kernel), in BatchMode
(a key or agent, never a password prompt nobody could answer). It runs
under a small watcher (``python -m skein_jupyter.kernel_tunnel``) that
holds the read end of a pipe from the client: when the client closes the
tunnel, exits or is killed (SIGKILL included), the pipe reaches end of file
and the watcher ends ssh, so no forward outlives its client.
:func:`open_tunnel` returns once every port answers through the forward:
a ZeroMQ peer sends its greeting at once, so the first byte read through a
local port proves that ssh listens, the SSH session is up and the kernel is
reachable from ``ssh_host``.

``SKEIN_JUPYTER_SSH_CONFIG`` names an ``ssh_config`` file to use instead of
``~/.ssh/config`` (``ssh -F``), where ports, users and keys of the host
belong.
"""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import IO

from .exceptions import InfrastructureError

__all__ = ["KernelTunnel", "open_tunnel", "ssh_command", "SSH_CONFIG_VARIABLE"]

#: An ssh_config file for the kernel's ``ssh`` (``ssh -F``); ``~/.ssh/config`` when unset.
SSH_CONFIG_VARIABLE = "SKEIN_JUPYTER_SSH_CONFIG"
LOCAL_HOST = "127.0.0.1"
#: Tries with fresh local ports when another process took one between choosing and ssh's bind.
_BIND_TRIES = 3


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind((LOCAL_HOST, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def ssh_command(ssh_host: str, remote_host: str, remote_ports: Sequence[int], local_ports: Sequence[int],
                ssh_options: Sequence[str] = (), connect_timeout: float = 30.0) -> list[str]:
    """The ``ssh -N -L ...`` argument list forwarding ``local_ports`` to ``remote_host``'s ``remote_ports``."""
    target = f"[{remote_host}]" if ":" in remote_host else remote_host
    config = os.environ.get(SSH_CONFIG_VARIABLE)
    argv = ["ssh", "-N", "-T", *(["-F", config] if config else []),
            "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes",
            "-o", "ControlMaster=no", "-o", "ControlPath=none",
            "-o", f"ConnectTimeout={max(1, int(connect_timeout))}",
            # A dead network path ends ssh (and so shows as a dead tunnel) within about 45 s.
            "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=3",
            *ssh_options]
    for local, remote in zip(local_ports, remote_ports, strict=True):
        argv += ["-L", f"{LOCAL_HOST}:{local}:{target}:{remote}"]
    return [*argv, "--", ssh_host]


class KernelTunnel:
    """A running forward: :attr:`local_ports` on 127.0.0.1 lead to the remote ports, in the same order."""

    def __init__(self, argv: list[str], local_ports: list[int], log: IO[bytes]) -> None:
        self.argv = argv
        self.local_ports = local_ports
        self.local_host = LOCAL_HOST
        self._log = log
        read, self._pipe = os.pipe()
        try:
            # Its own session: a Ctrl-C meant for the client must not end the forward before the
            # client has shut its kernel down through it.
            self._proc = subprocess.Popen([sys.executable, "-m", __name__, *argv], stdin=read,
                                          stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
        except BaseException:
            os.close(self._pipe)
            raise
        finally:
            os.close(read)

    def alive(self) -> bool:
        """Whether ssh still forwards."""
        return self._proc.poll() is None

    def why_dead(self) -> str:
        """The last line ssh wrote (its reason to exit), or its exit status."""
        self._log.seek(0)
        lines = [line.strip() for line in self._log.read().decode(errors="replace").splitlines() if line.strip()]
        return lines[-1].rstrip(".") if lines else f"ssh exited with status {self._proc.returncode}"

    def close(self) -> None:
        """End the forward (idempotent): the watcher sees the pipe close and ends ssh."""
        if self._pipe >= 0:
            os.close(self._pipe)
            self._pipe = -1
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=10)
        self._log.close()

    def __enter__(self) -> KernelTunnel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _answers(port: int, timeout: float) -> bool:
    """Whether a byte comes back through local ``port`` (the remote ZeroMQ greeting) within ``timeout``."""
    try:
        with socket.create_connection((LOCAL_HOST, port), timeout=timeout) as sock:
            return bool(sock.recv(1))
    except OSError:  # refused (ssh not listening yet), reset, or nothing within the timeout
        return False


def open_tunnel(ssh_host: str, remote_host: str, remote_ports: list[int], *, timeout: float = 60.0,
                ssh_options: Sequence[str] = ()) -> KernelTunnel:
    """Forward ``remote_ports`` of ``remote_host``, as reached from ``ssh_host``, to free local ports.

    Returns once each forwarded port has answered (see the module's
    documentation), at most ``timeout`` seconds after the call.

    Parameters
    ----------
    ssh_host : str
        ``[user@]host``, an alias of your ssh configuration, or ``ssh://user@host:port``.
    remote_host : str
        The kernel's host, as ``ssh_host`` resolves it.
    remote_ports : list of int
        The kernel's ports; ``tunnel.local_ports`` come in the same order.
    ssh_options : sequence of str
        More ``ssh`` arguments placed before the forwards (e.g. ``["-F", path]``).

    Raises
    ------
    InfrastructureError
        ssh failed (the message says how) or the ports did not answer in time.
    """
    deadline = time.monotonic() + timeout
    for attempt in range(_BIND_TRIES):
        local_ports = _free_ports(len(remote_ports))
        argv = ssh_command(ssh_host, remote_host, remote_ports, local_ports, ssh_options,
                           connect_timeout=max(1.0, deadline - time.monotonic()))
        tunnel = KernelTunnel(argv, local_ports, tempfile.TemporaryFile(prefix="skein-jupyter-ssh-"))
        try:
            waiting = list(local_ports)
            while waiting and tunnel.alive():
                if _answers(waiting[0], timeout=min(2.0, max(0.1, deadline - time.monotonic()))):
                    waiting.pop(0)
                    continue
                if time.monotonic() > deadline:
                    raise InfrastructureError(
                        f"the SSH forward of the kernel's ports through {ssh_host} to {remote_host} did not answer "
                        f"within {timeout:g}s; check that `ssh {ssh_host}` logs in without a prompt and that "
                        f"{remote_host} is reachable from there")
                time.sleep(0.1)
            if not waiting and tunnel.alive():
                return tunnel
            reason = tunnel.why_dead()
            tunnel.close()
        except BaseException:
            tunnel.close()
            raise
        if "in use" not in reason and "listen" not in reason or attempt == _BIND_TRIES - 1:
            raise InfrastructureError(f"ssh to {ssh_host}, forwarding the kernel's ports, failed: {reason}; check "
                                      f"that `ssh {ssh_host}` logs in without a prompt (keys or an agent)")
    raise AssertionError("unreachable")


def _watch(argv: list[str]) -> int:
    """Run ``argv`` (ssh) until it exits or this process's stdin reaches end of file; its exit status."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL)

    def on_eof() -> None:
        with contextlib.suppress(OSError):
            while os.read(0, 4096):
                pass
        with contextlib.suppress(OSError):
            proc.terminate()

    threading.Thread(target=on_eof, daemon=True).start()
    return proc.wait()


if __name__ == "__main__":
    sys.exit(_watch(sys.argv[1:]))
