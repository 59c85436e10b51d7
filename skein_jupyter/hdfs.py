"""The cluster filesystem on the client side: :mod:`.runtime.clusterfs` with the client's errors.

The one implementation is the runtime's (standard library only, shipped to
containers); this layer turns its failures into the project's exceptions: a
permission problem is the user's to fix (:class:`UsageError`), anything else
is the cluster's (:class:`HdfsError`, exit code 3).

On a cluster with simple authentication, the checks a launch makes before it
submits (exists, writable, a small file's content, creating a directory,
setting a mode) go over WebHDFS, one HTTP session per process, instead of an
``hdfs dfs`` JVM each (about 1.5 s of CPU, competing with the Skein driver's
start on the edge node). On a Kerberos cluster every call stays ``hdfs dfs``:
it carries the edge node's ticket as Hadoop's own client does. Any call
WebHDFS cannot make (NameNode unreachable, WebHDFS disabled, another cluster's
URL, a glob) falls back to ``hdfs dfs``, with the same answers and errors.
"""
from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any

from .exceptions import InfrastructureError, UsageError
from .runtime.clusterfs import GROUP, PRIVATE, PUBLIC, SHARES, ClusterFS, ancestors, is_own, join, share_modes

__all__ = ["HadoopFS", "HdfsError", "join", "ancestors", "is_own", "share_modes", "SHARES", "PRIVATE", "GROUP",
           "PUBLIC"]


class HdfsError(InfrastructureError):
    """An ``hdfs dfs`` command failed (exit code 3: a retry may help)."""


class _Unavailable(Exception):
    """WebHDFS cannot make this call here: ``hdfs dfs`` makes it."""


#: One WebHDFS filesystem per (user, proxy user) in this process; else when WebHDFS last failed to connect.
_SESSIONS: dict[tuple[str, str | None], Any] = {}
#: Seconds after a failed connection before this process tries WebHDFS again (``hdfs dfs`` meanwhile).
_RETRY_AFTER = 60.0
_LOCK = threading.Lock()
#: Seconds to connect and to wait for each answer: a slow NameNode falls back to ``hdfs dfs`` quickly.
_TIMEOUT = (5, 60)


def _webhdfs(proxy_user: str | None) -> Any:
    """The process's WebHDFS filesystem for ``proxy_user`` (or yourself); _Unavailable on Kerberos or failure."""
    from .identity import hadoop_user, security_enabled

    if security_enabled():
        raise _Unavailable("kerberos")
    from .workspaces import _site

    if not _site("core-site.xml").get("fs.defaultFS", "").startswith("hdfs://"):
        raise _Unavailable("the default filesystem is not HDFS (or there is no Hadoop configuration)")
    user = hadoop_user()
    key = (user, proxy_user)
    with _LOCK:
        fs = _SESSIONS.get(key)
        if fs is None or (isinstance(fs, float) and time.monotonic() - fs >= _RETRY_AFTER):
            try:
                fs = _connect(user, proxy_user)
            except Exception:  # no WebHDFS now: hdfs dfs makes the calls, until a retry a while later
                fs = time.monotonic()
            _SESSIONS[key] = fs
    if isinstance(fs, float):
        raise _Unavailable("no WebHDFS")
    return fs


def _connect(user: str, proxy_user: str | None) -> Any:
    from fsspec.implementations.webhdfs import WebHDFS

    from .runtime.webhdfs import _with_timeout
    from .workspaces import namenode_urls

    for url in namenode_urls():
        scheme, _, address = url.partition("://")
        host, _, port = address.rpartition(":")
        try:
            fs = WebHDFS(host, port=int(port), use_https=scheme == "https", skip_instance_cache=True, user=user,
                         proxy_to=proxy_user)
            _with_timeout(fs.session, _TIMEOUT)
            fs._call("GETFILESTATUS", path="/")  # a standby NameNode refuses: try the next
            return fs
        except Exception:
            continue
    raise _Unavailable("no NameNode answered over WebHDFS")


def _path(location: str) -> str:
    """The path of ``location`` on the default filesystem; _Unavailable for another filesystem or a glob."""
    from .workspaces import _default_authority

    parts = urllib.parse.urlsplit(str(location))
    if parts.scheme and (parts.scheme != "hdfs" or parts.netloc not in ("", _default_authority())):
        raise _Unavailable(location)
    if not parts.path.startswith("/") or any(c in parts.path for c in "*?[]{}\\") or parts.query or parts.fragment:
        raise _Unavailable(location)
    return parts.path


class HadoopFS(ClusterFS):
    """A few filesystem operations on HDFS (or any ``hadoop fs`` filesystem); see :class:`ClusterFS`."""

    missing_hdfs = ('`hdfs` is not on PATH; run on a Hadoop edge node, or eval "$(skein-jupyter sandbox env)" '
                    "for the sandbox")

    def __init__(self, executable: str | None = None, timeout: float = 600,
                 proxy_user: str | None = None) -> None:
        super().__init__(executable, timeout, proxy_user)
        #: An ``hdfs`` command given explicitly makes every call: WebHDFS only stands in for the default one.
        self.webhdfs = executable is None

    def error(self, args: Sequence[str] | None, message: str) -> Exception:
        if args is None:  # no `hdfs` here: the user's setup to fix
            return UsageError(message)
        if "Permission denied" in message or "AccessControlException" in message:
            writes = bool(args) and args[0] in ("-put", "-mkdir", "-chmod", "-rm", "-mv", "-cp", "-touchz")
            hint = ("choose a directory you can write to" if writes else
                    "it is private to its owner (ask them to share it: run.share: group)")
            return UsageError(f"{message}; {hint}, or ask your Hadoop admin")
        return HdfsError(message)

    # -- over WebHDFS where it can: each falls back to ``hdfs dfs`` (the base class) when it cannot

    def _web(self, command: str, location: str, call: Any) -> Any:
        """``call(fs, path)`` over WebHDFS; errors as ``hdfs dfs <command>`` on ``location`` would raise them."""
        import requests

        if not self.webhdfs:
            raise _Unavailable("an hdfs command given")
        fs, path = _webhdfs(self.proxy_user), _path(location)
        try:
            return call(fs, path)
        except PermissionError as exc:
            raise self.error((command, location), f"`hdfs dfs {command}` on {location} failed: Permission "
                                                  f"denied: {str(exc).splitlines()[0][:250]}") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise _Unavailable(str(exc)) from None
        except (RuntimeError, ValueError, requests.HTTPError) as exc:
            raise self.error((command, location), f"`hdfs dfs {command}` on {location} failed: "
                                                  f"{str(exc).splitlines()[0][:250] if str(exc) else exc}") from None

    def exists(self, path: str) -> bool:
        def call(fs: Any, p: str) -> bool:
            try:
                fs._call("GETFILESTATUS", path=p)
                return True
            except FileNotFoundError:
                return False
        try:
            return bool(self._web("-test", path, call))
        except _Unavailable:
            return super().exists(path)

    def writable(self, path: str) -> bool:
        def call(fs: Any, p: str) -> bool:
            try:
                fs._call("CHECKACCESS", path=p, fsaction="-w-")
                return True
            except (FileNotFoundError, PermissionError):
                return False
            except ValueError as exc:  # a NameNode without CHECKACCESS (older Hadoop): hdfs dfs answers
                raise _Unavailable(str(exc)) from None
        try:
            return bool(self._web("-test", path, call))
        except _Unavailable:
            return super().writable(path)

    def cat(self, *patterns: str) -> str:
        if len(patterns) == 1:
            def call(fs: Any, p: str) -> str:
                try:
                    return fs._call("OPEN", path=p).content.decode()  # one version: see webhdfs.HDFS.cat
                except FileNotFoundError:
                    return ""  # as `hdfs dfs -cat` of a pattern that matches nothing
            try:
                return str(self._web("-cat", patterns[0], call))
            except _Unavailable:
                pass
        return super().cat(*patterns)

    def mkdir(self, *paths: str, share: str | None = PRIVATE) -> None:
        modes = SHARES[share or PRIVATE]
        try:
            for path in paths:  # parents too, with the same mode (as `hdfs dfs -mkdir -p` under the share's umask)
                self._web("-mkdir", path, lambda fs, p: fs._call("MKDIRS", method="put", path=p,
                                                                 permission=modes.dir_mode))
        except _Unavailable:
            return super().mkdir(*paths, share=share)
        own = SHARES[PUBLIC if share == PUBLIC else PRIVATE].dir_mode
        for path in paths:
            if is_own(path):
                try:  # best effort, as in ClusterFS.mkdir: another user's directory is theirs to keep
                    self._web("-chmod", path, lambda fs, p: fs._call("SETPERMISSION", method="put", path=p,
                                                                     permission=own))
                except Exception:
                    pass

    def chmod(self, mode: str, *paths: str) -> None:
        if mode.isdigit():  # symbolic modes (a+rX) are hdfs dfs's to apply
            try:
                for path in paths:
                    self._web("-chmod", path, lambda fs, p: fs._call("SETPERMISSION", method="put", path=p,
                                                                     permission=mode))
                return
            except _Unavailable:
                pass
        super().chmod(mode, *paths)
