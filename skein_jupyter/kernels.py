"""Kernelspecs whose kernels start in YARN containers: their options, and installing, listing, removing them.

A kernelspec of ours is an ordinary Jupyter ``kernel.json`` whose
``metadata.kernel_provisioner`` names this package's provisioner
(:data:`PROVISIONER_NAME`) with the options of :func:`kernel_config` as its
``config``. Any jupyter_client >= 7 client (JupyterLab, Notebook 7, nbclient,
papermill) then starts the kernel through
:class:`skein_jupyter.provisioner.YarnKernelProvisioner`, which checks the same
options again with :func:`kernel_config` at every launch.

Installing is ``jupyter kernelspec install`` for a kernel.json we write: into
the user's Jupyter data directory (the default), an environment's prefix
(``--sys-prefix``), or any prefix, through jupyter_client's
``KernelSpecManager``. Every option is checked before anything is written.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .environment import EnvironmentKind, EnvironmentRef
from .exceptions import UsageError
from .units import parse_duration_s, parse_memory_mb

__all__ = ["PROVISIONER_NAME", "CONFIG_KEYS", "InstalledKernel", "kernel_config", "kernel_spec",
           "default_kernel_name", "install_kernel", "list_kernels", "remove_kernel", "find_kernel", "sys_prefix"]

#: The name under which the package registers its provisioner (entry point group
#: ``jupyter_client.kernel_provisioners``), as a kernelspec's ``metadata.kernel_provisioner`` names it.
PROVISIONER_NAME = "skein-jupyter"

#: Every key of a kernel's ``config``, in the order :func:`kernel_config` returns them.
CONFIG_KEYS = ("env", "memory", "vcores", "gpus", "queue", "node_label", "idle_timeout", "lease", "ssh_host",
               "name")

#: A lease shorter than this would end kernels whose client is only slow (a laptop waking up, say).
MIN_LEASE_S = 10

_KERNEL_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")  # Jupyter's rule (lower case), one path component
_QUEUE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_SSH_HOST = re.compile(r"^(?:ssh://)?(?:[A-Za-z0-9._-]+@)?(?:[A-Za-z0-9][A-Za-z0-9._-]*|\[[0-9A-Fa-f:.]+\])"
                       r"(?::\d{1,5})?$")
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".zip", ".tar")


def _fail(option: str, message: str) -> UsageError:
    return UsageError(f"kernel option {option}: {message}")


def _env(value: Any) -> str:
    if value is None or value == "":
        raise _fail("env", "missing; give the packed environment: a published name (see `skein-jupyter env "
                           "list`), a local archive, or an hdfs:// URL")
    try:
        ref = EnvironmentRef.parse(value)
    except ValueError as exc:
        raise _fail("env", str(exc)) from None
    if ref.kind is not EnvironmentKind.LOCAL:
        return ref.value
    # The kernel starts from whatever directory the client runs in: keep the archive's absolute path.
    from .envstore import read_local_metadata

    path = Path(os.path.abspath(os.path.expanduser(ref.value)))
    try:
        read_local_metadata(path)
    except UsageError as exc:
        raise _fail("env", str(exc)) from None
    return str(path)


def _whole(option: str, value: Any, minimum: int) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(option, f"{value!r} is not a whole number of {minimum} or more")
    return value


def _memory(value: Any) -> int:
    try:
        return parse_memory_mb(value)
    except ValueError as exc:
        raise _fail("memory", f"{exc}; use e.g. 4GiB, 512MiB, or a number of MiB") from None


def _duration(option: str, value: Any) -> int:
    try:
        return parse_duration_s(value)
    except ValueError as exc:
        raise _fail(option, f"{exc}; use e.g. 90s, 15m, 2h, or a number of seconds") from None


def _lease(value: Any) -> int:
    seconds = _duration("lease", value)
    if seconds < MIN_LEASE_S:
        raise _fail("lease", f"{seconds}s is too short for a client to renew it; use {MIN_LEASE_S}s or more")
    return seconds


def _printable(option: str, value: Any) -> str:
    if not isinstance(value, str) or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise _fail(option, f"{value!r} is not one line of text")
    return value


def _queue(value: Any) -> str:
    if not isinstance(value, str) or not _QUEUE.match(value):
        raise _fail("queue", f"{value!r} is not a YARN queue name; use letters, digits, '_', '-' and '.' "
                             "(e.g. default or root.analytics)")
    return value


def _ssh_host(value: Any) -> str | None:
    if value == "":
        return None
    if not isinstance(value, str) or not _SSH_HOST.match(value):
        raise _fail("ssh_host", f"{value!r} is not an SSH destination; use HOST, USER@HOST, an alias from your "
                                "~/.ssh/config, or ssh://USER@HOST:PORT")
    return value


def _name(value: Any) -> str:
    if not isinstance(value, str) or not _KERNEL_NAME.match(value):
        raise _fail("name", f"{value!r} is not a kernel name; use lower-case letters, digits, '.', '_' and "
                            "'-' (at most 64, starting with a letter or digit)")
    return value


def default_kernel_name(env: str) -> str:
    """``yarn-<environment>``: the environment's name, or its archive's name without the suffix.

    >>> default_kernel_name("analytics"), default_kernel_name("hdfs:///envs/Team_ML-3f2a.tar.gz")
    ('yarn-analytics', 'yarn-team_ml-3f2a')
    """
    base = env.rstrip("/").rsplit("/", 1)[-1]
    for suffix in _ARCHIVE_SUFFIXES:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    base = re.sub(r"[^a-z0-9._-]+", "-", base.lower()).strip("-.") or "env"
    return f"yarn-{base}"[:64]


def kernel_config(**options: Any) -> dict[str, Any]:
    """The checked ``config`` of a kernel: the options given (None: not given), normalized.

    Keys are :data:`CONFIG_KEYS`: ``env`` (required: a published name, a
    local archive, made absolute, or an ``hdfs://``/``viewfs://`` archive
    URL), ``memory`` (MiB; ``"4GiB"`` accepted), ``vcores``, ``gpus``,
    ``queue``, ``node_label``, ``idle_timeout`` (seconds: the container ends
    a kernel that ran no code that long), ``lease`` (seconds, at least 10:
    the application ends when its client has not renewed the lease that
    long), ``ssh_host`` (where to forward the kernel's ports through) and
    ``name`` (the kernelspec's name; ``yarn-<env>`` by default). Options not
    given are left out: the provisioner takes them from the user's
    configuration (``kind: kernel``) at launch. The result is given back
    unchanged: ``kernel_config(**kernel_config(**o)) == kernel_config(**o)``.
    Nothing on the cluster is contacted (a published name is resolved when
    the kernel starts).

    Raises
    ------
    UsageError
        One line naming the option, what is wrong, and what to write.
    """
    unknown = sorted(set(options) - set(CONFIG_KEYS))
    if unknown:
        raise UsageError(f"unknown kernel option {unknown[0]!r}; the options are {', '.join(CONFIG_KEYS)}")
    given = {key: value for key, value in options.items() if value is not None}
    checks: dict[str, Callable[[Any], Any]] = {
        "memory": _memory,
        "vcores": lambda value: _whole("vcores", value, 1),
        "gpus": lambda value: _whole("gpus", value, 0),
        "queue": _queue,
        "node_label": lambda value: _printable("node_label", value),
        "idle_timeout": lambda value: _duration("idle_timeout", value),
        "lease": _lease,
        "ssh_host": _ssh_host,
        "name": _name,
    }
    config: dict[str, Any] = {"env": _env(given.get("env"))}
    for key in CONFIG_KEYS[1:]:
        if key in given:
            config[key] = checks[key](given[key])
    config.setdefault("name", default_kernel_name(config["env"]))
    return {key: value for key, value in config.items() if value is not None}


def _display_name(display_name: str | None, config: Mapping[str, Any]) -> str:
    if display_name is None:
        env = str(config["env"]).rstrip("/").rsplit("/", 1)[-1]
        env = next((env[: -len(suffix)] for suffix in _ARCHIVE_SUFFIXES if env.endswith(suffix)), env)
        return f"Python on YARN ({env})"
    if not display_name.strip():
        raise UsageError("--display-name is empty; give the name Jupyter shows, e.g. 'Python on YARN (analytics)'")
    return _printable("display_name", display_name)


def kernel_spec(config: Mapping[str, Any], display_name: str | None = None) -> dict[str, Any]:
    """The ``kernel.json`` of a kernel with ``config`` (as :func:`kernel_config` returns it).

    ``argv`` is what the provisioner runs in the container (``python`` of the
    packed environment); ``interrupt_mode: message`` because no signal can
    reach a container.
    """
    return {
        "argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": _display_name(display_name, config),
        "language": "python",
        "interrupt_mode": "message",
        "metadata": {"kernel_provisioner": {"provisioner_name": PROVISIONER_NAME, "config": dict(config)}},
    }


@dataclasses.dataclass(frozen=True)
class InstalledKernel:
    """One of our kernelspecs as Jupyter finds it."""

    name: str
    resource_dir: str
    display_name: str
    config: dict

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _ours(spec: Any) -> dict | None:
    """The provisioner ``config`` of a kernel.json that names our provisioner, else None."""
    provisioner = spec.get("metadata", {}).get("kernel_provisioner") if isinstance(spec, dict) else None
    if not isinstance(provisioner, dict) or provisioner.get("provisioner_name") != PROVISIONER_NAME:
        return None
    config = provisioner.get("config")
    return config if isinstance(config, dict) else {}


def _read(resource_dir: str) -> dict | None:
    try:
        spec = json.loads((Path(resource_dir) / "kernel.json").read_text())
    except (OSError, ValueError):
        return None
    return spec if isinstance(spec, dict) else None


def _manager() -> Any:
    try:
        from jupyter_client.kernelspec import KernelSpecManager
    except ImportError:
        raise UsageError("kernels need jupyter_client in this Python environment; pip install "
                         "'jupyter_client>=7'") from None
    # Only kernelspecs on disk: not the python3 kernel ipykernel adds when none is installed.
    return KernelSpecManager(ensure_native_kernel=False)


def _destination(name: str, user: bool, prefix: str | os.PathLike[str] | None) -> Path:
    """Where jupyter_client installs kernel ``name`` (its own rule, so the checks look where it writes)."""
    return Path(_manager()._get_destination_dir(name, user=user, prefix=None if prefix is None else str(prefix)))


def _check_destination(destination: Path, name: str, replace: bool) -> None:
    if destination.exists():
        existing = _read(str(destination))
        if existing is None or _ours(existing) is None:
            raise UsageError(f"{destination} is a kernelspec that is not a skein-jupyter kernel; choose another "
                             "--name")
        if not replace:
            raise UsageError(f"kernel {name} is installed already ({destination}); pass --replace to "
                             "replace it, or choose another --name")


def install_kernel(options: Mapping[str, Any], display_name: str | None = None, user: bool = True,
                   prefix: str | os.PathLike[str] | None = None, replace: bool = False,
                   check_cluster: bool = True) -> InstalledKernel:
    """Check ``options`` (:func:`kernel_config`) and install their kernelspec.

    Parameters
    ----------
    options : mapping
        Keyword arguments of :func:`kernel_config`; ``env`` is required.
    display_name : str, optional
        What Jupyter shows [default: ``Python on YARN (<env>)``].
    user : bool
        Into the user's Jupyter data directory (``jupyter --data-dir``); with
        ``user=False`` and no prefix, system-wide.
    prefix : path, optional
        Into ``<prefix>/share/jupyter/kernels`` (``sys.prefix`` for ``--sys-prefix``).
    replace : bool
        Replace a kernel of ours of the same name there (never another kernelspec).
    check_cluster : bool
        Ask the cluster first (:func:`check_against_cluster`); without, those
        checks happen only when the kernel starts (e.g. installing offline).

    Raises
    ------
    UsageError
        A bad option, or a kernelspec of that name there already. Nothing is written then.
    """
    config = kernel_config(**options)
    spec = kernel_spec(config, display_name)
    if prefix is not None:
        user = False
    destination = _destination(config["name"], user, prefix)
    _check_destination(destination, config["name"], replace)
    if check_cluster:
        check_against_cluster(config)
    with tempfile.TemporaryDirectory(prefix="skein-jupyter-kernel-") as tmp:
        source = Path(tmp) / config["name"]
        source.mkdir()
        (source / "kernel.json").write_text(json.dumps(spec, indent=1, sort_keys=True) + "\n")
        try:
            installed = _manager().install_kernel_spec(str(source), config["name"], user=user,
                                                       prefix=None if prefix is None else str(prefix))
        except PermissionError:
            where = "--user or --prefix" if not user else "--prefix"
            raise UsageError(f"no permission to write {destination.parent}; install with {where}") from None
    return InstalledKernel(config["name"], installed, spec["display_name"], config)


def check_against_cluster(config: Mapping[str, Any], client: Any = None) -> None:
    """What only the cluster can say about a kernel's ``config`` (from :func:`kernel_config`).

    The environment exists (a published or own name, an ``hdfs://``
    archive), the queue exists, and the container fits the cluster's
    maximum allocation with your configuration applied, as at the kernel's
    start. Raises :class:`UsageError` naming the option and the fix, or
    :class:`InfrastructureError` when the cluster cannot be asked (both say
    ``--no-check`` installs without asking).
    """
    import shutil

    from .exceptions import InfrastructureError

    offline = "or pass --no-check to install without asking the cluster (the kernel's start checks it then)"
    missing = [tool for tool in ("hdfs", "yarn") if shutil.which(tool) is None]
    if missing:
        raise UsageError(f"cannot ask the cluster about this kernel: `{missing[0]}` is not on PATH; run on a "
                         f"Hadoop edge node (for the sandbox: eval \"$(skein-jupyter sandbox env)\"), {offline}")
    try:
        _ask_cluster(config, client)
    except InfrastructureError as exc:
        raise InfrastructureError(f"{exc}; {offline}") from None


def _ask_cluster(config: Mapping[str, Any], client: Any) -> None:
    from .envstore import resolve_name
    from .hdfs import HadoopFS
    from .launch import skein_client
    from .provisioner import kernel_recipe
    from .spec import check_cluster_limits

    ref = EnvironmentRef.parse(str(config["env"]))
    if ref.kind is EnvironmentKind.NAME:
        try:
            resolve_name(ref.value)
        except UsageError as exc:
            raise _fail("env", str(exc)) from None
    elif ref.kind is EnvironmentKind.HDFS and not HadoopFS().exists(ref.value):
        raise _fail("env", f"{ref.value} does not exist; see `skein-jupyter env list`, or upload an archive "
                           "with `skein-jupyter env upload`")
    recipe = kernel_recipe("install-check", dict(config))
    if client is not None:
        check_cluster_limits(recipe, client)
    else:
        with skein_client(recipe) as client:
            check_cluster_limits(recipe, client)


def list_kernels() -> list[InstalledKernel]:
    """Our kernelspecs as Jupyter finds them (a name shadowed by another directory is not listed), by name."""
    found = []
    for name, resource_dir in sorted(_manager().find_kernel_specs().items()):
        spec = _read(resource_dir)
        config = _ours(spec) if spec is not None else None
        if spec is not None and config is not None:
            found.append(InstalledKernel(name, resource_dir, str(spec.get("display_name", name)), config))
    return found


def find_kernel(name: str) -> InstalledKernel:
    """Our kernelspec ``name``.

    Raises
    ------
    UsageError
        No kernelspec of that name, or it is not one of ours.
    """
    resource_dir = _manager().find_kernel_specs().get(name.lower() if isinstance(name, str) else name)
    if resource_dir is None:
        ours = ", ".join(kernel.name for kernel in list_kernels()) or "none installed"
        raise UsageError(f"no kernel named {name!r} (skein-jupyter kernels: {ours}); see `skein-jupyter "
                         "kernel list`")
    spec = _read(resource_dir)
    config = _ours(spec) if spec is not None else None
    if spec is None or config is None:
        raise UsageError(f"kernel {name!r} ({resource_dir}) is not a skein-jupyter kernel; remove it with "
                         f"`jupyter kernelspec remove {name}`")
    return InstalledKernel(name.lower(), resource_dir, str(spec.get("display_name", name)), config)


def remove_kernel(name: str) -> InstalledKernel:
    """Remove our kernelspec ``name`` (the one Jupyter finds first); what was removed.

    Raises
    ------
    UsageError
        As :func:`find_kernel`; nothing is removed then.
    """
    kernel = find_kernel(name)
    _manager().remove_kernel_spec(kernel.name)
    return kernel


def sys_prefix() -> str:
    """Where ``--sys-prefix`` installs: this Python's environment."""
    return sys.prefix
