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
import sys
from typing import Any

DEPS_FILE = "skein_jupyter_deps.zip"


class WebHDFSError(Exception):
    """HDFS cannot be reached or refused a call; the message says which NameNode and why."""


def _import_webhdfs():
    deps = os.path.abspath(DEPS_FILE)
    if os.path.exists(deps) and deps not in sys.path:
        sys.path.append(deps)  # after site-packages: an environment's own fsspec wins
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


def connect(namenodes: list[str], user: str) -> Any:
    """A WebHDFS filesystem on the first of ``namenodes`` that answers as the active NameNode.

    ``namenodes`` are base URLs (``http://host:port``); a standby NameNode
    refuses reads, so each is asked for the root's status first.
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
            fs.info("/")
            return fs
        except Exception as exc:  # a standby, or a NameNode that is down: try the next
            errors.append(f"{url}: {short(exc)}")
    raise WebHDFSError("no NameNode answered over WebHDFS (" + "; ".join(errors) + ")")


def short(exc: BaseException) -> str:
    """One line of an HTTP or HDFS error, without the URL's query (which may hold a token)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "?" in text:
        text = text.split("?", 1)[0] + "?..."
    return text[:300]
