"""The one exception hierarchy of skein-jupyter.

Every error the library raises on purpose derives from
:class:`SkeinJupyterError`. Its message is a single line that names the
problem and the fix; the command line prints it as ``Error: <message>`` and
exits with :attr:`SkeinJupyterError.exit_code`.
"""

__all__ = [
    "SkeinJupyterError",
    "UsageError",
    "SandboxError",
    "JavaError",
    "PortInUseError",
    "FetchError",
    "ApplicationError",
]


class SkeinJupyterError(Exception):
    """Base class of all skein-jupyter errors (exit code 1)."""

    exit_code = 1


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


class ApplicationError(SkeinJupyterError):
    """A YARN application failed, or its logs or state could not be read."""
