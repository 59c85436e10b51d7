"""HDFS from inside a container over WebHDFS: no JVM, one HTTP session for every call.

The client is fsspec's WebHDFS filesystem (``fsspec.implementations.webhdfs``):
a maintained, pure-Python WebHDFS client on ``requests`` that speaks simple
authentication (``user.name``), delegation tokens (``delegation=``) and, on an
edge node, Kerberos/SPNEGO. fsspec ships with the runtime in its own archive
(``skein_jupyter_deps.zip``), appended to ``sys.path`` here and never put on
``PYTHONPATH``, so kernels keep the environment's own packages; ``requests``
comes from the environment (JupyterLab and Notebook 7 depend on it).

In a container on a secured cluster there is no Kerberos ticket: the
application's HDFS delegation token (``HADOOP_TOKEN_FILE_LOCATION``)
authenticates, as the token's owner. Under simple authentication the job's
user is named.
"""
from __future__ import annotations

import os
import re
import sys
from typing import IO, Any, Callable

DEPS_FILE = "skein_jupyter_deps.zip"


class WebHDFSError(Exception):
    """HDFS cannot be reached or refused a call; the message says which NameNode and why."""


def _import_webhdfs():
    deps = os.path.abspath(DEPS_FILE)
    if os.path.exists(deps) and deps not in sys.path:
        # First in this process (an environment's older fsspec could lack what is used here);
        # never on PYTHONPATH, so kernels import the environment's own packages.
        sys.path.insert(0, deps)
    try:
        from fsspec.implementations.webhdfs import WebHDFS
    except ImportError as exc:
        raise WebHDFSError(f"the environment lacks {exc.name or 'requests'} for WebHDFS; install requests "
                           "in it and pack it again (JupyterLab and Notebook 7 bring it)") from None
    return WebHDFS


def _delegation_token() -> str | None:
    """The application's HDFS delegation token (secured clusters), or None."""
    from .tokens import hdfs_delegation_token

    return hdfs_delegation_token()


class HDFS:
    """The calls a workspace makes, over one fsspec WebHDFS filesystem; reconnects after a failover.

    Every path is absolute. Renames say whether they happened (WebHDFS answers
    ``false`` rather than failing when the target exists), or replace the
    target atomically with ``overwrite``.
    """

    def __init__(self, connect: Callable[[], Any]):
        self._connect = connect
        self.fs = connect()

    def reconnect(self) -> None:
        """Find the active NameNode again (after a failover, or a NameNode restart)."""
        self.fs = self._connect()

    def status(self, path: str) -> dict | None:
        """``{"type": "FILE"|"DIRECTORY", "modificationTime": ms, ...}``, or None if nothing is there."""
        try:
            return self.fs._call("GETFILESTATUS", path=path).json()["FileStatus"]
        except FileNotFoundError:
            return None

    def list(self, path: str) -> list[dict]:
        """The entries of a directory: ``pathSuffix``, ``type`` (``FILE``/``DIRECTORY``), ``modificationTime``."""
        return self.fs._call("LISTSTATUS", path=path).json()["FileStatuses"]["FileStatus"]

    def mkdir(self, path: str, mode: str = "700") -> None:
        self.fs._call("MKDIRS", method="put", path=path, permission=mode)

    def chmod(self, path: str, mode: str) -> None:
        self.fs._call("SETPERMISSION", method="put", path=path, permission=mode)

    def write(self, path: str, source: IO[bytes] | bytes, overwrite: bool = True, createparent: bool = True,
              mode: str = "600") -> None:
        """Create or replace the file ``path`` (``mode``, 600 by default) with ``source``'s bytes: two requests.

        ``overwrite=False``: FileExistsError if ``path`` exists (an exclusive
        create). ``createparent=False``: FileNotFoundError if its directory is gone.
        """
        try:
            created = self.fs._call("CREATE", method="put", path=path, redirect=False,
                                    overwrite="true" if overwrite else "false", permission=mode,
                                    createparent="true" if createparent else "false")
        except RuntimeError as exc:  # fsspec's answer to a RemoteException it does not map
            if "already exists" in str(exc) or "FileAlreadyExists" in str(exc):
                raise FileExistsError(path) from None
            raise
        sent = self.fs.session.put(created.headers["Location"], data=source,
                                   headers={"content-type": "application/octet-stream"})
        sent.raise_for_status()

    def read(self, path: str, sink: IO[bytes]) -> None:
        with self.fs.open(path, "rb") as source:
            while chunk := source.read(4 << 20):
                sink.write(chunk)

    def cat(self, path: str) -> bytes:
        """The whole file, in one request: one version of it even while it is replaced (a rename over it).

        fsspec's ``cat_file`` asks for the size first, then reads that many
        bytes by path: a file replaced in between came back cut short or mixed.
        """
        return self.fs._call("OPEN", path=path).content

    def rename(self, source: str, target: str, overwrite: bool = False) -> bool:
        """Rename; False if ``target`` exists and ``overwrite`` is not given (WebHDFS's own answer)."""
        if overwrite:
            self.fs._call("RENAME", method="put", path=source, destination=target, renameoptions="OVERWRITE")
            return True
        return bool(self.fs._call("RENAME", method="put", path=source, destination=target).json()["boolean"])

    def delete(self, path: str, recursive: bool = False) -> bool:
        return bool(self.fs._call("DELETE", method="delete", path=path,
                                  recursive="true" if recursive else "false").json()["boolean"])


class Outputs:
    """A run's writes (``mkdir``, ``put``) over one WebHDFS session: what :mod:`.clusterfs` does with a JVM each.

    Modes are a share's (:data:`.clusterfs.SHARES`: 700/600 when private),
    set on what is created; a file lands under a temporary name and is
    renamed over the target when complete, as ``hdfs dfs -put`` does.
    Errors carry no URL query (which may hold a delegation token).
    """

    def __init__(self, namenodes: list[str], user: str) -> None:
        self.hdfs = HDFS(lambda: connect(namenodes, user))

    @staticmethod
    def handles(path: str) -> bool:
        """Whether ``path`` is on the default filesystem (``/a/b`` or ``hdfs:///a/b``), which WebHDFS reaches."""
        return path.startswith("/") or path.startswith("hdfs:///")

    @staticmethod
    def _path(path: str) -> str:
        return path[len("hdfs://"):] if path.startswith("hdfs:///") else path

    def _retry(self, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except (WebHDFSError, FileNotFoundError, FileExistsError):
            raise
        except Exception:  # a failover or a dropped connection: once more on the active NameNode
            try:
                self.hdfs.reconnect()
                return call()
            except Exception as exc:
                raise WebHDFSError(short(exc)) from None

    def mkdir(self, *paths: str, share: str | None = None) -> None:
        from .clusterfs import PUBLIC, SHARES, is_own, share_modes

        modes = share_modes(share)
        for path in map(self._path, paths):
            self._retry(lambda: self.hdfs.mkdir(path, modes.dir_mode))
            if is_own(path):  # bookkeeping directories stay private unless public (see clusterfs.mkdir)
                own = SHARES[PUBLIC if modes.name == PUBLIC else "private"].dir_mode
                try:
                    self.hdfs.chmod(path, own)
                except Exception:  # best effort, as with hdfs dfs: another user's directory
                    pass

    def put(self, sources: list[str], destination: str, share: str | None = None) -> None:
        """Copy local files into the directory ``destination`` (ending in ``/``), or to the one path ``destination``."""
        from .clusterfs import share_modes

        mode = share_modes(share).file_mode
        destination = self._path(destination)
        for source in sources:
            target = destination + os.path.basename(source) if destination.endswith("/") else destination
            partial = target + "._COPYING_"

            def send(source: str = source, target: str = target, partial: str = partial) -> None:
                with open(source, "rb") as f:
                    self.hdfs.write(partial, f, overwrite=True, createparent=False, mode=mode)
                self.hdfs.rename(partial, target, overwrite=True)

            self._retry(send)


#: Seconds to connect, and to wait for each answer, on every WebHDFS request (not a bound on a whole transfer).
TIMEOUT = (30, 120)


def _with_timeout(session: Any, timeout: Any) -> None:
    """Give every request of a ``requests`` session a default timeout (a caller's own one wins)."""
    request = session.request

    def bounded(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", timeout)
        return request(*args, **kwargs)

    session.request = bounded


def connect(namenodes: list[str], user: str, timeout: Any = TIMEOUT) -> Any:
    """A WebHDFS filesystem on the first of ``namenodes`` that answers as the active NameNode.

    ``namenodes`` are base URLs (``http://host:port``); a standby NameNode
    refuses reads, so each is asked for the root's status first. Every
    request has ``timeout`` (connect, read) seconds: a NameNode or DataNode
    that stops answering fails the call rather than hanging it.
    """
    WebHDFS = _import_webhdfs()
    errors = []
    for url in namenodes:
        scheme, _, address = url.partition("://")
        host, _, port = address.rpartition(":")
        token = _delegation_token()
        auth = {"token": token} if token else {"user": user}
        try:
            fs = WebHDFS(host, port=int(port), use_https=scheme == "https", skip_instance_cache=True, **auth)
            _with_timeout(fs.session, timeout)
            fs.info("/")
            return fs
        except Exception as exc:  # a standby, or a NameNode that is down: try the next
            errors.append(f"{url}: {short(exc)}")
    raise WebHDFSError("no NameNode answered over WebHDFS (" + "; ".join(errors) + ")")


_SECRET = re.compile(r"((?:delegation|token)=)[^&\s'\")]+", re.IGNORECASE)


def short(exc: BaseException | str) -> str:
    """One line of an HTTP or HDFS error, without a URL's query (which may hold a token), at most 300 characters."""
    whole = _SECRET.sub(r"\1...", str(exc).strip())
    text = whole.splitlines()[0] if whole else type(exc).__name__
    if "?" in text:
        text = text.split("?", 1)[0] + "?..."
    return text[:300]
