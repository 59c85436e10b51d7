"""Where the sandbox lives, which ports it uses, and how big its one node is.

Layers, lowest first: packaged defaults, the ``sandbox.json`` saved by the
last ``sandbox up`` in the sandbox directory, ``SKEIN_JUPYTER_SANDBOX_*``
environment variables, then explicit arguments (command-line flags).
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from ..exceptions import UsageError
from ..paths import cache_dir

__all__ = ["SandboxConfig", "DEFAULT_PORTS", "default_root"]

HADOOP_VERSION = "3.5.0"

#: Every port the four daemons listen on, by a name used in flags and errors.
#: The defaults are Hadoop's own, so the web UIs are where Hadoop users look.
DEFAULT_PORTS = {
    "namenode": 9000,
    "namenode.http": 9870,
    "datanode": 9866,
    "datanode.http": 9864,
    "datanode.ipc": 9867,
    "resourcemanager": 8032,
    "resourcemanager.scheduler": 8030,
    "resourcemanager.tracker": 8031,
    "resourcemanager.admin": 8033,
    "resourcemanager.http": 8088,
    "nodemanager": 8041,
    "nodemanager.localizer": 8040,
    "nodemanager.http": 8042,
}

_SAVED = "sandbox.json"


def _xdg(var: str, fallback: str) -> Path:
    value = os.environ.get(var)
    return Path(value) if value else Path.home() / fallback


def default_root() -> Path:
    """The sandbox directory: ``$SKEIN_JUPYTER_SANDBOX_DIR`` or ``$XDG_DATA_HOME/skein-jupyter/sandbox``."""
    value = os.environ.get("SKEIN_JUPYTER_SANDBOX_DIR")
    if value:
        return Path(value).expanduser().absolute()
    return _xdg("XDG_DATA_HOME", ".local/share") / "skein-jupyter" / "sandbox"


def parse_ports(text):
    """Parse ``name=port[,name=port...]`` into a dict, checking names and numbers."""
    ports = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in DEFAULT_PORTS:
            known = ", ".join(sorted(DEFAULT_PORTS))
            raise UsageError(f"unknown sandbox port {item!r}; use NAME=PORT with NAME one of: {known}")
        try:
            port = int(value)
        except ValueError:
            port = -1
        if not 0 < port < 65536:
            raise UsageError(f"sandbox port {name}={value!r} is not a port number; use 1-65535")
        ports[name] = port
    return ports


@dataclasses.dataclass(frozen=True)
class SandboxConfig:
    """Settings of one sandbox. Immutable: :meth:`replace` returns a new one.

    Parameters
    ----------
    root : Path
        The sandbox directory: configuration, data, logs and pid files.
    cache_dir : Path
        Where Hadoop jars fetched from Maven are kept, shared by sandboxes.
    hadoop_version : str
        The Apache Hadoop release assembled from Maven Central.
    ports : dict
        Port of each listener, keyed by the names in :data:`DEFAULT_PORTS`.
    nodemanager_memory_mb, nodemanager_vcores : int
        Resources the one NodeManager offers to containers.
    gpus : int
        How many ``yarn.io/gpu`` the NodeManager declares (a countable resource:
        no GPU hardware and no nvidia-smi needed). 0 means the cluster has no
        GPU resource type at all.
    min_free_disk_mb : int
        ``up`` refuses to start with less free disk than this, rather than let
        the NodeManager turn UNHEALTHY and applications wait forever.
    maven_mirror : str or None
        A Maven repository URL to fetch from instead of Maven Central
        (e.g. a company Nexus or Artifactory).
    java_home : str or None
        The JDK to run Hadoop with; found automatically when not given.
    """

    root: Path = dataclasses.field(default_factory=default_root)
    cache_dir: Path = dataclasses.field(default_factory=cache_dir)
    hadoop_version: str = HADOOP_VERSION
    ports: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_PORTS))
    nodemanager_memory_mb: int = 8192
    nodemanager_vcores: int = 8
    gpus: int = 0
    min_free_disk_mb: int = 1024
    maven_mirror: str | None = None
    java_home: str | None = None

    # Layout of the sandbox directory. Short names keep the expanded
    # classpath, which Skein passes in one environment variable, small.
    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    @property
    def conf_dir(self) -> Path:
        return self.root / "etc" / "hadoop"

    @property
    def lib_dir(self) -> Path:
        return self.root / "lib"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def jar_cache(self) -> Path:
        return self.cache_dir / f"hadoop-{self.hadoop_version}"

    @property
    def hdfs_url(self) -> str:
        return f"hdfs://localhost:{self.ports['namenode']}"

    def web_url(self, port_name: str) -> str:
        return f"http://localhost:{self.ports[port_name]}"

    def replace(self, **changes: Any) -> SandboxConfig:
        """A copy with ``changes`` applied; ``ports`` is merged, not replaced."""
        if "ports" in changes:
            changes["ports"] = {**self.ports, **changes["ports"]}
        return dataclasses.replace(self, **changes)

    @classmethod
    def load(cls, root: str | os.PathLike[str] | None = None, **overrides: Any) -> SandboxConfig:
        """Defaults, then the saved ``sandbox.json``, then the environment, then ``overrides``."""
        root = Path(root).expanduser().absolute() if root else default_root()
        config = cls(root=root)
        saved = root / _SAVED
        if saved.is_file():
            data = json.loads(saved.read_text())
            known = {f.name for f in dataclasses.fields(cls)} - {"root", "cache_dir"}
            config = config.replace(**{k: v for k, v in data.items() if k in known})
        env = {}
        if os.environ.get("SKEIN_JUPYTER_SANDBOX_PORTS"):
            env["ports"] = parse_ports(os.environ["SKEIN_JUPYTER_SANDBOX_PORTS"])
        if os.environ.get("SKEIN_JUPYTER_MAVEN_MIRROR"):
            env["maven_mirror"] = os.environ["SKEIN_JUPYTER_MAVEN_MIRROR"]
        config = config.replace(**env)
        overrides = {k: v for k, v in overrides.items() if v is not None}
        return config.replace(**overrides)

    @classmethod
    def saved(cls, root: str | os.PathLike[str]) -> dict:
        """The settings the last ``up`` recorded in ``root`` (those of a running sandbox), or {}."""
        path = Path(root) / _SAVED
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return {}

    def save(self) -> None:
        """Record the settings in the sandbox directory, for later commands."""
        data = dataclasses.asdict(self)
        data.pop("root")
        data.pop("cache_dir")
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / _SAVED).write_text(json.dumps(data, indent=2, default=str) + "\n")
