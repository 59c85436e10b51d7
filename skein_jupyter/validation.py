"""Checks of names and locations a user gives, made once at the edge before anything is submitted.

Each check raises ``ValueError`` with a message that says what is wrong and
what to write instead; callers prefix it with the field or flag it came
from and raise :class:`~skein_jupyter.exceptions.UsageError`.
"""
import re
import string
from collections.abc import Collection, Iterable

from .runtime.job import check_env_name, check_output_template, check_parameter_name

__all__ = ["check_parameter_name", "check_parameter_names", "check_env_name", "check_file_name", "check_app_name",
           "check_cluster_path", "check_output_location", "check_filesystem_url", "FILESYSTEM_SCHEMES"]

_FILE_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
#: ``scheme://authority`` at the start of a URL: the one place a ``:`` belongs in a cluster location.
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/]*")
#: Characters ``hdfs dfs`` expands as a glob, and ``:`` which HDFS refuses in a path.
_REFUSED = ":[]*?{}"
#: Filesystems Hadoop clients read and write; ``env upload --to`` takes only these.
FILESYSTEM_SCHEMES = ("hdfs", "viewfs", "file", "s3a", "abfs", "abfss", "gs", "o3fs", "ofs")


def check_parameter_names(names: Iterable[object]) -> None:
    """:func:`check_parameter_name` for each name."""
    for name in names:
        check_parameter_name(name)


def check_app_name(name: object) -> None:
    """Application names: they fill ``{name}`` in output locations, so one safe path component.

    >>> check_app_name("nightly-report")
    >>> check_app_name("a:b*c")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: 'a:b*c' is not an application name; use letters, digits, '.', '_' and '-' ...
    """
    if not isinstance(name, str) or not _FILE_NAME.match(name) or name.startswith(".") or len(name) > 128:
        raise ValueError(f"{name!r} is not an application name; use letters, digits, '.', '_' and '-' (at most "
                         "128, not starting with '.'), as it may name the output directory ({name})")


def check_file_name(name: object, reserved: Collection[str] = ()) -> None:
    """Names of localized files: one safe path component, not a name the job uses itself."""
    if not isinstance(name, str) or not _FILE_NAME.match(name) or name.startswith(".") or ".." in name:
        raise ValueError(f"{name!r} is not a safe file name; use letters, digits, '.', '_' and '-', "
                         "with no '/' or '..' and not starting with '.'")
    if name in reserved:
        raise ValueError(f"{name!r} is a name the job uses itself; choose another name "
                         f"(taken: {', '.join(sorted(reserved))})")


def check_cluster_path(location: str) -> None:
    """A notebook or output location HDFS accepts and ``hdfs dfs`` takes literally.

    ``:`` is allowed only in a scheme and authority (``hdfs://host:8020/``).

    >>> check_cluster_path("hdfs://nn:8020/data/report.ipynb")
    >>> check_cluster_path("/data/a:b.ipynb")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: '/data/a:b.ipynb' has ':' which HDFS refuses in a path or ...; rename it without :
    """
    _check_path(location, location)


def _check_path(path: str, shown: str) -> None:
    bad = sorted({c for c in _SCHEME.sub("", path, count=1) if c in _REFUSED})
    if bad:
        chars = " ".join(bad)
        raise ValueError(f"{shown!r} has {chars!r} which HDFS refuses in a path or `hdfs dfs` reads as a "
                         f"glob; rename it without {chars}")


def check_output_location(template: str) -> None:
    """An output location: only the known placeholders, and otherwise a path :func:`check_cluster_path` takes."""
    check_output_template(template)
    # What is left once the placeholders are out; ``{{``/``}}`` are braces there: globs as well.
    literal = "".join(text for text, _, _, _ in string.Formatter().parse(template))
    _check_path(literal, template)


def check_filesystem_url(url: str) -> None:
    """A directory on a Hadoop filesystem: a path, or a URL whose scheme is a filesystem.

    >>> check_filesystem_url("hdfs:///apps/envs")
    >>> check_filesystem_url("http://example.com/envs")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: 'http://example.com/envs' is not on a Hadoop filesystem (http:// is not one); use hdfs://, ...
    """
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme and scheme not in FILESYSTEM_SCHEMES:
        known = ", ".join(f"{s}://" for s in FILESYSTEM_SCHEMES[:-1]) + f" or {FILESYSTEM_SCHEMES[-1]}://"
        raise ValueError(f"{url!r} is not on a Hadoop filesystem ({scheme}:// is not one); use {known}")
    check_cluster_path(url)
