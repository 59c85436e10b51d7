"""Packed environments on the cluster filesystem: upload once by content, list, resolve names.

An archive is stored as ``<dir>/<name>-<sha256[:16]>.tar.gz`` with its
metadata record beside it (``….tar.gz.json``, one line of JSON). The name
carries the content hash, so an archive already there is never sent again.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .exceptions import UsageError
from .hdfs import PRIVATE, PUBLIC, HadoopFS, ancestors, join
from .packing import ARCHIVE_SUFFIXES, METADATA_FORMAT, metadata_path, sha256_file
from .progress import Progress

if TYPE_CHECKING:
    from .environment import EnvironmentRef

__all__ = ["UploadResult", "PreparedEnvironment", "prepare", "default_upload_dir", "read_local_metadata",
           "remote_name", "upload", "check_public_ancestors", "list_environments", "resolve_name", "PUBLISHED_DIR"]

#: Where admins publish environments for everyone (``env upload --to … --public``).
PUBLISHED_DIR = "hdfs:///apps/skein-jupyter/environments"


@dataclasses.dataclass(frozen=True)
class UploadResult:
    url: str
    uploaded: bool       # False: the same content was there already
    public: bool
    seconds: float
    metadata: dict


def default_upload_dir(user: str | None = None) -> str:
    """Each user's own cache of environments: ``hdfs:///user/<user>/.skein-jupyter/environments``."""
    from .identity import hadoop_user

    return f"hdfs:///user/{user or hadoop_user()}/.skein-jupyter/environments"


def read_local_metadata(archive: str | os.PathLike[str]) -> dict:
    """The metadata record of a packed archive, checked against the archive itself.

    Raises
    ------
    UsageError
        Not a packed environment, or changed since it was packed.
    """
    archive = Path(archive).expanduser().absolute()
    if not archive.is_file():
        raise UsageError(f"{archive} does not exist; check the path")
    record = metadata_path(archive)
    try:
        metadata = json.loads(record.read_text())
        if metadata.get("format") != METADATA_FORMAT or not metadata.get("sha256"):
            raise ValueError
    except (OSError, ValueError):
        raise UsageError(f"{archive} is not a packed environment (no valid metadata record {record.name} "
                         "beside it); pack one with `skein-jupyter env pack`") from None
    stat = archive.stat()
    if (stat.st_size, stat.st_mtime_ns) != (metadata.get("size"), metadata.get("mtime_ns")):
        # Size and time differ from the record: check the content itself.
        if stat.st_size != metadata.get("size") or sha256_file(archive) != metadata["sha256"]:
            raise UsageError(f"{archive} changed since it was packed (its content no longer matches "
                             f"{record.name}); pack it again with `skein-jupyter env pack`")
    return metadata


def remote_name(metadata: Mapping[str, Any]) -> str:
    suffix = next((s for s in ARCHIVE_SUFFIXES if metadata["archive"].endswith(s)), ".tar.gz")
    return f"{metadata['name']}-{metadata['sha256'][:16]}{suffix}"


def upload(archive: str | os.PathLike[str], to: str | None = None, public: bool = False,
           fs: HadoopFS | None = None, progress: Progress | None = None) -> UploadResult:
    """Put a packed environment on the cluster unless the same content is there already.

    A private upload (the default) is readable by its owner only: files 600,
    new directories 700. A public one is world-readable (644 in a 755
    directory), so YARN's public localization cache shares one copy between
    users and applications; YARN uses that cache only if every directory
    above is world-executable, so a public upload checks that first.

    Parameters
    ----------
    archive : str
        A packed environment (with its ``.json`` metadata record beside it).
    to : str, optional
        Directory on the cluster filesystem; :func:`default_upload_dir` by default.
    public : bool
        Make it world-readable.

    Returns
    -------
    UploadResult

    Raises
    ------
    UsageError
        Not a packed environment, or ``public`` and a directory above ``to``
        is not world-executable (nothing is uploaded).
    """
    progress = progress or Progress.quiet()
    start = time.monotonic()
    metadata = read_local_metadata(archive)
    directory = (to or default_upload_dir()).rstrip("/")
    fs = fs or HadoopFS()
    url = join(directory, remote_name(metadata))
    if public:
        check_public_ancestors(directory, fs)
    if fs.exists(url):
        if public:
            _publish(fs, directory, url)
        progress.step(f"{url} is there already (same content); nothing to upload")
        return UploadResult(url, False, public, time.monotonic() - start, metadata)
    remote = dict(metadata, url=url, public=public,
                  uploaded=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    import tempfile

    share = PUBLIC if public else PRIVATE
    with tempfile.TemporaryDirectory(prefix="skein-jupyter-upload-") as tmp:
        # Put both files under their remote names; hdfs dfs -put copies each
        # to a temporary name and renames it when complete.
        staged = Path(tmp) / remote_name(metadata)
        staged.symlink_to(Path(archive).expanduser().absolute())
        record = Path(tmp) / (staged.name + ".json")
        record.write_text(json.dumps(remote, sort_keys=True) + "\n")
        progress.step(f"uploading {Path(archive).name} ({metadata['size'] / 2**20:.0f} MiB) to {directory}")
        fs.mkdir(directory, share=share)
        fs.put([staged, record], directory, share=share)
    if public:
        _publish(fs, directory, url)
    return UploadResult(url, True, public, time.monotonic() - start, remote)


def _publish(fs: HadoopFS, directory: str, url: str) -> None:
    """World-readable archive and record in a world-readable directory, whatever the umask or ACLs did."""
    fs.chmod("a+rX", directory, url, url + ".json")


def check_public_ancestors(directory: str, fs: HadoopFS | None = None) -> None:
    """Refuse a public upload into ``directory`` unless every existing directory above it is world-executable.

    YARN's public localization cache accepts a file only if every ancestor
    has ``o+x``; otherwise it silently falls back to a private copy per user
    and application. ``directory`` itself is made world-readable by the
    upload; directories still missing are created 755.

    Raises
    ------
    UsageError
        Naming the first directory that is not world-executable and the command that fixes it.
    """
    fs = fs or HadoopFS()
    for path, mode in fs.modes(*ancestors(directory.rstrip("/") or "/")).items():
        if not mode & 0o001:
            raise UsageError(f"--public: {path} is not world-executable ({mode:o}), so YARN would not share "
                             f"the environment between users; run `hdfs dfs -chmod o+x {path}` (or upload "
                             "elsewhere with --to)")


def list_environments(directory: str | None = None, fs: HadoopFS | None = None) -> list[dict]:
    """Metadata records of the environments in ``directory``, newest first.

    Raises
    ------
    UsageError
        ``directory`` was given and does not exist (your own cache, the
        default, is simply empty before your first upload).
    """
    given = directory is not None
    directory = (directory or default_upload_dir()).rstrip("/")
    fs = fs or HadoopFS()
    records = _records([directory], fs)
    if given and not records and not fs.exists(directory):
        raise UsageError(f"{directory} does not exist on the cluster; check the directory, or upload an "
                         "environment there first with `skein-jupyter env upload`")
    return records


def _records(directories: Iterable[str], fs: HadoopFS) -> list[dict]:
    """Records of every environment in ``directories`` (one ``hdfs dfs -cat``), newest first."""
    records = []
    for line in fs.cat(*(join(d.rstrip("/"), "*.json") for d in directories)).splitlines():
        line = line.strip()
        if line:
            try:
                records.append(json.loads(line))
            except ValueError:
                continue  # not one of ours
    return sorted(records, key=lambda r: r.get("uploaded", ""), reverse=True)


def resolve_name(name: str, directories: Iterable[str] | None = None, fs: HadoopFS | None = None) -> dict:
    """The newest upload of environment ``name`` in the user's cache, else in the published directory.

    Where a public copy of the same content exists, that copy is used: YARN
    keeps one unpacked public copy per node for every user.
    """
    fs = fs or HadoopFS()
    directories = [d.rstrip("/") for d in (directories or [default_upload_dir(), PUBLISHED_DIR])]
    named = [r for r in _records(directories, fs) if r.get("name") == name and r.get("url")]
    for directory in directories:
        found = [r for r in named if r["url"].startswith(directory + "/")]
        if found:
            best = found[0]
            public = [r for r in named if r.get("public") and r.get("sha256") == best.get("sha256")]
            return public[0] if public else best
    raise UsageError(f"no environment named {name!r} in {' or '.join(directories)}; see `skein-jupyter env "
                     "list`, or give an archive path or hdfs:// URL")


@dataclasses.dataclass(frozen=True)
class PreparedEnvironment:
    """An environment ready for a launch: on the cluster, with what the spec needs to know."""

    url: str
    public: bool
    uploaded: bool        # whether this preparation had to upload it
    metadata: dict        # empty for an hdfs:// archive without a record beside it


def prepare(ref: EnvironmentRef, fs: HadoopFS | None = None, progress: Progress | None = None,
            user: str | None = None) -> PreparedEnvironment:
    """Make the environment a launch names available on the cluster, as cheaply as possible.

    A local archive is uploaded once into the user's cache and found by its
    content hash afterwards (its recorded hash is trusted while its size and
    modification time are unchanged, so an unchanged archive costs one
    existence check); an ``hdfs://`` archive is used as it is (its existence
    is checked at submission); a name is resolved among the uploaded and
    published environments.

    Parameters
    ----------
    ref : EnvironmentRef
    user : str, optional
        The Hadoop user the job runs as (a proxy user): its cache is used, through ``fs`` acting as
        that user. Yours by default.
    """
    from .environment import EnvironmentKind

    fs = fs or HadoopFS()
    if ref.kind is EnvironmentKind.LOCAL:
        result = upload(ref.value, to=default_upload_dir(user), fs=fs, progress=progress)
        return PreparedEnvironment(result.url, False, result.uploaded, result.metadata)
    if ref.kind is EnvironmentKind.NAME:
        record = resolve_name(ref.value, directories=[default_upload_dir(user), PUBLISHED_DIR], fs=fs)
        return PreparedEnvironment(record["url"], bool(record.get("public")), False, record)
    # Not checked here: the Skein driver stats it at submission anyway (saving a JVM start),
    # and launch.submit turns a missing file into a usage error.
    return PreparedEnvironment(ref.value, False, False, {})
