"""Workspaces: HDFS directories that notebook servers work in, so nothing saved is lost.

A workspace is named (``default``, ``--workspace NAME``: a directory under
``/user/<you>/skein-jupyter/workspaces``) or given as an ``hdfs://`` URL. The
server's container copies it in before the server answers and sends every
change back (:mod:`skein_jupyter.runtime.workspace`); this module is the
client's side: where a workspace is, which NameNodes the container talks to,
refusing a second live server on one workspace, and listing workspaces.
"""
from __future__ import annotations

import hashlib
import json
import posixpath
import re
import time
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from .exceptions import UsageError
from .runtime.job import WorkspaceJob
from .runtime.workspace import LAST_USED, LOCK, META_DIR, NAMED_DIR

if TYPE_CHECKING:
    import skein

    from .hdfs import HadoopFS
    from .recipe import NotebookOptions

__all__ = ["DEFAULT_WORKSPACE", "workspaces_dir", "workspace_path", "check_workspace_value", "tag", "tags", "overlapping_tags",
           "namenode_urls", "workspace_job", "live_servers", "check_free", "list_workspaces"]

DEFAULT_WORKSPACE = "default"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_TAG_PREFIX = "skein-jupyter-workspace-"
_INSIDE_PREFIX = "skein-jupyter-inside-"


def workspaces_dir(user: str) -> str:
    """Where named workspaces of ``user`` live."""
    return NAMED_DIR.format(user=user)


def check_workspace_value(value: str) -> str:
    """A workspace as a recipe or ``--workspace`` gives it: a name, or an ``hdfs://`` URL of a directory.

    >>> check_workspace_value("team-a")
    'team-a'
    >>> check_workspace_value("../x")
    Traceback (most recent call last):
    ValueError: '../x' is not a workspace name (letters, digits, '.', '_', '-'; up to 100) or an hdfs:// URL
    """
    if value.startswith("hdfs://"):
        path = "/" + value[len("hdfs://"):].partition("/")[2]
        if path == "/" or any(part in (".", "..") for part in path.split("/")) or re.search(r"[\s:*?{}\[\]\\]", path):
            raise ValueError(f"{value!r} is not an hdfs:// URL of a directory (e.g. hdfs:///user/you/project)")
        return value
    if not _NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a workspace name (letters, digits, '.', '_', '-'; up to 100) "
                         "or an hdfs:// URL")
    return value


def workspace_path(value: str, user: str) -> str:
    """The absolute, normalized HDFS path of the workspace ``value`` (a name or an ``hdfs://`` URL) of ``user``.

    A URL must be on the default filesystem, and not a home directory or
    a directory holding workspaces (a server would mirror all of it).
    """
    check_workspace_value(value)
    if not value.startswith("hdfs://"):
        return f"{workspaces_dir(user)}/{value}"
    authority, _, rest = value[len("hdfs://"):].partition("/")
    if authority and authority != _default_authority():
        raise UsageError(f"--workspace {value}: not on this cluster's filesystem ({_default_authority() or '?'}); "
                         "give hdfs:///PATH or a path on the default filesystem")
    path = posixpath.normpath("/" + rest)
    home, named = f"/user/{user}", workspaces_dir(user)
    if path in ("/", "/user", home) or named.startswith(path + "/") or path == named:
        raise UsageError(f"--workspace {value}: {path} holds more than one project (a home directory, or "
                         "where named workspaces live); give a directory of its own, e.g. "
                         f"hdfs://{home}/projects/NAME")
    if path.startswith(named + "/"):
        raise UsageError(f"--workspace {value}: {path} is in or under a named workspace; give its name "
                         f"(--workspace {path[len(named) + 1:].split('/')[0]})")
    if any(part.startswith(".") for part in path.split("/")):
        raise UsageError(f"--workspace {value}: {path} is a hidden directory (Skein's and skein-jupyter's own "
                         "live under such); give a directory of its own, e.g. "
                         f"hdfs://{home}/projects/NAME")
    return path


def _default_fs(core: dict[str, str] | None = None) -> str:
    """``fs.defaultFS`` of the client configuration (Hadoop's own default when not set)."""
    core = _site("core-site.xml") if core is None else core
    return core.get("fs.defaultFS", core.get("fs.default.name", "hdfs://localhost:8020"))


def _default_authority() -> str:
    return _default_fs().partition("://")[2].partition("/")[0]


def _digest(path: str) -> str:
    return hashlib.sha256(path.encode()).hexdigest()[:20]


def _ancestors(path: str) -> list[str]:
    """``/a/b/c`` -> ``["/a/b", "/a"]``: the directories a workspace is inside."""
    parts = path.strip("/").split("/")
    return ["/" + "/".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]


def tag(path: str) -> str:
    """The application tag of a server on the workspace ``path``: a digest, so tags reveal no path."""
    return _TAG_PREFIX + _digest(path)


def tags(path: str) -> set[str]:
    """Every tag of a server on ``path``: its own, and one per directory it is inside (so a workspace
    that holds, or is held by, a live server's is found too)."""
    return {tag(path)} | {_INSIDE_PREFIX + _digest(a) for a in _ancestors(path)}


def _site(name: str) -> dict[str, str]:
    from .identity import hadoop_conf_dirs

    for directory in hadoop_conf_dirs():
        path = directory / name
        if path.is_file():
            try:
                root = ET.parse(path).getroot()
            except ET.ParseError as exc:
                raise UsageError(f"{path} is not valid XML ({exc}); fix the Hadoop configuration") from None
            return {(p.findtext("name") or "").strip(): (p.findtext("value") or "").strip()
                    for p in root.iter("property")}
    return {}


def namenode_urls() -> list[str]:
    """The NameNodes' WebHDFS URLs (``http(s)://host:port``) from the Hadoop client configuration.

    HA nameservices list every NameNode (the container uses the active one);
    a wildcard bind address is replaced by the host of ``fs.defaultFS``.
    """
    core, hdfs = _site("core-site.xml"), _site("hdfs-site.xml")
    default_fs = _default_fs(core)
    authority = default_fs.partition("://")[2].partition("/")[0]
    host = authority.partition(":")[0] or "localhost"
    https = hdfs.get("dfs.http.policy", "HTTP_ONLY").upper() == "HTTPS_ONLY"
    scheme, key, port = ("https", "dfs.namenode.https-address", 9871) if https else \
        ("http", "dfs.namenode.http-address", 9870)
    nameservice_nodes = hdfs.get(f"dfs.ha.namenodes.{host}")
    if nameservice_nodes:
        addresses = [hdfs.get(f"{key}.{host}.{node.strip()}", "") for node in nameservice_nodes.split(",")]
    else:
        addresses = [hdfs.get(key, f"{host}:{port}")]
    urls = []
    for address in filter(None, addresses):
        bind, _, bind_port = address.rpartition(":")
        if bind in ("0.0.0.0", "", "::"):
            bind = host
        urls.append(f"{scheme}://{bind}:{bind_port or port}")
    if not urls:
        raise UsageError(f"no NameNode HTTP address for {default_fs} in the Hadoop configuration; set "
                         f"{key} in hdfs-site.xml")
    return urls


def workspace_job(options: NotebookOptions, user: str, checked_at_ms: int | None = None,
                  namenodes: list[str] | None = None) -> WorkspaceJob:
    """The workspace part of a server's job."""
    return WorkspaceJob(path=workspace_path(options.workspace, user), namenodes=namenodes or namenode_urls(),
                        checked_at=checked_at_ms if checked_at_ms is not None else int(time.time() * 1000),
                        sync_interval=options.sync_interval, exclude=list(options.sync_exclude))


def overlapping_tags(path: str) -> set[str]:
    """The tags of a server whose workspace is ``path``, is inside it, or holds it (see :func:`tags`).

    >>> bool(overlapping_tags("/data/team/p") & tags("/data/team")), bool(overlapping_tags("/data/b") & tags("/data/a"))
    (True, False)
    """
    return {tag(path), _INSIDE_PREFIX + _digest(path)} | {tag(a) for a in _ancestors(path)}


def _live_reports(client: skein.Client, user: str) -> list:
    """Reports of ``user``'s notebook servers that are live or about to be."""
    from .kinds import KINDS

    notebook = KINDS["notebook"].tag
    return [report for report in client.get_applications(states=["SUBMITTED", "ACCEPTED", "RUNNING"])
            if report.user == user and notebook in report.tags]


def live_servers(client: skein.Client, user: str, path: str, reports: list | None = None) -> list[str]:
    """Applications of ``user``'s servers live (or about to be) on the workspace ``path``, in it or around it.

    ``reports``: those of :func:`_live_reports`, when already asked for.
    """
    overlapping = overlapping_tags(path)
    reports = _live_reports(client, user) if reports is None else reports
    return sorted(report.id for report in reports if overlapping & set(report.tags))


def check_free(client: skein.Client, user: str, path: str) -> int:
    """Refuse a second server on a workspace; returns when it was checked (ms since the epoch)."""
    checked_at = int(time.time() * 1000)
    live = live_servers(client, user, path)
    if live:
        raise UsageError(f"the workspace {path} is in use by {live[0]}; open that server "
                         f"(`skein-jupyter notebook info {live[0]}`), stop it first, or choose another "
                         "workspace with --workspace NAME")
    return checked_at


def list_workspaces(fs: HadoopFS, user: str, client: skein.Client | None = None) -> list[dict]:
    """``user``'s named workspaces: name, path, size, last use and the server using it, if any."""
    root = workspaces_dir(user)
    if not fs.exists(root):
        return []
    sizes: dict[str, int] = {}
    for line in fs.run("-du", "-s", f"{root}/*", check=False).stdout.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0].isdigit():
            path = fields[-1]
            sizes["/" + path.partition("://")[2].partition("/")[2] if "://" in path else path] = int(fields[0])
    last_used: dict[str, float] = {}
    text = fs.run("-cat", f"{root}/*/{META_DIR}/{LAST_USED}", check=False).stdout
    for record in text.replace("}{", "}\n{").splitlines():
        try:
            data = json.loads(record)
        except ValueError:
            continue
        if isinstance(data, dict) and isinstance(data.get("path"), str):
            last_used[data["path"]] = float(data.get("stopped", 0))
    locks = fs.run("-ls", f"{root}/*/{META_DIR}/{LOCK}", check=False).stdout
    rows = []
    reports = _live_reports(client, user) if client is not None and f"/{META_DIR}/{LOCK}" in locks else []
    for path in sorted(sizes):
        in_use = None
        if f"{path}/{META_DIR}/{LOCK}" in locks and client is not None:
            live = live_servers(client, user, path, reports)
            in_use = live[0] if live else None
        if path.rsplit("/", 1)[-1].startswith("."):
            continue
        rows.append({"name": path.rsplit("/", 1)[-1], "path": path, "bytes": sizes[path],
                     "last_used": last_used.get(path) or None, "server": in_use})
    return rows
