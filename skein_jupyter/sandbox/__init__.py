"""A real single-node Hadoop cluster (HDFS + YARN) from Apache jars on Maven Central."""
from .cluster import DaemonStatus, Sandbox, UpResult
from .config import DEFAULT_PORTS, SandboxConfig

__all__ = ["Sandbox", "SandboxConfig", "DaemonStatus", "UpResult", "DEFAULT_PORTS"]
