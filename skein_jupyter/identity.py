"""Who the cluster thinks you are: the Hadoop identity, not the OS login.

Default directories (``/user/<you>/…``), ``notebook list`` and the runs index
all use it. In order: a proxy user the job runs as; on a secured cluster
(``hadoop.security.authentication=kerberos`` in ``core-site.xml``) the short
name of the Kerberos principal (a keytab's, else the ticket cache's, as
``klist`` shows it); under simple authentication ``HADOOP_USER_NAME`` (which
Hadoop honours there), else the OS login.
"""
from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping
from pathlib import Path

from .exceptions import UsageError

__all__ = ["hadoop_user", "short_name", "security_enabled", "core_site_path", "hadoop_conf_dirs", "read_authentication",
           "ticket_principal", "parse_klist"]


def short_name(principal: str) -> str:
    """``alice/host@REALM`` -> ``alice`` (Hadoop's default auth_to_local rule)."""
    return principal.split("@", 1)[0].split("/", 1)[0]


def hadoop_conf_dirs(environ: Mapping[str, str] | None = None) -> list[Path]:
    """Where the Hadoop client configuration may be, in the order Hadoop's scripts look.

    ``HADOOP_CONF_DIR``, else ``$HADOOP_HOME/etc/hadoop``, else ``/etc/hadoop/conf`` (distributions' edge
    nodes). The one list every reader of ``*-site.xml`` uses.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    dirs = []
    if env.get("HADOOP_CONF_DIR"):
        dirs.append(Path(env["HADOOP_CONF_DIR"]))
    if env.get("HADOOP_HOME"):
        dirs.append(Path(env["HADOOP_HOME"]) / "etc" / "hadoop")
    dirs.append(Path("/etc/hadoop/conf"))
    return dirs


def core_site_path(environ: Mapping[str, str] | None = None) -> Path | None:
    """``core-site.xml`` of the Hadoop configuration, in the first of :func:`hadoop_conf_dirs` that has one."""
    return next((d / "core-site.xml" for d in hadoop_conf_dirs(environ) if (d / "core-site.xml").is_file()), None)


def read_authentication(text: str) -> str:
    """``hadoop.security.authentication`` in a ``core-site.xml`` text (``simple`` when not set).

    >>> read_authentication('<configuration><property><name>hadoop.security.authentication</name>'
    ...                     '<value> Kerberos </value></property></configuration>')
    'kerberos'
    """
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError:
        return "simple"
    value = "simple"
    for prop in root.iter("property"):
        if (prop.findtext("name") or "").strip() == "hadoop.security.authentication":
            value = (prop.findtext("value") or "simple").strip().lower() or "simple"
    return value


def security_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the cluster of this configuration uses Kerberos."""
    path = core_site_path(environ)
    if path is None:
        return False
    try:
        return read_authentication(path.read_text()) == "kerberos"
    except OSError:
        return False


def parse_klist(output: str) -> str | None:
    """The default principal in ``klist`` output (MIT or Heimdal), or None.

    >>> parse_klist("Ticket cache: FILE:/tmp/krb5cc_1000\\nDefault principal: alice@EXAMPLE.COM\\n")
    'alice@EXAMPLE.COM'
    """
    for line in output.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep and key.strip().lower() in ("default principal", "principal") and value.strip():
            return value.strip()
    return None


def ticket_principal() -> str:
    """The principal of the Kerberos ticket cache (``klist``).

    Raises
    ------
    UsageError
        No ``klist``, or no valid ticket: the user is told to ``kinit``.
    """
    klist = shutil.which("klist")
    if klist is None:
        raise UsageError("the cluster uses Kerberos (hadoop.security.authentication=kerberos) but there is no "
                         "`klist` on PATH; install the Kerberos client tools and run `kinit`")
    try:
        valid = subprocess.run([klist, "-s"], capture_output=True, timeout=30).returncode == 0
        proc = subprocess.run([klist], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(f"`klist` failed ({exc}); run `kinit` and try again") from None
    principal = parse_klist(proc.stdout) if proc.returncode == 0 else None
    if not valid or principal is None:
        raise UsageError("the cluster uses Kerberos and you have no valid ticket (see `klist`); run `kinit` "
                         "(or give a keytab and principal in the recipe's kerberos section)")
    return principal


def hadoop_user(proxy_user: str | None = None, principal: str | None = None) -> str:
    """The user HDFS and YARN see for this edge-node session (or job).

    Parameters
    ----------
    proxy_user : str, optional
        The user a job runs as by impersonation; wins when given.
    principal : str, optional
        A keytab's principal (the recipe's ``kerberos.principal``); used on a
        secured cluster instead of the ticket cache's.

    Raises
    ------
    UsageError
        A secured cluster, no principal given and no valid ticket.
    """
    if proxy_user:
        return proxy_user
    if security_enabled():
        return short_name(principal or ticket_principal())
    return os.environ.get("HADOOP_USER_NAME") or getpass.getuser()
