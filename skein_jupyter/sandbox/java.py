"""Find a Java runtime that Hadoop's daemons can run on."""
import dataclasses
import os
import re
import shutil
import subprocess
from pathlib import Path

from ..exceptions import JavaError

__all__ = ["JavaRuntime", "find_java", "parse_java_version", "SUPPORTED"]

#: Hadoop 3.5.0 is built for Java 17 (class file version 61). Its login code
#: uses Subject.getSubject, which throws on Java 23 and later.
SUPPORTED = range(17, 23)

_INSTALL_HINT = "install OpenJDK 17 (e.g. `apt-get install openjdk-17-jdk-headless`) and set JAVA_HOME to it"


@dataclasses.dataclass(frozen=True)
class JavaRuntime:
    home: Path
    major: int

    @property
    def java(self) -> Path:
        return self.home / "bin" / "java"


def parse_java_version(text: str) -> int | None:
    """The major version in a ``release`` file or ``java -version`` output.

    >>> parse_java_version('openjdk version "1.8.0_392"')
    8
    >>> parse_java_version('JAVA_VERSION="17.0.15"')
    17
    """
    match = re.search(r'version\s*=?\s*"(\d+)(?:\.(\d+))?', text, re.IGNORECASE)
    if not match:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2):  # "1.8.0" is Java 8
        major = int(match.group(2))
    return major


def _major_version(home):
    release = home / "release"
    if release.is_file():
        major = parse_java_version(release.read_text(errors="replace"))
        if major:
            return major
    try:
        out = subprocess.run([str(home / "bin" / "java"), "-version"], capture_output=True,
                             text=True, timeout=60)
    except OSError:
        return None
    return parse_java_version(out.stderr + out.stdout)


def _check(home, origin):
    home = Path(home)
    if not (home / "bin" / "java").is_file():
        raise JavaError(f"{origin}={home} has no bin/java; {_INSTALL_HINT}")
    major = _major_version(home)
    if major not in SUPPORTED:
        found = _candidates()
        fix = f"set JAVA_HOME={found[0].home}" if found else _INSTALL_HINT
        raise JavaError(f"{origin}={home} is Java {major}, but the sandbox's Hadoop needs Java "
                        f"{SUPPORTED.start}-{SUPPORTED.stop - 1}; {fix}")
    return JavaRuntime(home, major)


def _candidates():
    """Supported JDKs in the usual places, Java 17 first."""
    homes = []
    on_path = shutil.which("java")
    if on_path:
        homes.append(Path(os.path.realpath(on_path)).parent.parent)
    jvm = Path("/usr/lib/jvm")
    if jvm.is_dir():
        homes.extend(sorted(p for p in jvm.iterdir() if p.is_dir() and not p.is_symlink()))
    found = {}
    for home in homes:
        if (home / "bin" / "java").is_file() and home not in found:
            major = _major_version(home)
            if major in SUPPORTED:
                found[home] = JavaRuntime(home, major)
    return sorted(found.values(), key=lambda rt: (rt.major != 17, rt.major))


def find_java(java_home: str | os.PathLike[str] | None = None) -> JavaRuntime:
    """A supported Java runtime.

    An explicit ``java_home``, else ``$JAVA_HOME``, must be supported;
    otherwise the ``java`` on PATH and the JDKs in /usr/lib/jvm are tried.

    Raises
    ------
    JavaError
        No supported Java was found, or the one named is missing or unsupported.
    """
    if java_home:
        return _check(java_home, "java_home")
    if os.environ.get("JAVA_HOME"):
        return _check(os.environ["JAVA_HOME"], "JAVA_HOME")
    found = _candidates()
    if not found:
        raise JavaError(f"no Java {SUPPORTED.start}-{SUPPORTED.stop - 1} found on PATH or in "
                        f"/usr/lib/jvm; {_INSTALL_HINT}")
    return found[0]
