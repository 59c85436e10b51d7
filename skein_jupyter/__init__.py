"""Run Jupyter servers and papermill batch runs on Apache Hadoop YARN through Skein."""
from importlib.metadata import PackageNotFoundError, version as _version

from .exceptions import SkeinJupyterError, UsageError

try:
    __version__ = _version("skein-jupyter")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

__all__ = ["SkeinJupyterError", "UsageError", "__version__"]
