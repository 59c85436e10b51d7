"""The container runtime as a zip to ship with each application.

Built once per content into the cache directory, byte for byte the same for
the same sources (fixed timestamps, sorted entries), so its name says what
is in it and Skein's upload of it costs only its few kilobytes.
"""
import hashlib
import os
import tempfile
import zipfile
from pathlib import Path

from .paths import cache_dir

__all__ = ["runtime_zip", "PACKAGE"]

PACKAGE = "skein_jupyter_runtime"
_SOURCE = Path(__file__).resolve().parent / "runtime"


def _sources() -> list[Path]:
    return sorted(p for p in _SOURCE.rglob("*.py") if "__pycache__" not in p.parts)


def runtime_zip(directory: str | os.PathLike[str] | None = None) -> Path:
    """Path of the runtime zip for the installed sources, building it if needed."""
    sources = _sources()
    digest = hashlib.sha256()
    for path in sources:
        digest.update(str(path.relative_to(_SOURCE)).encode() + b"\0" + path.read_bytes() + b"\0")
    directory = Path(directory) if directory else cache_dir() / "runtime"
    target = directory / f"{PACKAGE}-{digest.hexdigest()[:16]}.zip"
    if target.is_file():
        return target
    directory.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=".runtime-", suffix=".zip", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sources:
                info = zipfile.ZipInfo(f"{PACKAGE}/{path.relative_to(_SOURCE)}", date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                archive.writestr(info, path.read_bytes())
        os.chmod(partial, 0o644)
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return target
