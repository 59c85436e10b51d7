"""Where a job's packed Python environment comes from: the one way in for that concept."""
import dataclasses
import enum
import re


__all__ = ["EnvironmentKind", "EnvironmentRef", "check_name"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".zip", ".tar")


def check_name(name: str) -> None:
    """Raise ValueError unless ``name`` can be given as ``--env NAME`` (letters, digits, '.', '_', '-')."""
    if not isinstance(name, str) or not _NAME.match(name) or name.endswith(_ARCHIVE_SUFFIXES):
        raise ValueError(f"{name!r} is not a valid environment name; names use letters, digits, "
                         "'.', '_' and '-', start with a letter or digit, and do not end in an archive suffix")


class EnvironmentKind(enum.Enum):
    LOCAL = "local"      # an archive on this machine, uploaded (once, by hash) at launch
    HDFS = "hdfs"        # an archive already on the cluster filesystem
    NAME = "name"        # a name from `skein-jupyter env list`, published by an admin


@dataclasses.dataclass(frozen=True)
class EnvironmentRef:
    """A reference to a packed environment, as written in a recipe or ``--env``.

    ``hdfs://``/``viewfs://`` URLs are cluster archives, values ending in an
    archive suffix (or containing a ``/``) are local archives, anything else
    is a published name.
    """

    kind: EnvironmentKind
    value: str

    @classmethod
    def parse(cls, text: str) -> "EnvironmentRef":
        if not isinstance(text, str) or not text.strip():
            raise ValueError("an environment is a local archive path, an hdfs:// URL, or a published name")
        text = text.strip()
        scheme = text.split("://", 1)[0].lower() if "://" in text else ""
        if scheme in ("hdfs", "viewfs"):
            if not text.endswith(_ARCHIVE_SUFFIXES):
                raise ValueError(f"{text!r} is not an environment archive; it must end in .tar.gz, .tgz, "
                                 ".zip or .tar")
            return cls(EnvironmentKind.HDFS, text)
        if scheme:
            raise ValueError(f"{text!r} has an unsupported scheme {scheme}://; use a local path, "
                             "hdfs:// or viewfs://")
        if text.endswith(_ARCHIVE_SUFFIXES) or "/" in text:
            if not text.endswith(_ARCHIVE_SUFFIXES):
                raise ValueError(f"{text!r} is not an environment archive; pack one with "
                                 "`skein-jupyter env pack`")
            return cls(EnvironmentKind.LOCAL, text)
        check_name(text)
        return cls(EnvironmentKind.NAME, text)

    def __str__(self) -> str:
        return self.value

