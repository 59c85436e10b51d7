"""Writing outputs to the cluster filesystem from a container, through ``hdfs dfs``.

Hadoop's own client honours the node's configuration and the application's
delegation tokens (``HADOOP_TOKEN_FILE_LOCATION``) as they are, on secured
clusters too. It is found on ``PATH`` or under the Hadoop homes YARN passes
to containers.
"""
import os
import shutil
import subprocess


class ClusterFSError(Exception):
    pass


def _find_hdfs():
    found = shutil.which("hdfs")
    if found:
        return found
    for var in ("HADOOP_HDFS_HOME", "HADOOP_HOME", "HADOOP_COMMON_HOME", "HADOOP_PREFIX"):
        home = os.environ.get(var)
        if home and os.access(os.path.join(home, "bin", "hdfs"), os.X_OK):
            return os.path.join(home, "bin", "hdfs")
    raise ClusterFSError("no `hdfs` command in the container (not on PATH, nor under HADOOP_HOME or "
                         "HADOOP_HDFS_HOME); ask your admin to add HADOOP_HOME to the NodeManager's "
                         "yarn.nodemanager.env-whitelist")


def _run(*args, timeout=600):
    proc = subprocess.run([_find_hdfs(), "dfs", *args], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip() and " WARN " not in line]
        raise ClusterFSError(f"hdfs dfs {args[0]} {args[-1]}: {lines[-1] if lines else 'failed'}")
    return proc.stdout


def mkdir(*paths):
    _run("-mkdir", "-p", *paths)


def put(sources, destination):
    """Copy local files into a directory (or onto one path); replaces what is there."""
    _run("-put", "-f", *sources, destination)


def join(directory, name):
    return directory.rstrip("/") + "/" + name
