"""A jupyter_client kernel provisioner that starts each kernel in a YARN container.

Any jupyter_client >= 7 client (JupyterLab, Notebook 7, nbclient, papermill)
starts a kernel of a kernelspec whose ``metadata.kernel_provisioner`` names
``skein-jupyter`` (the entry point ``jupyter_client.kernel_provisioners``
registers :class:`YarnKernelProvisioner` under that name).

The kernelspec (``kernel.json``)::

    {"argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
     "display_name": "Python 3 (YARN)",
     "language": "python",
     "interrupt_mode": "message",
     "metadata": {"kernel_provisioner": {"provisioner_name": "skein-jupyter",
                                         "config": {"env": "analytics", "memory": "4 GiB", ...}}}}

``argv`` is not run by the provisioner (the container runs ipykernel from the
packed environment), but jupyter_client needs one. ``interrupt_mode`` must be
``message``: interrupts reach the kernel as ``interrupt_request`` messages,
no signal path to the container is needed.

Keys of ``config`` (all optional except ``env``; what the provisioner reads):

``env``
    The packed environment: an archive path, an ``hdfs://`` archive, or a
    published name (``skein-jupyter env list``). It needs ``skein`` and ``ipykernel``.
``memory``, ``vcores``, ``gpus``
    The container's resources (``"4 GiB"`` or MiB as a number, ints).
``queue``, ``node_label``
    YARN queue and node label expression.
``idle_timeout``
    Shut the kernel down after this long without running code (``"30m"``, seconds as a number;
    absent or null: never).
``lease``
    How long the application outlives a client that stopped renewing it (crashed, SIGKILLed):
    ``"60s"`` by default, at least 10 s. The provisioner renews it every ``lease / 6`` seconds.
``ssh_host``
    Reach the kernel's ports through SSH forwarding via this host (``[user@]host[:port]``),
    for a client outside the cluster's network.
``name``
    The kernelspec's name, to tag the application with (``skein-jupyter-kernelspec-<name>``).

The values are validated by ``skein_jupyter.kernels.kernel_config(**config) -> dict`` (owned by
the kernelspec CLI; it raises :class:`~skein_jupyter.exceptions.UsageError`), called again here at
every launch; unset keys take the user's configuration file and ``SKEIN_JUPYTER_*`` variables, as
``kind: kernel`` recipes do (``skein-jupyter config show --kind kernel``).

With ``ssh_host``, the provisioner calls
``skein_jupyter.kernel_tunnel.open_tunnel(ssh_host: str, remote_host: str, remote_ports: list[int])
-> tunnel``, where ``tunnel.local_ports: list[int]`` are the local ports forwarded to
``remote_ports`` (same order, on 127.0.0.1), ``tunnel.close() -> None`` ends it, and
``tunnel.alive() -> bool`` says whether it still forwards.

How a kernel lives (see ``runtime/kernel.py`` for the container's side):

- Launch submits an application named ``skein-jupyter-kernel-<kernel id>``, tagged
  ``skein-jupyter``, ``skein-jupyter-kernel`` and ``skein-jupyter-kernel-<kernel id>``. The container
  picks free ports, makes the HMAC key, writes them into a private connection file for ipykernel,
  and publishes the connection info in the application's key-value store (private to its owner;
  never on a command line or in a log), where the provisioner reads it.
- Restart ends the application and submits a new one (same kernel id, new ports and key), except
  after the idle timeout ended the kernel: then launching raises (one line), so that a client's
  automatic restart (jupyter_server's) does not start a new application every ``idle_timeout``.
- Shutdown: ipykernel exits on ``shutdown_request``, the container ends, the application ends
  SUCCEEDED. ``kill`` kills the application. A lost container (or any end of the application)
  makes :meth:`poll` return an exit code: the kernel is dead.
- Lease: a thread renews ``skein-jupyter.kernel.heartbeat``; the container ends the application
  (KILLED) when it has not changed for ``lease`` seconds.
"""
from __future__ import annotations

import asyncio
import functools
import itertools
import json
import signal
import threading
import time
from typing import Any, Callable, TypeVar, cast

from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.provisioning.provisioner_base import KernelProvisionerBase
from traitlets import Any as AnyTrait

from .exceptions import ApplicationError, UsageError
from .recipe import Recipe
from .runtime import keys
from .runtime.kernel import IDLE_END

__all__ = ["YarnKernelProvisioner", "CONFIG_KEYS", "kernel_recipe", "kernel_options", "renew_lease"]

#: The keys of a kernelspec's provisioner config.
CONFIG_KEYS = ("env", "memory", "vcores", "gpus", "queue", "node_label", "idle_timeout", "lease", "ssh_host",
               "name")
#: Longest a launch waits for the container to publish its connection info (YARN may queue it).
START_TIMEOUT = 600.0
PORT_NAMES = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
#: How long a poll's answer stands: KernelManager polls every 0.1 s while it waits for a shutdown.
POLL_CACHE = 1.0

T = TypeVar("T")

_client_lock = threading.Lock()
_client = None


def skein_client(reset: bool = False):
    """One Skein client per process, shared by every kernel (a driver costs seconds to start).

    ``reset`` drops the cached one first (its driver went away) and starts another.
    """
    global _client
    with _client_lock:
        if reset and _client is not None:
            old, _client = _client, None
            try:
                old.close()
            except Exception:
                pass
        if _client is None:
            from .launch import skein_client as make

            _client = make()
        return _client


def with_client(call: Callable[[Any], T]) -> T:
    """``call(skein_client())``, again with a new client if the driver's connection was lost."""
    import skein

    try:
        return call(skein_client())
    except skein.exceptions.ConnectionError:
        return call(skein_client(reset=True))


def kernel_options(**config: Any) -> dict[str, Any]:
    """The validated options of a kernelspec's config: ``skein_jupyter.kernels.kernel_config``."""
    try:
        from .kernels import kernel_config
    except ImportError:  # until the kernelspec CLI is merged: the recipe's validation alone
        unknown = sorted(set(config) - set(CONFIG_KEYS))
        if unknown:
            raise UsageError(f"kernel config: unknown key {unknown[0]!r}; known keys: {', '.join(CONFIG_KEYS)}")
        if not config.get("env"):
            raise UsageError("kernel config: env missing; reinstall the kernel with "
                             "`skein-jupyter kernel install --env ENV`")
        return {key: value for key, value in config.items() if value is not None}
    return kernel_config(**config)


def kernel_recipe(kernel_id: str, options: dict[str, Any]) -> Recipe:
    """The ``kind: kernel`` recipe of one kernel: the user's configuration layers, then ``options``."""
    from .config import load_recipe

    flags = {"environment": options.get("env"), "resources.memory": options.get("memory"),
             "resources.vcores": options.get("vcores"), "resources.gpus": options.get("gpus"),
             "queue": options.get("queue"), "node_label": options.get("node_label"),
             "kernel.idle_timeout": options.get("idle_timeout"), "kernel.lease": options.get("lease"),
             "name": f"skein-jupyter-kernel-{kernel_id}", "max_attempts": 1,
             "tags": [f"skein-jupyter-kernel-{kernel_id}"]
             + ([f"skein-jupyter-kernelspec-{options['name']}"] if options.get("name") else [])}
    recipe, _ = load_recipe(kind="kernel", flags=flags)
    return recipe


async def _off_loop(call: Callable[..., T], *args: Any) -> T:
    """``call(*args)`` in a worker thread; in this thread once the interpreter is shutting down.

    jupyter_client shuts kernels down at exit (``jupyter run``), when no new
    thread may start: the call (a poll, a kill) is then made here, rather
    than failing with ``cannot schedule new futures after interpreter shutdown``.
    """
    try:
        future = asyncio.get_running_loop().run_in_executor(None, functools.partial(call, *args))
    except RuntimeError as exc:  # only the hand-over: an error of ``call`` itself is raised below
        if "interpreter shutdown" not in str(exc):
            raise
        return call(*args)
    return await future


def renew_lease(kv: Any, stop: threading.Event, interval: float, log: Any) -> None:
    """Write a new heartbeat into ``kv`` every ``interval`` seconds until ``stop`` is set.

    A failed write (a network blip, a busy master) is logged and tried again at the next beat:
    the lease lasts six beats. ``stop`` is set when the application has ended (poll) or by cleanup.
    """
    for n in itertools.count():
        try:
            kv[keys.KERNEL_HEARTBEAT] = str(n).encode()
        except Exception as exc:
            log.debug("heartbeat %d not written (%s); trying again in %.0fs", n, exc, interval)
        if stop.wait(interval):
            return


class YarnKernelProvisioner(KernelProvisionerBase):
    """Starts the kernel in a YARN container through Skein; see the module's documentation."""

    env = AnyTrait(None, allow_none=True)
    memory = AnyTrait(None, allow_none=True)
    vcores = AnyTrait(None, allow_none=True)
    gpus = AnyTrait(None, allow_none=True)
    queue = AnyTrait(None, allow_none=True)
    node_label = AnyTrait(None, allow_none=True)
    idle_timeout = AnyTrait(None, allow_none=True)
    lease = AnyTrait(None, allow_none=True)
    ssh_host = AnyTrait(None, allow_none=True)
    name = AnyTrait(None, allow_none=True)

    app_id: str | None = None
    _exit_code: int | None = None
    _polled_at = 0.0
    _heartbeat: threading.Event | None = None
    _tunnel: Any = None
    _idle_end: str | None = None
    _lease: int | None = None
    _ssh_host: str | None = None
    _remote: dict[str, Any] | None = None

    # ------------------------------------------------------------ launch

    @property
    def has_process(self) -> bool:
        return self.app_id is not None

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        kwargs.pop("extra_arguments", None)
        kwargs = await super().pre_launch(**kwargs)
        kwargs.setdefault("cmd", list(self.kernel_spec.argv))
        return kwargs

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        if self._idle_end:  # a client's automatic restart would start a new application every idle_timeout
            raise ApplicationError(f"kernel {self.kernel_id} ended after its idle timeout ({self._idle_end}); "
                                   "it is not started again: start a new kernel")
        cancelled = threading.Event()
        try:
            return await asyncio.to_thread(self._launch, cancelled)
        except asyncio.CancelledError:  # the thread sees it at its next look, and kills what it submitted
            cancelled.set()
            raise

    def _launch(self, cancelled: threading.Event) -> KernelConnectionInfo:
        from .launch import submit

        # Here, not on the event loop: validating may hash a local archive.
        options = kernel_options(**{key: getattr(self, key) for key in CONFIG_KEYS
                                    if getattr(self, key) is not None})
        recipe = kernel_recipe(self.kernel_id, options)
        client = skein_client()
        self._exit_code = None
        self.app_id = submit(recipe, client).app_id
        self.log.info("kernel %s: application %s", self.kernel_id, self.app_id)
        self._lease, self._ssh_host = recipe.kernel.lease, options.get("ssh_host")
        deadline = time.monotonic() + START_TIMEOUT  # one deadline for both waits
        try:
            app = self._wait_running(client, deadline, cancelled)
            self._start_heartbeat(app, recipe.kernel.lease)
            info = self._wait_connection(client, app, deadline, cancelled)
            self._remote = {name: info[name] for name in ("ip", *PORT_NAMES)}
            if self._ssh_host:
                info = self._forward(self._ssh_host, info)
        except BaseException:
            self._stop_heartbeat()
            from .launch import kill_quietly

            kill_quietly(client, self.app_id)
            raise
        self.connection_info = cast(KernelConnectionInfo, info)
        return self.connection_info

    def _ended(self, client) -> ApplicationError | bool | None:
        """The error to raise if the application ended; None if it runs; False if it is not running yet."""
        report = client.application_report(self.app_id)
        if str(report.state) in ("FINISHED", "FAILED", "KILLED"):
            return ApplicationError(f"kernel application {self.app_id} ended ({report.state}, "
                                    f"{report.final_status}) before the kernel started: {report.diagnostics}; "
                                    f"see `skein-jupyter logs {self.app_id}`")
        return None if str(report.state) == "RUNNING" else False

    def _check_cancelled(self, cancelled: threading.Event) -> None:
        if cancelled.is_set():
            raise ApplicationError(f"the start of kernel {self.kernel_id} was cancelled; its application "
                                   f"{self.app_id} is killed")

    def _wait_running(self, client, deadline: float, cancelled: threading.Event):
        while True:
            self._check_cancelled(cancelled)
            ended = self._ended(client)
            if isinstance(ended, ApplicationError):
                raise ended
            if ended is None:
                return client.connect(self.app_id, wait=False)
            if time.monotonic() > deadline:
                raise ApplicationError(f"kernel application {self.app_id} did not start within "
                                       f"{START_TIMEOUT:.0f}s (queue full?)")
            time.sleep(0.5)

    def _wait_connection(self, client, app, deadline: float, cancelled: threading.Event) -> dict[str, Any]:
        while True:
            self._check_cancelled(cancelled)
            try:
                value = app.kv.get(keys.KERNEL_CONNECTION)
            except Exception:  # the master went away: say why from the report below
                value = None
            if value is not None:
                info = json.loads(value)
                info["key"] = info["key"].encode()
                return info
            ended = self._ended(client)
            if isinstance(ended, ApplicationError):
                error = None
                try:
                    error = app.kv.get(keys.ERROR)
                except Exception:
                    pass
                raise ApplicationError(error.decode()) if error else ended
            if time.monotonic() > deadline:
                raise ApplicationError(f"the kernel of {self.app_id} published no connection info within "
                                       f"{START_TIMEOUT:.0f}s; see `skein-jupyter logs {self.app_id}`")
            time.sleep(0.25)

    def _forward(self, ssh_host: str, info: dict[str, Any]) -> dict[str, Any]:
        from .kernel_tunnel import open_tunnel

        self._tunnel = open_tunnel(ssh_host, info["ip"], [info[name] for name in PORT_NAMES])
        return {**info, "ip": "127.0.0.1", **dict(zip(PORT_NAMES, self._tunnel.local_ports))}

    # ------------------------------------------------------------ lease

    def _start_heartbeat(self, app, lease: int) -> None:
        self._stop_heartbeat()
        stop = self._heartbeat = threading.Event()
        # A thread, not a task: a synchronous KernelManager runs no event loop between calls.
        threading.Thread(target=renew_lease, args=(app.kv, stop, max(1.0, lease / 6), self.log),
                         name=f"skein-jupyter-lease-{self.app_id}", daemon=True).start()

    def _stop_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.set()
            self._heartbeat = None

    # ------------------------------------------------------------ the kernel's life

    def _poll(self) -> int | None:
        if self.app_id is None or self._exit_code is not None:
            return self._exit_code
        app_id = self.app_id
        if self._tunnel is not None and not self._tunnel.alive():
            self.log.warning("kernel %s: the SSH forward to %s ended; killing %s", self.kernel_id, self._ssh_host,
                             app_id)
            from .launch import kill_quietly

            with_client(lambda client: kill_quietly(client, app_id))
            self._exit_code = 1
            self._stop_heartbeat()
            return self._exit_code
        try:
            report = with_client(lambda client: client.application_report(app_id))
        except Exception as exc:  # the cluster is unreachable: not known dead; the next poll asks again
            self.log.warning("kernel %s: cannot ask YARN about %s: %s", self.kernel_id, app_id, exc)
            return None
        state, final = str(report.state), str(report.final_status)
        if state in ("FINISHED", "FAILED", "KILLED"):
            self._exit_code = 0 if final == "SUCCEEDED" else -signal.SIGKILL if final == "KILLED" else 1
            if final == "SUCCEEDED" and IDLE_END in str(report.diagnostics):
                self._idle_end = str(report.diagnostics).strip()
            self._stop_heartbeat()
        return self._exit_code

    async def poll(self) -> int | None:
        now = time.monotonic()
        if self._exit_code is None and now - self._polled_at < POLL_CACHE:
            return None
        self._polled_at = now
        return await _off_loop(self._poll)

    async def wait(self) -> int | None:
        while self.app_id is not None:
            code = await _off_loop(self._poll)
            if code is not None:
                return code
            await asyncio.sleep(POLL_CACHE)
        return None

    def _signal(self, signum: int) -> None:
        app_id = self.app_id
        try:
            app = with_client(lambda client: client.connect(app_id, wait=False))
            app.kv[keys.KERNEL_SIGNAL] = str(int(signum)).encode()
        except Exception as exc:  # ended already; poll() says so
            self.log.debug("signal %s to %s not sent: %s", signum, self.app_id, exc)

    async def send_signal(self, signum: int) -> None:
        """Ask the container to send ``signum`` to the kernel's process (0 sends nothing)."""
        if self.app_id is not None and signum and await self.poll() is None:
            await _off_loop(self._signal, signum)

    async def terminate(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGTERM)

    async def kill(self, restart: bool = False) -> None:
        if self.app_id is not None:
            from .launch import kill_quietly

            app_id = self.app_id
            await _off_loop(with_client, lambda client: kill_quietly(client, app_id))

    async def cleanup(self, restart: bool = False) -> None:
        self._stop_heartbeat()
        if self._tunnel is not None:
            tunnel, self._tunnel = self._tunnel, None
            await _off_loop(tunnel.close)
        if self.app_id is not None:
            try:
                if await _off_loop(self._poll) is None:
                    await self.kill(restart)  # e.g. a kernel that did not answer shutdown_request
            except Exception as exc:  # cleanup never raises: say what may be left running
                self.log.warning("kernel %s: could not end application %s (%s); "
                                 "`skein-jupyter kill %s` ends it", self.kernel_id, self.app_id, exc, self.app_id)
        self.app_id = None

    def get_shutdown_wait_time(self, recommended: float = 5.0) -> float:
        # After the kernel exits, YARN takes a few seconds to see its application end.
        return max(recommended, 30.0)

    def get_stable_start_time(self, recommended: float = 10.0) -> float:
        return max(recommended, 60.0)

    async def get_provisioner_info(self) -> dict[str, Any]:
        info = await super().get_provisioner_info()
        info.update(app_id=self.app_id, lease=self._lease, ssh_host=self._ssh_host, remote=self._remote)
        return info

    async def load_provisioner_info(self, provisioner_info: dict) -> None:
        """Take over a running kernel (another process started it): renew its lease, reopen its forward."""
        await super().load_provisioner_info(provisioner_info)
        self.app_id = provisioner_info.get("app_id")
        self._lease, self._ssh_host = provisioner_info.get("lease"), provisioner_info.get("ssh_host")
        self._remote = provisioner_info.get("remote")
        if self.app_id is not None:
            await asyncio.to_thread(self._reattach)

    def _reattach(self) -> None:
        app_id = self.app_id
        try:
            app = with_client(lambda client: client.connect(app_id, wait=False))
        except Exception as exc:  # ended meanwhile: poll() says so
            self.log.warning("kernel %s: cannot reach application %s: %s", self.kernel_id, app_id, exc)
            return
        if self._lease:
            self._start_heartbeat(app, int(self._lease))
        if self._ssh_host and self._remote:
            self.connection_info = cast(KernelConnectionInfo,
                                        self._forward(self._ssh_host, {**self.connection_info, **self._remote}))
