"""Run a Jupyter server in the container and publish how to reach it.

The token is made here and leaves the container only through the Skein
key-value store (TLS): it is never on a command line, never logged (a
configured token shows as ``token=...`` in jupyter_server's logs), and the
files jupyter_server writes with it are private to the user (umask 077).
"""
import hashlib
import json
import os
import secrets
import socket
import ssl
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from . import keys
from .activity import IdleClock, read_activity
from .common import connect, fail, log
from .kinds import FRONTENDS

STATUS_INTERVAL = 5.0
#: Seconds a server has to stop after being asked before its process is ended.
STOP_GRACE = 60.0


class Watcher(threading.Thread):
    """Waits until the server answers, publishes it, then watches for idleness, lifetime and stop.

    What counts as activity, the idle clock and the warning before a stop are
    decided in :mod:`.activity`; this thread asks the server, publishes the
    status and the warning, and stops the server with ``app.stop()``.
    """

    def __init__(self, app, app_client, info, options, started):
        super().__init__(name="skein-jupyter-watcher", daemon=True)
        self.app, self.app_client, self.info, self.options = app, app_client, info, options
        self.started = started
        self.context = ssl._create_unverified_context() if info["protocol"] == "https" else None
        self.api = f"{info['protocol']}://127.0.0.1:{info['port']}{info['base_url']}api/"
        self.clock = IdleClock(options.idle_timeout, options.max_lifetime, started)
        self.warning = None  # the warning published, if any
        self.loop_ended: threading.Event | None = None  # set by main() once app.start() returns
        self.on_hang = None  # what to do before ending a process whose server does not stop

    def get(self, path):
        # no_track_activity: the watcher's own requests are not activity (api/status never is)
        request = urllib.request.Request(f"{self.api}{path}?no_track_activity=1",
                                         headers={"Authorization": f"token {self.info['token']}"})
        with urllib.request.urlopen(request, timeout=10, context=self.context) as response:
            return json.load(response)

    def status(self):
        return self.get("status")

    def terminals(self):
        try:
            return self.get("terminals")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:  # terminals are off, or jupyter_server_terminals is not installed
                return []
            raise

    def stop(self, why):
        """Ask the server to stop; if its event loop does not end within :data:`STOP_GRACE`, end the
        process after ``on_hang`` (the workspace's last sync): a hung server still stops."""
        log(f"stopping the server: {why}")
        self.app.stop()
        if self.loop_ended is not None and not self.loop_ended.wait(STOP_GRACE):
            log(f"the server did not stop within {STOP_GRACE}s; ending the process")
            if self.on_hang is not None:
                self.on_hang()
            os._exit(0)

    def publish(self, key, value):
        try:
            if value is None:
                self.app_client.kv.discard(key)
            else:
                self.app_client.kv[key] = value
            return True
        except Exception as exc:
            log(f"key-value store unavailable: {exc}")
            return False

    def warn(self, warning):
        """Publish and log ``warning``, or clear the one in force (None), when it changes."""
        if warning == self.warning:
            return
        if self.publish(keys.NOTEBOOK_WARNING, None if warning is None else warning.to_json()):
            log(f"warning: {warning.line()}" if warning else "warning cleared: the server is in use again")
            self.warning = warning

    def look(self):
        """One :class:`.activity.Decision`, and the status to publish (None if the server did not answer)."""
        try:
            status = self.status()
            activity = read_activity(status, self.get("kernels"), self.terminals())
        except Exception as exc:  # the server is stopping, or overloaded for a moment: only the lifetime counts
            log(f"status check failed: {exc}")
            return self.clock.unanswered(time.time()), None
        decision = self.clock.observe(activity, time.time())
        status.update(idle_seconds=decision.idle_seconds, frontend=self.options.frontend,
                      kernels=activity.kernels, busy_kernels=activity.busy_kernels,
                      connections=activity.connections, terminals=activity.terminals)
        return decision, status

    def run(self):
        while True:  # the server answers within seconds or the application is killed by the client
            try:
                self.status()
                break
            except Exception:
                if self.options.max_lifetime and time.time() - self.started >= self.options.max_lifetime:
                    return self.stop(f"reached its maximum lifetime of {self.options.max_lifetime}s")
                time.sleep(0.1)
        self.app_client.kv[keys.NOTEBOOK_INFO] = json.dumps(self.info).encode()
        log(f"serving on {self.info['protocol']}://{self.info['host']}:{self.info['port']}{self.info['base_url']}")
        while True:
            time.sleep(STATUS_INTERVAL)
            decision, status = self.look()
            if status is not None:
                self.publish(keys.NOTEBOOK_STATUS, json.dumps(status).encode())
                self.warn(decision.warning)
            if decision.stop:
                return self.stop(decision.stop)


def _wait_for_stop(app_client, watcher):
    """Block on the stop key, so that `notebook stop` takes effect at once."""
    try:
        app_client.kv.wait(keys.NOTEBOOK_STOP)
    except Exception as exc:  # the master went away: YARN ends the container anyway
        log(f"stop watch ended: {exc}")
        return
    watcher.stop("stop requested")


def certificate_fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate as ``AB:CD:...``, the form ``openssl x509 -fingerprint -sha256`` prints."""
    return ":".join(f"{byte:02X}" for byte in hashlib.sha256(der).digest())


def _tls_files(directory):
    """A certificate and key made for this application (skein's own helper, from the environment).

    Returns the certificate and key paths, the certificate's PEM and its
    SHA-256 fingerprint, which the client publishes so that users can pin it.
    The key file is private (0600) whatever the umask.
    """
    import skein

    security = skein.Security.new_credentials()
    cert, key = directory / "server.crt", directory / "server.key"
    cert.write_bytes(security.cert_bytes)
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(security.key_bytes)
    pem = security.cert_bytes.decode()
    return str(cert), str(key), pem, certificate_fingerprint(ssl.PEM_cert_to_DER_cert(pem))


def main(job) -> int:
    os.umask(0o077)  # jupyter_server writes the token into runtime files: keep them private
    options = job.notebook
    scheduler = options.scheduler
    if scheduler is not None:
        from . import labscheduler

        problem = labscheduler.prepare(scheduler, job.user, Path.cwd())  # before skein is imported
    app_client = connect()
    if app_client is None:
        return 1
    frontend = options.frontend
    try:  # for `notebook info` and `notebook list`: the client never reads the job back
        app_client.kv[keys.NOTEBOOK_FRONTEND] = frontend.encode()
    except Exception as exc:
        log(f"frontend not published: {exc}")
    # Every frontend runs on jupyter_server, which is the "server" frontend's own row.
    needed = {row.module: row.package for row in (FRONTENDS["server"], FRONTENDS[frontend])}
    missing = [module for module in needed if not _importable(module)]
    if missing:
        return fail(app_client, f"the environment lacks {', '.join(missing)} for the {frontend} frontend; "
                                f"install {' '.join(needed[m] for m in missing)} in it and pack it again")
    if scheduler is not None and problem:
        return fail(app_client, problem)
    home = Path.cwd()
    runtime_dir = home / ".jupyter-runtime"
    work = home / "work"
    # Jupyter's runtime, config and data dirs (JupyterLab's settings and workspaces are under
    # the config dir) live in the container: YARN's HOME is often not writable.
    dirs = {"JUPYTER_RUNTIME_DIR": runtime_dir, "JUPYTER_CONFIG_DIR": home / ".jupyter-config",
            "JUPYTER_DATA_DIR": home / ".jupyter-data", "IPYTHONDIR": home / ".ipython"}
    for directory in (work, *dirs.values()):
        directory.mkdir(mode=0o700, exist_ok=True)
    os.environ.update({name: str(path) for name, path in dirs.items()})
    if not os.access(os.environ.get("HOME") or "/", os.W_OK):
        os.environ["HOME"] = str(home)
    host = os.environ.get("NM_HOST") or socket.getfqdn()
    mirror = None
    if options.workspace is not None:
        mirror = _open_workspace(app_client, job, work, host)
        if mirror is None:
            return 1
    token = secrets.token_hex(32)
    protocol = "https" if options.tls else "http"

    from jupyter_server.serverapp import ServerApp
    from traitlets.config import Config

    config = Config()
    config.ServerApp.ip = "0.0.0.0"
    config.ServerApp.port = 0
    config.ServerApp.port_retries = 0
    config.ServerApp.open_browser = False
    config.ServerApp.allow_root = True  # containers run as the submitting user; root only in a sandbox
    config.ServerApp.root_dir = str(work)
    config.ServerApp.default_url = FRONTENDS[frontend].default_url
    config.IdentityProvider.token = token
    if scheduler is not None:
        problem = labscheduler.start_driver(scheduler)
        if problem:
            return fail(app_client, problem)
        labscheduler.configure(config, home)
    if options.kernel_idle_timeout:
        config.MappingKernelManager.cull_idle_timeout = options.kernel_idle_timeout
        config.MappingKernelManager.cull_interval = max(1, min(60, options.kernel_idle_timeout // 2))
        config.MappingKernelManager.cull_connected = False
    tls = {}
    if protocol == "https":
        config.ServerApp.certfile, config.ServerApp.keyfile, pem, tls["tls_fingerprint"] = _tls_files(runtime_dir)
        try:
            app_client.kv[keys.NOTEBOOK_CERTIFICATE] = pem.encode()
        except Exception as exc:
            log(f"certificate not published: {exc}")
    app = ServerApp.instance(config=config)
    try:
        app.initialize(argv=[])
    except Exception as exc:
        return fail(app_client, f"the Jupyter server did not start: {exc}")
    if app.identity_provider.token != token:
        return fail(app_client, "a Jupyter config file in the environment sets a token; remove it "
                                "(skein-jupyter makes one per server)")
    if mirror is not None:
        _sync_on_save(app, mirror)
        mirror.start()
    info = {"protocol": protocol, "host": host, "port": app.port, "base_url": app.base_url, "token": token, **tls}
    started = time.time()
    watcher = Watcher(app, app_client, info, options, started)
    loop_ended = watcher.loop_ended = threading.Event()
    if mirror is not None:
        watcher.on_hang = lambda: _close_workspace(mirror, options.workspace.path, started)
    watcher.start()
    threading.Thread(target=_wait_for_stop, args=(app_client, watcher), name="skein-jupyter-stop",
                     daemon=True).start()
    log(f"starting the {frontend} frontend (jupyter_server in {sys.prefix})")
    try:
        app.start()
    finally:
        loop_ended.set()
        log("server stopped")
        if scheduler is not None:
            labscheduler.stop_driver()
        if mirror is not None:
            _close_workspace(mirror, options.workspace.path, started)
    return 0


def _open_workspace(app_client, job, work: Path, host: str):
    """Lock the job's workspace and copy it into ``work``; None (the failure said) if it cannot be."""
    import skein

    from .webhdfs import HDFS, WebHDFSError, connect, short
    from .workspace import NAMED_DIR, Mirror, WorkspaceBusy

    workspace = job.notebook.workspace
    began = time.monotonic()
    try:
        app_client.kv[keys.NOTEBOOK_WORKSPACE] = workspace.path.encode()
        hdfs = HDFS(lambda: connect(workspace.namenodes, job.user))
        mirror = Mirror(hdfs, workspace.path, work, workspace.exclude, workspace.sync_interval,
                        skein.properties.application_id, workspace.checked_at)
        mirror.prepare(private=workspace.path.startswith(NAMED_DIR.format(user=job.user) + "/"))
        mirror.acquire(host)
        files, size = mirror.restore()
    except (WorkspaceBusy, WebHDFSError, ValueError) as exc:
        fail(app_client, str(exc))
        return None
    except Exception as exc:  # never the raw error: an HTTP error's URL may carry the delegation token
        fail(app_client, f"the workspace {workspace.path} could not be restored: {short(exc)}")
        return None
    log(f"workspace {workspace.path}: restored {files} files ({size / 1e6:.1f} MB) in "
        f"{time.monotonic() - began:.1f}s; syncing saves at once, other changes every {workspace.sync_interval}s")
    return mirror


#: The contents events that change files (jupyter_server also reports reads, as ``get``).
_CHANGES = ("save", "rename", "delete", "create", "upload", "copy")


def _sync_on_save(app, mirror) -> None:
    """Every save, rename and delete through Jupyter's contents API goes to HDFS at once."""
    from jupyter_server.services.contents.manager import ContentsManager

    async def nudge(logger, schema_id, data):
        if data.get("action") in _CHANGES:
            mirror.nudge()

    if getattr(app, "event_logger", None) is None:  # jupyter_server < 2: no events
        log("this jupyter_server reports no contents events: saves reach HDFS at the sync interval")
        return
    app.event_logger.add_listener(schema_id=ContentsManager.event_schema_id, listener=nudge)


def _close_workspace(mirror, path: str, started: float) -> None:
    """The last sync and the lock's release, at every stop that lets the process finish."""
    from .webhdfs import short

    try:
        changes = mirror.stop()
        if mirror.taken_by is None:
            mirror.release(started)
        log(f"workspace {path}: final sync done ({changes} changes)")
    except Exception as exc:
        log(f"workspace {path}: final sync failed: {short(exc)}; changes since the last sync may be lost")


def _importable(module):
    import importlib.util

    return importlib.util.find_spec(module) is not None
