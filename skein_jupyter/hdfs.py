"""The cluster filesystem through ``hdfs dfs``, the one client every edge node has.

It honours the edge node's configuration and Kerberos ticket as it is.
Each call starts a JVM (about a second), so callers batch what they can.
"""
import shutil
import subprocess

from .exceptions import SkeinJupyterError, UsageError

__all__ = ["HadoopFS", "HdfsError", "join"]


class HdfsError(SkeinJupyterError):
    """An ``hdfs dfs`` command failed."""


def join(directory, name):
    return directory.rstrip("/") + "/" + name


def _reason(stderr):
    lines = [line.strip() for line in stderr.splitlines() if line.strip() and " WARN " not in line]
    return lines[-1][:300] if lines else "no error output"


class HadoopFS:
    """A few filesystem operations on HDFS (or any ``hadoop fs`` filesystem)."""

    def __init__(self, executable=None, timeout=600):
        self.executable = executable or shutil.which("hdfs")
        if self.executable is None:
            raise HdfsError("`hdfs` is not on PATH; run on a Hadoop edge node, or "
                            'eval "$(skein-jupyter sandbox env)" for the sandbox')
        self.timeout = timeout

    def _run(self, *args, check=True):
        proc = subprocess.run([self.executable, "dfs", *args], capture_output=True, text=True,
                              timeout=self.timeout)
        if check and proc.returncode != 0:
            reason = _reason(proc.stderr)
            error = UsageError if "Permission denied" in reason or "AccessControlException" in reason \
                else HdfsError
            raise error(f"`hdfs dfs {' '.join(args[:1])}` on {args[-1]} failed: {reason}"
                        + ("; choose a directory you can write to, or ask your Hadoop admin"
                           if error is UsageError else ""))
        return proc

    def exists(self, path):
        return self._run("-test", "-e", path, check=False).returncode == 0

    def mkdir(self, *paths):
        self._run("-mkdir", "-p", *paths)

    def writable(self, path):
        """Whether ``path`` exists and this user may write in it."""
        return self._run("-test", "-w", path, check=False).returncode == 0

    def get(self, sources, directory):
        """Copy files from the cluster into a local directory."""
        self._run("-get", "-f", *sources, str(directory))

    def put(self, sources, directory):
        """Copy local files into ``directory``; each lands under a temporary name, then is renamed."""
        self._run("-put", "-f", *map(str, sources), directory)

    def chmod(self, mode, *paths):
        self._run("-chmod", mode, *paths)

    def cat(self, *patterns):
        """The concatenated contents of the files matching ``patterns``, in one call.

        A pattern that matches nothing contributes nothing; any other failure raises.
        """
        proc = self._run("-cat", *patterns, check=False)
        if proc.returncode != 0:
            problems = [line for line in proc.stderr.splitlines()
                        if line.strip() and " WARN " not in line and "No such file" not in line]
            if problems:
                raise HdfsError(f"`hdfs dfs -cat` on {' '.join(patterns)} failed: {_reason(chr(10).join(problems))}")
        return proc.stdout

    def stat(self, path, fmt="%b %Y"):
        """``hdfs dfs -stat`` output for ``path``, or None if it does not exist."""
        proc = self._run("-stat", fmt, path, check=False)
        return proc.stdout.strip() if proc.returncode == 0 else None

    def rm(self, *paths):
        self._run("-rm", "-f", "-skipTrash", *paths)
