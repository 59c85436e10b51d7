"""The cluster filesystem on the client side: :mod:`.runtime.clusterfs` with the client's errors.

The one implementation is the runtime's (standard library only, shipped to
containers); this layer only turns its failures into the project's
exceptions: a permission problem is the user's to fix (:class:`UsageError`),
anything else is the cluster's (:class:`HdfsError`, exit code 3).
"""
from collections.abc import Sequence

from .exceptions import InfrastructureError, UsageError
from .runtime.clusterfs import GROUP, PRIVATE, PUBLIC, SHARES, ClusterFS, ancestors, is_own, join, share_modes

__all__ = ["HadoopFS", "HdfsError", "join", "ancestors", "is_own", "share_modes", "SHARES", "PRIVATE", "GROUP",
           "PUBLIC"]


class HdfsError(InfrastructureError):
    """An ``hdfs dfs`` command failed (exit code 3: a retry may help)."""


class HadoopFS(ClusterFS):
    """A few filesystem operations on HDFS (or any ``hadoop fs`` filesystem); see :class:`ClusterFS`."""

    missing_hdfs = ('`hdfs` is not on PATH; run on a Hadoop edge node, or eval "$(skein-jupyter sandbox env)" '
                    "for the sandbox")

    def error(self, args: Sequence[str] | None, message: str) -> Exception:
        if args is None:  # no `hdfs` here: the user's setup to fix
            return UsageError(message)
        if "Permission denied" in message or "AccessControlException" in message:
            writes = bool(args) and args[0] in ("-put", "-mkdir", "-chmod", "-rm", "-mv", "-cp", "-touchz")
            hint = ("choose a directory you can write to" if writes else
                    "it is private to its owner (ask them to share it: run.share: group)")
            return UsageError(f"{message}; {hint}, or ask your Hadoop admin")
        return HdfsError(message)
