"""The cluster filesystem through ``hdfs dfs``: the one wrapper of both sides.

Hadoop's own client honours the configuration and credentials it finds as
they are: the edge node's Kerberos ticket on the client side, the
application's delegation tokens (``HADOOP_TOKEN_FILE_LOCATION``) in a
container, on secured clusters too. The client uses this module as
``skein_jupyter.runtime.clusterfs`` (through :mod:`skein_jupyter.hdfs`), the
container as ``skein_jupyter_runtime.clusterfs``, so it uses the standard
library only. Each call starts a JVM (about a second): callers batch paths.

Everything skein-jupyter writes is private unless a share says otherwise
(:data:`SHARES`): files 600 and directories 700 whatever the cluster's
umask, because every write runs with ``-D fs.permissions.umask-mode=…``
(a default ACL on a parent directory, where an admin set one, still wins:
that is HDFS's rule).
Directories that exist already keep their mode, except skein-jupyter's own
bookkeeping directories (a path with a ``.skein-jupyter`` component), which
:meth:`ClusterFS.mkdir` makes private explicitly.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import urllib.parse
from collections.abc import Iterable, Sequence

__all__ = ["ClusterFS", "ClusterFSError", "Share", "SHARES", "PRIVATE", "GROUP", "PUBLIC", "share_modes",
           "is_own", "ancestors", "mkdir", "put", "join"]

PRIVATE, GROUP, PUBLIC = "private", "group", "public"


@dataclasses.dataclass(frozen=True)
class Share:
    """Who may read what skein-jupyter writes: the umask of every write, the modes set explicitly."""

    name: str
    umask: str
    dir_mode: str
    file_mode: str


#: ``private`` (the default), ``group`` (a recipe's ``run.share: group``) and ``public``
#: (``env upload --public``, for YARN's public localization cache).
SHARES = {
    PRIVATE: Share(PRIVATE, "077", "700", "600"),
    GROUP: Share(GROUP, "027", "750", "640"),
    PUBLIC: Share(PUBLIC, "022", "755", "644"),
}

#: The name of skein-jupyter's own bookkeeping directories (runs index, environment cache).
OWN_DIRECTORY = ".skein-jupyter"


class ClusterFSError(Exception):
    """An ``hdfs dfs`` command failed, or there is no ``hdfs`` command."""


def share_modes(share: str | None) -> Share:
    """The :class:`Share` named ``share`` (``None``: private); ValueError naming the choices otherwise."""
    try:
        return SHARES[share or PRIVATE]
    except (KeyError, TypeError):
        raise ValueError(f"{share!r} is not a share; use one of {', '.join(SHARES)}") from None


def join(directory: str, name: str) -> str:
    return directory.rstrip("/") + "/" + name


def is_own(path: str) -> bool:
    """Whether ``path`` is one of skein-jupyter's bookkeeping directories (or inside one)."""
    return OWN_DIRECTORY in urllib.parse.urlsplit(path).path.split("/")


def ancestors(path: str) -> list[str]:
    """Every directory above ``path``, root first, keeping its scheme and authority.

    >>> ancestors("hdfs://nn:8020/apps/envs/a.tar.gz")
    ['hdfs://nn:8020/', 'hdfs://nn:8020/apps', 'hdfs://nn:8020/apps/envs']
    >>> ancestors("/user/alice/x")
    ['/', '/user', '/user/alice']
    """
    parts = urllib.parse.urlsplit(path)
    prefix = f"{parts.scheme}://{parts.netloc}" if parts.scheme else ""
    names = [name for name in parts.path.split("/") if name][:-1]
    return [prefix + "/" + "/".join(names[:depth]) for depth in range(len(names) + 1)]


def find_hdfs() -> str | None:
    """The ``hdfs`` command: on ``PATH``, else under the Hadoop homes YARN passes to containers."""
    found = shutil.which("hdfs")
    if found:
        return found
    for var in ("HADOOP_HDFS_HOME", "HADOOP_HOME", "HADOOP_COMMON_HOME", "HADOOP_PREFIX"):
        home = os.environ.get(var)
        if home and os.access(os.path.join(home, "bin", "hdfs"), os.X_OK):
            return os.path.join(home, "bin", "hdfs")
    return None


def reason(stderr: str) -> str:
    """The last meaningful line of an ``hdfs dfs`` error output (JVM warnings left out)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip() and " WARN " not in line]
    return lines[-1][:300] if lines else "no error output"


class ClusterFS:
    """Filesystem operations on HDFS (or any ``hadoop fs`` filesystem), one ``hdfs dfs`` JVM each.

    Subclasses change how failures are reported by overriding :meth:`error`.
    """

    missing_hdfs = ("no `hdfs` command (not on PATH, nor under HADOOP_HOME or HADOOP_HDFS_HOME); ask your "
                    "admin to add HADOOP_HOME to the NodeManager's yarn.nodemanager.env-whitelist")

    def __init__(self, executable: str | None = None, timeout: float = 600,
                 proxy_user: str | None = None) -> None:
        found = executable or find_hdfs()
        if found is None:
            raise self.error(None, self.missing_hdfs)
        self.executable: str = found
        self.timeout = timeout
        #: With a proxy user, every command acts as that user (Hadoop's ``HADOOP_PROXY_USER``), so what
        #: a launch writes for a job belongs to the user the job runs as.
        self.proxy_user = proxy_user
        self._env = dict(os.environ, HADOOP_PROXY_USER=proxy_user) if proxy_user else None

    def error(self, args: Sequence[str] | None, message: str) -> Exception:
        """The exception for a failed command (``args``, or None when there is no ``hdfs``)."""
        return ClusterFSError(message)

    def run(self, *args: str, share: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        """``hdfs dfs [-D umask] ARGS``; a ``share`` sets the umask of what the command creates."""
        options = ["-D", f"fs.permissions.umask-mode={share_modes(share).umask}"] if share else []
        try:
            proc = subprocess.run([self.executable, "dfs", *options, *args], capture_output=True, text=True,
                                  timeout=self.timeout, env=self._env)
        except subprocess.TimeoutExpired:
            raise self.error(args, f"`hdfs dfs {args[0]}` on {args[-1]} did not answer within "
                                   f"{self.timeout:.0f}s; check that HDFS is up (hdfs dfsadmin -report)") from None
        except OSError as exc:
            raise self.error(args, f"cannot run {self.executable}: {exc}") from None
        if check and proc.returncode != 0:
            raise self.error(args, f"`hdfs dfs {args[0]}` on {args[-1]} failed: {reason(proc.stderr)}")
        return proc

    # -- reading

    def exists(self, path: str) -> bool:
        return self.run("-test", "-e", path, check=False).returncode == 0

    def writable(self, path: str) -> bool:
        """Whether ``path`` exists and this user may write in it."""
        return self.run("-test", "-w", path, check=False).returncode == 0

    def stat(self, path: str, fmt: str = "%b %Y") -> str | None:
        """``hdfs dfs -stat`` output for ``path``, or None if it does not exist."""
        proc = self.run("-stat", fmt, path, check=False)
        return proc.stdout.strip() if proc.returncode == 0 else None

    def modes(self, *paths: str) -> dict[str, int]:
        """Permission bits of those of ``paths`` that exist, in one call.

        Paths that do not exist are left out; any other failure raises.
        """
        proc = self.run("-stat", "%a %F", *paths, check=False)
        problems = [line for line in proc.stderr.splitlines()
                    if line.strip() and " WARN " not in line and "No such file" not in line]
        if proc.returncode != 0 and problems:
            raise self.error(("-stat", *paths), f"`hdfs dfs -stat` on {' '.join(paths)} failed: "
                                                f"{reason(chr(10).join(problems))}")
        lines = [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]
        existing = [path for path in paths if self._not_missing(path, proc.stderr)]
        if len(existing) != len(lines):
            raise self.error(("-stat", *paths), f"`hdfs dfs -stat` on {' '.join(paths)} answered "
                                                f"{len(lines)} lines for {len(existing)} paths")
        return {path: int(mode, 8) for path, mode in zip(existing, lines)}

    @staticmethod
    def _not_missing(path: str, stderr: str) -> bool:
        return not any("No such file" in line and f"`{path}'" in line for line in stderr.splitlines())

    def cat(self, *patterns: str) -> str:
        """The concatenated contents of the files matching ``patterns``, in one call.

        A pattern that matches nothing contributes nothing; any other failure raises.
        """
        proc = self.run("-cat", *patterns, check=False)
        if proc.returncode != 0:
            problems = [line for line in proc.stderr.splitlines()
                        if line.strip() and " WARN " not in line and "No such file" not in line]
            if problems:
                raise self.error(("-cat", *patterns), f"`hdfs dfs -cat` on {' '.join(patterns)} failed: "
                                                      f"{reason(chr(10).join(problems))}")
        return proc.stdout

    def get(self, sources: Iterable[str | os.PathLike[str]], directory: str | os.PathLike[str]) -> None:
        """Copy files from the cluster into a local directory."""
        self.run("-get", "-f", *map(str, sources), str(directory))

    # -- writing: private unless a share says otherwise

    def mkdir(self, *paths: str, share: str | None = PRIVATE) -> None:
        """Create directories (and their parents) with the share's mode.

        Directories that exist keep their mode, but for skein-jupyter's own
        (:func:`is_own`), which are set explicitly: they may date from a
        version that wrote 755. They stay private for a group share too
        (their names would show every run); only a public share opens them.
        That step is best effort: a directory of another user (a proxy
        user's, seen from the submitting user) is theirs to keep.
        """
        self.run("-mkdir", "-p", *paths, share=share or PRIVATE)
        own = [path for path in paths if is_own(path)]
        if own:
            self.run("-chmod", SHARES[PUBLIC if share == PUBLIC else PRIVATE].dir_mode, *own, check=False)

    def put(self, sources: Iterable[str | os.PathLike[str]], destination: str, share: str | None = PRIVATE) -> None:
        """Copy local files into ``destination`` (a directory, or one path); replaces what is there.

        Each lands under a temporary name and is renamed when complete; the
        new file has the share's mode.
        """
        self.run("-put", "-f", *map(str, sources), destination, share=share or PRIVATE)

    def chmod(self, mode: str, *paths: str) -> None:
        self.run("-chmod", mode, *paths)

    def rm(self, *paths: str) -> None:
        self.run("-rm", "-f", "-skipTrash", *paths)


_DEFAULT = None


def _default() -> ClusterFS:
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = ClusterFS()
    return _DEFAULT


def mkdir(*paths: str, share: str | None = PRIVATE) -> None:
    """:meth:`ClusterFS.mkdir` with the default client (what the container uses)."""
    _default().mkdir(*paths, share=share)


def put(sources: Iterable[str | os.PathLike[str]], destination: str, share: str | None = PRIVATE) -> None:
    """:meth:`ClusterFS.put` with the default client (what the container uses)."""
    _default().put(sources, destination, share=share)
