"""Run one Jupyter kernel (ipykernel from the packed environment) for the kernel provisioner.

The container makes the kernel's HMAC key and writes it, with ports 0, into a
connection file only the user can read (umask 077); ipykernel binds random free
ports and writes them back into that file, and once it has, the key and ports go
into the key-value store (``skein-jupyter.kernel.connection``), where the
provisioner reads them: the key is on no command line and in no log, and no
connection from the container back to the client is needed.

The kernel is ipykernel's, started through ``kernel_launcher.py`` (written next to
the connection file and run as a script, the runtime off the kernel's path), whose
interrupt always reaches the running cell (see there why).

The container ends with the kernel: exit 0 after a ``shutdown_request``, so the
application ends SUCCEEDED. It ends the kernel itself when the client's lease
lapses (``skein-jupyter.kernel.heartbeat`` unchanged for ``lease`` seconds:
the application ends KILLED), or after ``idle_timeout`` without running code
(SUCCEEDED, with ``idle timeout`` in its diagnostics: the provisioner then
refuses to start it again, so a client's automatic restart does not start a new
application every ``idle_timeout``).
"""
from __future__ import annotations

import json
import os
import pkgutil
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from . import keys
from .common import connect, fail, log

#: How often the container looks at the kernel, the lease and the signal key.
TICK = 1.0
#: Seconds the kernel has to exit after SIGTERM before it is killed.
STOP_GRACE = 10.0
#: In the application's diagnostics when the kernel ended after its idle timeout.
IDLE_END = "idle timeout"
#: Longest ipykernel may take to bind its ports and write them back.
START_TIMEOUT = 120.0
#: The runtime's own archive on PYTHONPATH (spec.RUNTIME_FILE), kept out of the kernel's.
RUNTIME_ZIP = "skein_jupyter_runtime.zip"
#: The script that starts the kernel (``kernel_launcher.py`` of this package, copied out of the runtime's zip).
LAUNCHER = "kernel_launcher.py"
PORT_NAMES = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")


def bound_ports(process, connection_file, timeout=START_TIMEOUT):
    """The ports ipykernel bound, once it rewrote ``connection_file`` (written with ports 0); None if it died.

    ipykernel binds random free ports itself and writes them back into the file
    (mode 600): no port is picked here and released for another process to take.
    """
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        try:
            info = json.loads(connection_file.read_text())
        except (OSError, ValueError):  # being rewritten
            info = {}
        ports = {name: info.get(name) for name in PORT_NAMES}
        if all(isinstance(port, int) and port > 0 for port in ports.values()):
            return ports
        time.sleep(0.1)
    return None


def kernel_command(directory: Path, connection_file: str | Path) -> list[str]:
    """The kernel's command line: this package's ``kernel_launcher.py``, written into ``directory``, as a script."""
    source = pkgutil.get_data(__package__ or "", LAUNCHER)  # from the runtime's zip in the container
    if source is None:
        raise RuntimeError(f"{LAUNCHER} is not in the runtime's archive")
    launcher = Path(directory) / LAUNCHER
    launcher.write_bytes(source)
    return [sys.executable, str(launcher), "-f", str(connection_file)]


def reachable_ip():
    """The address clients reach this container at: its NodeManager host's (its name if that resolves to loopback)."""
    host = os.environ.get("NM_HOST") or socket.getfqdn()
    try:
        ip = socket.gethostbyname(host)
    except OSError:
        return host
    return host if ip.startswith("127.") else ip


def kernel_env(environ):
    """``environ`` without the runtime's zip on ``PYTHONPATH`` (the user's entries stay): the kernel sees
    the environment's packages only."""
    env = dict(environ)
    entries = [entry for entry in env.get("PYTHONPATH", "").split(os.pathsep)
               if entry and os.path.basename(entry) != RUNTIME_ZIP]
    if entries:
        env["PYTHONPATH"] = os.pathsep.join(entries)
    else:
        env.pop("PYTHONPATH", None)
    return env


class IdleWatch:
    """Reads the kernel's iopub status messages: busy, idle, and since when nothing ran."""

    def __init__(self, port, timeout):
        import zmq  # ipykernel's own dependency

        self.timeout = timeout
        self.socket = zmq.Context.instance().socket(zmq.SUB)
        self.socket.setsockopt(zmq.SUBSCRIBE, b"")
        self.socket.connect(f"tcp://127.0.0.1:{port}")
        self.busy = False
        self.since = time.monotonic()

    def idle_for(self):
        import zmq

        while self.socket.poll(0, zmq.POLLIN):
            frames = self.socket.recv_multipart()
            try:  # [identities..., <IDS|MSG>, signature, header, parent, metadata, content]
                at = frames.index(b"<IDS|MSG>")
                header, content = json.loads(frames[at + 2]), json.loads(frames[at + 5])
            except (ValueError, IndexError):
                continue
            if header.get("msg_type") == "status":
                self.busy = content.get("execution_state") == "busy"
            self.since = time.monotonic()
        return 0.0 if self.busy else time.monotonic() - self.since


def stop(process):
    """SIGTERM, then SIGKILL after :data:`STOP_GRACE`; returns the exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


def main(job) -> int:
    os.umask(0o077)
    app_client = connect()
    if app_client is None:
        return 1
    options = job.kernel
    try:
        import ipykernel  # noqa: F401
    except ImportError:
        return fail(app_client, "the environment lacks ipykernel; install it in the environment and pack it again")
    home = Path.cwd()
    dirs = {"JUPYTER_RUNTIME_DIR": home / ".jupyter-runtime", "IPYTHONDIR": home / ".ipython"}
    for directory in dirs.values():
        directory.mkdir(mode=0o700, exist_ok=True)
    os.environ.update({name: str(path) for name, path in dirs.items()})
    if not os.access(os.environ.get("HOME") or "/", os.W_OK):
        os.environ["HOME"] = str(home)
    info = {"transport": "tcp", "ip": "0.0.0.0", **dict.fromkeys(PORT_NAMES, 0), "key": secrets.token_hex(32),
            "signature_scheme": "hmac-sha256", "kernel_name": ""}
    connection_file = dirs["JUPYTER_RUNTIME_DIR"] / "kernel.json"
    connection_file.write_text(json.dumps(info))
    process = subprocess.Popen(kernel_command(dirs["JUPYTER_RUNTIME_DIR"], connection_file), env=kernel_env(os.environ))
    ports = bound_ports(process, connection_file)
    if ports is None:
        code = stop(process)
        return fail(app_client, f"the kernel did not start (exit code {code}, or no ports within "
                                f"{START_TIMEOUT:.0f}s); see the application's logs")
    info.update(ports)
    log(f"kernel started (pid {process.pid}, ports {', '.join(str(p) for p in ports.values())}); "
        f"lease {options.lease}s" + (f", idle timeout {options.idle_timeout}s" if options.idle_timeout else ""))
    try:
        app_client.kv[keys.KERNEL_CONNECTION] = json.dumps({**info, "ip": reachable_ip()}).encode()
    except Exception as exc:
        stop(process)
        return fail(app_client, f"cannot publish the kernel's connection info: {exc}")
    idle = IdleWatch(ports["iopub_port"], options.idle_timeout) if options.idle_timeout else None
    beat, beat_at = None, time.monotonic()
    while process.poll() is None:
        time.sleep(TICK)
        try:
            value = app_client.kv.get(keys.KERNEL_HEARTBEAT)
            signum = app_client.kv.pop(keys.KERNEL_SIGNAL, None)
        except Exception as exc:  # the master is gone: nothing can reach this kernel any more
            log(f"the application master is unreachable ({exc}); stopping the kernel")
            stop(process)
            return 1
        if value != beat:
            beat, beat_at = value, time.monotonic()
        if signum is not None and process.poll() is None:
            try:
                sig = signal.Signals(int(signum))
            except ValueError:
                log(f"ignoring a bad signal value from the kernel's client: {signum[:20]!r}")
            else:
                log(f"sending signal {sig.name} to the kernel, as its client asked")
                process.send_signal(sig)
        ended = None
        if time.monotonic() - beat_at > options.lease:
            ended = "lease"
            log(f"no heartbeat from the kernel's client for {options.lease}s: it is gone; ending the kernel")
        elif idle is not None and idle.idle_for() > options.idle_timeout:
            ended = "idle"
            log(f"the kernel ran no code for {options.idle_timeout}s (idle timeout); ending it")
        if ended is not None:
            try:
                app_client.kv[keys.KERNEL_ENDED] = ended.encode()
            except Exception as exc:
                log(f"cannot record why the kernel ended ({exc})")
            code = stop(process)
            if ended == "lease":
                app_client.shutdown("KILLED", f"the lease expired: the kernel's client did not renew it for "
                                              f"{options.lease}s (crashed or killed?)")
            else:  # the provisioner reads IDLE_END in the diagnostics and does not start it again
                app_client.shutdown("SUCCEEDED", f"{IDLE_END}: the kernel ran no code for {options.idle_timeout}s")
            return 0 if ended == "idle" else code or 1
    code = process.returncode
    log(f"kernel exited with code {code}")
    return code
