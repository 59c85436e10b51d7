"""Where skein-jupyter keeps things on the edge node. Nothing is created at import time."""
import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir() -> Path:
    """``$SKEIN_JUPYTER_CACHE_DIR``, else ``$XDG_CACHE_HOME/skein-jupyter`` (``~/.cache/skein-jupyter``)."""
    value = os.environ.get("SKEIN_JUPYTER_CACHE_DIR")
    if value:
        return Path(value).expanduser().absolute()
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "skein-jupyter"
