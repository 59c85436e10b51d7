"""Assemble Apache Hadoop from its jars on Maven Central, once, into a cache."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING

from ..exceptions import FetchError

if TYPE_CHECKING:
    from ..progress import Progress

__all__ = ["ARTIFACTS", "ensure_jars", "build_pom"]

#: Listed one by one: several are only ``provided`` dependencies of the server
#: modules, so resolving the servers alone would miss them.
ARTIFACTS = (
    "hadoop-common",
    "hadoop-hdfs",
    "hadoop-hdfs-client",
    "hadoop-yarn-api",
    "hadoop-yarn-common",
    "hadoop-yarn-client",
    "hadoop-yarn-server-common",
    "hadoop-yarn-server-resourcemanager",
    "hadoop-yarn-server-nodemanager",
    "hadoop-yarn-server-web-proxy",  # Skein's web UI uses AmIpFilter
    "hadoop-yarn-server-applicationhistoryservice",
    "hadoop-yarn-server-timelineservice",
    "hadoop-mapreduce-client-core",  # Skein's driver uses TokenCache
)

CENTRAL = "https://repo.maven.apache.org/maven2"
_POM_NS = "http://maven.apache.org/POM/4.0.0"


def _sub(parent, tag, text=None):
    node = ET.SubElement(parent, tag)
    if text is not None:
        node.text = text
    return node


def build_pom(version: str) -> str:
    """A ``packaging=pom`` project whose runtime dependencies are Hadoop's."""
    project = ET.Element("project", xmlns=_POM_NS)
    for tag, text in (("modelVersion", "4.0.0"), ("groupId", "skein-jupyter.sandbox"),
                      ("artifactId", "hadoop-jars"), ("version", version), ("packaging", "pom")):
        _sub(project, tag, text)
    deps = _sub(project, "dependencies")
    for artifact in ARTIFACTS:
        dep = _sub(deps, "dependency")
        _sub(dep, "groupId", "org.apache.hadoop")
        _sub(dep, "artifactId", artifact)
        _sub(dep, "version", version)
    return ET.tostring(project, encoding="unicode")


def _settings(mirror):
    settings = ET.Element("settings")
    node = _sub(_sub(settings, "mirrors"), "mirror")
    _sub(node, "id", "skein-jupyter-mirror")
    _sub(node, "mirrorOf", "*")
    _sub(node, "url", mirror)
    return ET.tostring(settings, encoding="unicode")


def _first_error(output):
    for line in output.splitlines():
        line = line.strip()
        if line.startswith("[ERROR]") and len(line) > len("[ERROR] "):
            text = line[len("[ERROR] "):]
            return text if len(text) <= 300 else text[:297] + "..."
    return output.strip().splitlines()[-1][:300] if output.strip() else "no output"


def ensure_jars(dest: str | os.PathLike[str], version: str, mirror: str | None = None,
                local_repo: str | None = None, progress: Progress | None = None) -> bool:
    """Make ``dest`` hold Hadoop ``version``'s runtime jars; a no-op when it already does.

    The jars are fetched into a temporary directory beside ``dest`` and
    renamed into place only when Maven succeeded, so an interrupted or
    failed fetch never leaves a half-filled cache.

    Parameters
    ----------
    dest : Path
        The cache directory for this Hadoop version.
    version : str
        Hadoop release, e.g. ``"3.5.0"``.
    mirror : str, optional
        Maven repository URL to use instead of Maven Central.
    local_repo : str, optional
        Maven's local repository (``-Dmaven.repo.local``); Maven's default otherwise.

    Returns
    -------
    bool
        Whether anything was fetched.
    """
    dest = Path(dest)
    if dest.is_dir():
        return False
    mvn = shutil.which("mvn")
    if mvn is None:
        raise FetchError("Maven (mvn) is not on PATH; it fetches Hadoop's jars once: "
                         "install it (e.g. `apt-get install maven`)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    source = mirror or CENTRAL
    if progress:
        progress.step(f"fetching Hadoop {version} jars from {source} (first time only, about 100 MB)")
    with tempfile.TemporaryDirectory(prefix=f".{dest.name}.partial-", dir=dest.parent) as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "pom.xml").write_text(build_pom(version))
        command = [mvn, "-B", "-q", "-f", str(tmp / "pom.xml"), "dependency:copy-dependencies",
                   "-DincludeScope=runtime", "-DexcludeTypes=test-jar",
                   f"-DoutputDirectory={tmp / 'lib'}"]
        if mirror:
            (tmp / "settings.xml").write_text(_settings(mirror))
            command += ["-s", str(tmp / "settings.xml")]
        if local_repo:
            command.append(f"-Dmaven.repo.local={local_repo}")
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=1800)
        except subprocess.TimeoutExpired:
            raise FetchError(f"fetching Hadoop {version} jars from {source} took over 30 minutes; "
                             "check the network or set SKEIN_JUPYTER_MAVEN_MIRROR") from None
        jars = list((tmp / "lib").glob("*.jar"))
        if proc.returncode != 0 or not jars:
            raise FetchError(f"could not fetch Hadoop {version} jars from {source}: "
                             f"{_first_error(proc.stdout + proc.stderr)}; check the network, or set "
                             "SKEIN_JUPYTER_MAVEN_MIRROR to a Maven repository you can reach")
        os.rename(tmp / "lib", dest)
    return True
