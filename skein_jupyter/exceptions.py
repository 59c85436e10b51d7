"""The one exception hierarchy of skein-jupyter.

Every error the library raises on purpose derives from
:class:`SkeinJupyterError`. Its message is a single line that names the
problem and the fix; the command line prints it as ``Error: <message>`` and
exits with :attr:`SkeinJupyterError.exit_code`.
"""

__all__ = [
    "SkeinJupyterError",
    "SkeinJupyterWarning",
    "UsageError",
    "SandboxError",
    "JavaError",
    "PortInUseError",
    "FetchError",
    "ApplicationError",
    "InfrastructureError",
    "NotebookFailed",
    "EXIT_CODES",
]

#: The documented exit codes of every command: what a scheduler may act on.
EXIT_CODES = {
    0: "success",
    1: "the notebook failed: a cell raised, the run timed out, or it was stopped; a retry repeats it",
    2: "usage error: a bad flag, value or file; nothing was submitted",
    3: "the cluster or infrastructure failed (YARN, HDFS, a lost container, a daemon out of reach); "
       "a retry may help",
}


class SkeinJupyterError(Exception):
    """Base class of all skein-jupyter errors (exit code 1)."""

    exit_code = 1


class SkeinJupyterWarning(UserWarning):
    """Something worth telling that does not stop the command (``warnings.warn``); the command line prints
    it as one ``Warning: …`` line on stderr."""


class UsageError(SkeinJupyterError):
    """The user asked for something invalid: a bad flag, value or file (exit code 2)."""

    exit_code = 2


class SandboxError(SkeinJupyterError):
    """The local Hadoop sandbox could not be set up, started, stopped or reached."""


class JavaError(SandboxError):
    """No usable Java runtime was found."""


class PortInUseError(SandboxError):
    """A port the sandbox needs is taken by another process."""


class FetchError(SandboxError):
    """Hadoop's jars could not be fetched from Maven."""


class InfrastructureError(SkeinJupyterError):
    """The cluster or its infrastructure failed: a retry may help (exit code 3)."""

    exit_code = 3


class ApplicationError(InfrastructureError):
    """A YARN application failed, or its logs or state could not be read (exit code 3)."""


class NotebookFailed(SkeinJupyterError):
    """The notebook itself failed: a cell raised, the run timed out, or it was stopped (exit code 1)."""

    exit_code = 1
