"""Who the cluster thinks you are: the Hadoop identity, not the OS login.

Default directories (``/user/<you>/…``), ``notebook list`` and the runs index
all use it. In order: a proxy user the job runs as; the short name of a
Kerberos principal (a keytab's, else the ticket cache's on a secured
cluster); ``HADOOP_USER_NAME`` (Hadoop honours it under simple
authentication); the OS login.
"""
import getpass
import os

__all__ = ["hadoop_user", "short_name"]


def short_name(principal: str) -> str:
    """``alice/host@REALM`` -> ``alice`` (Hadoop's default auth_to_local rule)."""
    return principal.split("@", 1)[0].split("/", 1)[0]


def hadoop_user(proxy_user: str | None = None, principal: str | None = None) -> str:
    """The user HDFS and YARN see for this edge-node session (or job)."""
    if proxy_user:
        return proxy_user
    if principal:
        return short_name(principal)
    return os.environ.get("HADOOP_USER_NAME") or getpass.getuser()
