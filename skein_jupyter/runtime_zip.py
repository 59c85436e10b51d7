"""The container runtime as a zip to ship with each application.

Built once per content into the cache directory, byte for byte the same for
the same sources (fixed timestamps, sorted entries), so its name says what
is in it; put once by that name into the user's private directory on the
cluster (:func:`on_cluster`), where every launch finds it.
"""
import hashlib
import os
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from .paths import cache_dir

if TYPE_CHECKING:
    from .hdfs import HadoopFS

__all__ = ["runtime_zip", "deps_zip", "library_zip", "on_cluster", "forget", "cluster_dir", "PACKAGE", "SHIPPED",
           "LIBRARY", "LIBRARY_SHIPPED"]

PACKAGE = "skein_jupyter_runtime"
_SOURCE = Path(__file__).resolve().parent / "runtime"
#: Pure-Python packages the runtime imports that an environment need not have
#: (``runtime/webhdfs.py``, the scheduler's ``runtime/cron.py``), shipped in a second archive kept off ``PYTHONPATH``.
SHIPPED = ("fsspec", "cronsim")
#: What a server with jupyter-scheduler (``notebook.scheduler``) needs besides its environment: this
#: package (the YARN backend and the client code it submits with) and the pure-Python packages it imports.
LIBRARY = "skein_jupyter_lib"
LIBRARY_SHIPPED = ("skein_jupyter", "click", "cronsim", "fsspec")


def _sources() -> list[Path]:
    return sorted(p for p in _SOURCE.rglob("*.py") if "__pycache__" not in p.parts)


def runtime_zip(directory: str | os.PathLike[str] | None = None) -> Path:
    """Path of the runtime zip for the installed sources, building it if needed."""
    return _build(PACKAGE, [(f"{PACKAGE}/{p.relative_to(_SOURCE)}", p) for p in _sources()], directory)


def deps_zip(directory: str | os.PathLike[str] | None = None) -> Path:
    """Path of the zip of the installed :data:`SHIPPED` packages, building it if needed."""
    return _build("skein_jupyter_deps", _package_entries(SHIPPED), directory)


def library_zip(directory: str | os.PathLike[str] | None = None) -> Path:
    """Path of the zip of :data:`LIBRARY_SHIPPED` (this package included), building it if needed.

    Shipped as an archive that YARN unpacks, so the package runs from real
    files there (it builds its own runtime zip from them); a minimal
    ``dist-info`` gives it its version.
    """
    from . import __version__

    entries = _package_entries(LIBRARY_SHIPPED, suffixes=(".py", ".sh", ".properties", ".yaml", ".json"))
    metadata = f"Metadata-Version: 2.1\nName: skein-jupyter\nVersion: {__version__}\n".encode()
    return _build(LIBRARY, entries, directory,
                  extra=((f"skein_jupyter-{__version__}.dist-info/METADATA", metadata),))


def _package_entries(names: tuple[str, ...], suffixes: tuple[str, ...] = (".py",)) -> list[tuple[str, Path]]:
    """``(name in the zip, file)`` of the installed packages ``names``, tests and caches left out."""
    import importlib.util

    entries = []
    for name in names:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError(f"{name} is not installed; reinstall skein-jupyter (it depends on {name})")
        root = Path(list(spec.submodule_search_locations)[0])
        entries += [(f"{name}/{p.relative_to(root)}", p) for p in sorted(root.rglob("*"))
                    if p.is_file() and p.suffix in suffixes and "__pycache__" not in p.parts
                    and "tests" not in p.relative_to(root).parts]
    return entries


def _build(prefix: str, entries: list[tuple[str, Path]], directory: str | os.PathLike[str] | None,
           extra: tuple[tuple[str, bytes], ...] = ()) -> Path:
    contents = [(name, path.read_bytes()) for name, path in entries] + list(extra)
    digest = hashlib.sha256()
    for name, data in contents:
        digest.update(name.encode() + b"\0" + data + b"\0")
    directory = Path(directory) if directory else cache_dir() / "runtime"
    target = directory / f"{prefix}-{digest.hexdigest()[:16]}.zip"
    if target.is_file():
        return target
    directory.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=".runtime-", suffix=".zip", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in contents:
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                archive.writestr(info, data)
        os.chmod(partial, 0o644)
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return target


def cluster_dir(user: str) -> str:
    """Where the runtime and deps zips of ``user``'s launches are kept on the cluster (private)."""
    return f"hdfs:///user/{user}/.skein-jupyter/runtime"


def on_cluster(local: str | os.PathLike[str], fs: "HadoopFS", user: str) -> str:
    """The location of the zip ``local`` (named by its content) in ``user``'s cache on the cluster, put there once.

    A launch names this file instead of the local one, so Skein uploads
    nothing and YARN localizes it once per node into its private cache (per
    user), not once per application. The file is never replaced (its
    timestamp is what YARN checks): a new content is a new name. Concurrent
    launches each write their own temporary file and rename it without
    overwriting; whichever comes second finds the file there and removes its
    own. Where checking costs an ``hdfs dfs`` JVM (a Kerberos cluster), a
    local marker remembers that the file was there; :func:`forget` drops it
    when a submission finds the file gone.

    Nothing cleans this cache: old zips stay until removed by hand. Remove
    one only when no application launched with it still runs, since YARN
    localizes it again for every container it starts later (a replacement,
    a sweep's next worker), which then fails.
    """
    from .identity import security_enabled
    from .workspaces import _default_authority

    local = Path(local)
    directory = cluster_dir(user)
    url = f"{directory}/{local.name}"
    marker = _marker(local, url, _default_authority())
    if security_enabled() and marker.exists():
        return url
    if not fs.exists(url):
        _put_once(local, directory, url, fs)
    if security_enabled():
        marker.touch()
    return url


def forget(url: str) -> None:
    """Drop the local markers of ``url`` (it is gone from the cluster: the next launch puts it again)."""
    for marker in (cache_dir() / "runtime").glob(f".*.{hashlib.sha256(url.encode()).hexdigest()[:16]}-*.on"):
        marker.unlink(missing_ok=True)


def _marker(local: Path, url: str, authority: str) -> Path:
    where = hashlib.sha256(authority.encode()).hexdigest()[:16]
    return local.parent / f".{local.stem}.{hashlib.sha256(url.encode()).hexdigest()[:16]}-{where}.on"


def _put_once(local: Path, directory: str, url: str, fs: "HadoopFS") -> None:
    import uuid

    from .hdfs import PRIVATE, HdfsError

    fs.mkdir(directory, share=PRIVATE)
    partial = f"{directory}/.{local.name}.{uuid.uuid4().hex[:12]}.partial"
    fs.put([str(local)], partial, share=PRIVATE)
    try:
        fs.run("-mv", partial, url)
    except HdfsError:
        if not fs.exists(url):  # not another launch's rename: a real failure
            fs.rm(partial)
            raise
        fs.rm(partial)
