"""Jupyter servers on YARN: start, find, connect to, list and stop them."""
from __future__ import annotations

import dataclasses
import getpass
import json
import os
import socket
import time
from typing import TYPE_CHECKING

from .applications import FINAL_STATES, application_logs, get_report, log_sections
from .exceptions import ApplicationError, SkeinJupyterError, UsageError
from .kinds import FRONTENDS, KINDS
from .launch import kill_quietly, submit
from .progress import Progress
from .runtime import keys
from .runtime.activity import StopWarning

if TYPE_CHECKING:
    import skein
    import skein.model

    from .recipe import Recipe

__all__ = ["ServerInfo", "ServerStarting", "StopWarning", "start", "info", "info_with_warning", "list_servers", "stop",
           "tunnel", "check_local_port", "DEFAULT_START_TIMEOUT"]

DEFAULT_START_TIMEOUT = 300
NOTEBOOK_TAG = KINDS["notebook"].tag


@dataclasses.dataclass(frozen=True)
class ServerInfo:
    """How to reach a server: what ``jupyter.notebook.info`` holds, plus the application and frontend.

    ``tls_fingerprint`` is the SHA-256 of the server's certificate (``AB:CD:...``)
    when it serves HTTPS; None for HTTP and for servers started by older versions.
    """

    app_id: str
    protocol: str
    host: str
    port: int
    base_url: str
    token: str
    frontend: str = "lab"
    tls_fingerprint: str | None = None

    def url(self, host: str | None = None, port: int | None = None) -> str:
        path = FRONTENDS[self.frontend].url_path if self.frontend in FRONTENDS else ""
        return (f"{self.protocol}://{host or self.host}:{port or self.port}{self.base_url}{path}"
                f"?token={self.token}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _warning(app_client):
    """The warning the server published, or None (none, or unreadable: a warning is never worth a failure)."""
    try:
        value = app_client.kv.get(keys.NOTEBOOK_WARNING)
        if not value:
            return None
        return StopWarning.from_json(value)
    except Exception:  # the master is going away, or an older runtime wrote something else
        return None


@dataclasses.dataclass(frozen=True)
class Tunnel:
    command: str
    local_port: int
    url: str


def _port_free(port):
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def check_local_port(port: int) -> None:
    """Refuse a tunnel port that is not a port or is taken on this machine."""
    if not 0 < port < 65536:
        raise UsageError(f"--local-port {port} is not a port number; use 1024-65535")
    if not _port_free(port):
        raise UsageError(f"local port {port} is already in use on this machine; choose another with --local-port")


def _local_ports(port: int) -> list[int]:
    """The local ports a tunnel to ``port`` tries, in order: the same every time for the same server.

    >>> _local_ports(41234)[:3]
    [41234, 31235, 41236]
    """
    return [port] + [20000 + (port + 10000 * step + step) % 40000 for step in range(1, 20)]


def tunnel(server: ServerInfo, local_port: int | None = None, ssh_user: str | None = None,
           edge_host: str | None = None) -> Tunnel:
    """The ``ssh -L`` command a laptop runs to reach ``server`` through this edge node.

    The local port defaults to the server's own port if it is free here, else
    the first free one of a fixed sequence derived from it, so ``start`` and
    every later ``info`` print the same command; ``SKEIN_JUPYTER_SSH_USER`` and
    ``SKEIN_JUPYTER_EDGE_HOST`` set the defaults of the user and host.
    """
    if local_port is not None:
        check_local_port(local_port)
    else:
        local_port = next((port for port in _local_ports(server.port) if _port_free(port)), None)
        if local_port is None:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                local_port = sock.getsockname()[1]
    user = ssh_user or os.environ.get("SKEIN_JUPYTER_SSH_USER") or getpass.getuser()
    host = edge_host or os.environ.get("SKEIN_JUPYTER_EDGE_HOST") or socket.getfqdn()
    command = f"ssh -N -L {local_port}:{server.host}:{server.port} {user}@{host}"
    return Tunnel(command, local_port, server.url(host="localhost", port=local_port))


def _frontend(app_client):
    """The frontend the runtime published; the server's root for a server started by other means."""
    try:
        value = app_client.kv.get(keys.NOTEBOOK_FRONTEND)
    except Exception:  # the master is going away: the root is always there
        return "server"
    return value.decode() if value else "server"


def _failure(client, app_id, reason, progress, ends_by_itself=False):
    """Make sure the application has ended, then raise with the end of its server's log.

    A runtime that reported an error exits on its own; anything else is
    killed. Logs are read once the application is over, so they are whole.
    """
    from .applications import wait_for_final_state

    if ends_by_itself:
        try:
            wait_for_final_state(client, app_id, 30)
        except ApplicationError:
            pass
    kill_quietly(client, app_id)
    try:
        wait_for_final_state(client, app_id, 60)
    except ApplicationError:
        pass  # the logs say what they can
    progress.step(f"reading the logs of {app_id}")
    try:
        logs = application_logs(app_id, timeout=60)
        service_log = "\n".join(log_sections(logs, KINDS["notebook"].log)) or logs
        tail = "\n".join(service_log.strip().splitlines()[-25:])
    except ApplicationError as exc:
        tail = str(exc)
    error = ApplicationError(f"{reason}; the application was stopped; full logs: "
                             f"yarn logs -applicationId {app_id}")
    error.details = f"----- end of the logs of {app_id} -----\n{tail}"
    raise error


class ServerStarting(SkeinJupyterError):
    """The server has not published its address yet (exit code 1); nothing was stopped."""


@dataclasses.dataclass
class _Look:
    """One look at a starting server: its application's state, and what it published."""

    state: str
    final_status: str
    server: ServerInfo | None = None
    error: str | None = None
    warning: StopWarning | None = None


class _Watcher:
    """Looks at the server in ``app_id``, one connection to its application master for all looks."""

    def __init__(self, client, app_id):
        self.client, self.app_id, self.app_client = client, app_id, None

    def look(self):
        report = self.client.application_report(self.app_id)
        look = _Look(str(report.state), str(report.final_status))
        if look.state == "RUNNING":
            self.app_client = self.app_client or self.client.connect(self.app_id, wait=False)
            value = self.app_client.kv.get(keys.NOTEBOOK_INFO)
            if value:
                published = json.loads(value)  # fields a newer runtime adds are left out, not fatal
                known = {f.name for f in dataclasses.fields(ServerInfo)} - {"app_id", "frontend"}
                look.server = ServerInfo(app_id=self.app_id, frontend=_frontend(self.app_client),
                                         **{k: v for k, v in published.items() if k in known})
                look.warning = _warning(self.app_client)
            else:
                error = self.app_client.kv.get(keys.ERROR)
                look.error = error.decode() if error else None
        return look


def wait_for_server(client, app_id, timeout, progress=None):
    """Wait until the server in ``app_id`` publishes its info; on failure or timeout, stop it and raise.

    For servers this process started: one that does not come up is killed.
    """
    progress = progress or Progress.quiet()
    deadline = time.monotonic() + timeout
    watcher = _Watcher(client, app_id)
    state = None
    while True:
        look = watcher.look()
        if look.state != state:
            state = look.state
            progress.step(f"{app_id} is {state}" + (" (waiting for YARN to allocate)" if state == "ACCEPTED" else ""))
        if look.server is not None:
            return look.server
        if state in FINAL_STATES:
            _failure(client, app_id, f"the server's application ended {look.final_status} before serving",
                     progress, ends_by_itself=True)
        if look.error:
            _failure(client, app_id, f"the server failed to start: {look.error}", progress, ends_by_itself=True)
        if time.monotonic() > deadline:
            _failure(client, app_id, f"no server after {timeout}s (application {state})", progress)
        time.sleep(0.2)


def start(recipe: Recipe, client: skein.Client, timeout: float = DEFAULT_START_TIMEOUT,
          progress: Progress | None = None) -> ServerInfo:
    """Start a Jupyter server on YARN and wait until it serves.

    The application keeps running after this returns. The server works in
    the recipe's workspace on HDFS, copied in before it answers; a workspace
    another live server uses is refused before anything is submitted. If the
    server does not come up, the application is killed and the error carries
    the end of its container log.

    Returns
    -------
    ServerInfo
    """
    from .launch import job_user
    from .workspaces import check_free, workspace_path

    progress = progress or Progress.quiet()
    user = job_user(recipe)
    # Before anything is uploaded: a second live server on one workspace is refused here.
    checked_at = check_free(client, user, workspace_path(recipe.notebook.workspace, user))
    submission = submit(recipe, client, progress, context={"workspace_checked_at": checked_at})
    try:
        server = wait_for_server(client, submission.app_id, timeout, progress)
    except KeyboardInterrupt:
        kill_quietly(client, submission.app_id)
        raise
    progress.step(f"server ready on {server.host}:{server.port}")
    return server


def _report(client, app_id):
    return get_report(client, app_id, "skein-jupyter notebook list")


def _check_notebook(report):
    if NOTEBOOK_TAG not in set(report.tags):
        raise UsageError(f"{report.id} ({report.name}) is not a skein-jupyter notebook server; "
                               "see `skein-jupyter notebook list`")


def info(client: skein.Client, app_id: str, wait: float = 0) -> ServerInfo:
    """The :class:`ServerInfo` of a running server, waiting up to ``wait`` seconds for a starting one.

    Only looks: a server that is still starting, or failed to start, is left as it is.
    :func:`info_with_warning` also says whether the server will stop itself soon.

    Raises
    ------
    ServerStarting
        Not serving yet when the wait is over (exit code 1).
    ApplicationError
        The application has ended, or its server reported that it failed to start.
    """
    return info_with_warning(client, app_id, wait)[0]


def info_with_warning(client: skein.Client, app_id: str, wait: float = 0) -> tuple[ServerInfo, StopWarning | None]:
    """:func:`info`, and the :class:`StopWarning` in force if the server will stop itself soon (idle or
    at its maximum lifetime), else None; raises as :func:`info` does."""
    report = _report(client, app_id)
    _check_notebook(report)
    deadline = time.monotonic() + max(wait, 0)
    watcher = _Watcher(client, app_id)
    while True:
        look = watcher.look()
        if look.server is not None:
            return look.server, look.warning
        if look.state in FINAL_STATES:
            raise UsageError(f"{app_id} has ended ({look.state}, {look.final_status}); start a new "
                             "server with `skein-jupyter notebook start`")
        if look.error:
            raise ApplicationError(f"the server in {app_id} failed to start: {look.error}; see "
                                   f"`skein-jupyter logs {app_id}`")
        if time.monotonic() >= deadline:
            raise ServerStarting(f"the server in {app_id} is still starting (application {look.state}); "
                                 f"ask again in a moment, or wait for it with `skein-jupyter notebook info "
                                 f"{app_id} --wait 120`")
        time.sleep(0.2)


def list_servers(client: skein.Client) -> list[dict]:
    """The user's running servers: id, name, state, age, resources, idle time and workspace."""
    rows = []
    from .identity import hadoop_user

    user = hadoop_user()
    for report in client.get_applications(states=["SUBMITTED", "ACCEPTED", "RUNNING"]):
        if NOTEBOOK_TAG not in set(report.tags) or report.user != user:
            continue
        status: dict = {}
        workspace = None
        if str(report.state) == "RUNNING":
            try:
                app_client = client.connect(report.id, wait=False)
                value = app_client.kv.get(keys.NOTEBOOK_STATUS)
                status = json.loads(value) if value else {}
                value = app_client.kv.get(keys.NOTEBOOK_WORKSPACE)
                workspace = value.decode() if value else None
            except Exception:  # the master may be starting or stopping
                status = {}
        usage = report.usage
        rows.append({
            "app_id": report.id, "name": report.name, "state": str(report.state),
            "age_seconds": round(time.time() - report.start_time.timestamp()),
            "memory_mb": usage.used_resources.memory, "vcores": usage.used_resources.vcores,
            "idle_seconds": status.get("idle_seconds"), "kernels": status.get("kernels"),
            "frontend": status.get("frontend"), "workspace": workspace,
        })
    return rows


def stop(client: skein.Client, app_id: str, timeout: float = 600) -> skein.model.ApplicationReport:
    """Ask the server to shut down cleanly (its last sync to the workspace included); the application ends SUCCEEDED.

    Returns
    -------
    skein.model.ApplicationReport
        The final report.
    """
    from .applications import wait_for_final_state

    report = _report(client, app_id)
    _check_notebook(report)
    if str(report.state) in FINAL_STATES:
        raise UsageError(f"{app_id} has already ended ({report.state}, {report.final_status}); "
                         "nothing to stop")
    app_client = client.connect(app_id, wait=False) if str(report.state) == "RUNNING" else None
    if app_client is None:
        client.kill_application(app_id)  # never started: nothing to shut down cleanly
    else:
        app_client.kv[keys.NOTEBOOK_STOP] = b"1"
        try:
            return wait_for_final_state(client, app_id, timeout)
        except ApplicationError:
            app_client.shutdown("SUCCEEDED")  # the server did not stop in time
    return wait_for_final_state(client, app_id, 60)
