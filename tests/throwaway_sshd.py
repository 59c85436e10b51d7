"""A throw-away OpenSSH server for tests: Debian's sshd on a free loopback port, its own keys.

The tests run the SSH tunnel command `notebook start` prints, for real, against
this server instead of an edge node. Everything lives in one temporary
directory: a host key, a user key and its ``authorized_keys``, the server's
config and pid file, and the client config (``ssh -F``) that points at it.
Nothing of the machine's own sshd (``/etc/ssh``) is read or changed.
"""
import getpass
import os
import shlex
import socket
import subprocess
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _keygen(path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "skein-jupyter-test", "-f", str(path)],
                   check=True, capture_output=True, timeout=60)


def _stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class ThrowawaySshd:
    """``sshd -D -e`` on 127.0.0.1:``port``, letting in the current user with a key made for it.

    Use as a context manager; :attr:`client_config` is the file to give ``ssh -F``.
    """

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.port = _free_port()
        self.user = getpass.getuser()
        self.client_config = self.directory / "ssh_config"
        self.log = self.directory / "sshd.log"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "ThrowawaySshd":
        d = self.directory
        d.mkdir(parents=True, exist_ok=True)
        _keygen(d / "host_key")
        _keygen(d / "user_key")
        (d / "authorized_keys").write_text((d / "user_key.pub").read_text())
        (d / "sshd_config").write_text("\n".join([
            f"Port {self.port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {d / 'host_key'}",
            f"PidFile {d / 'sshd.pid'}",
            f"AuthorizedKeysFile {d / 'authorized_keys'}",
            # The temporary directory is not laid out as a home directory's .ssh is.
            "StrictModes no",
            "UsePAM no",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
            f"AllowUsers {self.user}",
            "AllowTcpForwarding local",
            "PermitTTY no",
            "X11Forwarding no",
            "LogLevel VERBOSE",
        ]) + "\n")
        self.client_config.write_text("\n".join([
            "Host *",
            f"  Port {self.port}",
            f"  IdentityFile {d / 'user_key'}",
            "  IdentitiesOnly yes",
            "  StrictHostKeyChecking no",
            "  UserKnownHostsFile /dev/null",
            "  BatchMode yes",
            "  ExitOnForwardFailure yes",
            "  LogLevel ERROR",
        ]) + "\n")
        if os.geteuid() == 0:
            # As root sshd separates privileges into this directory, which Debian's
            # service unit makes at boot; a machine whose sshd never ran lacks it.
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT)
        try:
            self._wait_listening(timeout=30)
        except BaseException:
            self.close()
            raise
        return self

    def _wait_listening(self, timeout):
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"sshd did not listen on port {self.port} within {timeout}s:\n{self.log.read_text()}")
            time.sleep(0.1)

    def close(self) -> None:
        if self.proc is not None:
            _stop(self.proc)

    def __exit__(self, *exc):
        self.close()

    def tunnel(self, command: str) -> "Tunnel":
        """Run ``command`` (an ``ssh ...`` line as printed) with only ``-F`` for this server added."""
        argv = shlex.split(command)
        if argv[:1] != ["ssh"]:
            raise ValueError(f"not an ssh command: {command}")
        return Tunnel([argv[0], "-F", str(self.client_config), *argv[1:]], self.directory / "ssh.log")


class Tunnel:
    """A running ``ssh -N -L`` process; a context manager that ends it."""

    def __init__(self, argv: list[str], log: Path):
        self.argv = argv
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def __enter__(self) -> "Tunnel":
        return self

    def __exit__(self, *exc):
        _stop(self.proc)

    def why_dead(self) -> str:
        return f"ssh exited {self.proc.returncode}: {self.log.read_text()}"
