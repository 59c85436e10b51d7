"""Pure logic of the sandbox: settings, ports, Java versions, site files, Maven pom. No cluster."""
import json
import xml.etree.ElementTree as ET

import pytest

from skein_jupyter.exceptions import JavaError, UsageError
from skein_jupyter.sandbox import DEFAULT_PORTS, SandboxConfig
from skein_jupyter.sandbox.config import parse_ports
from skein_jupyter.sandbox.hadoop_config import site_files, to_xml
from skein_jupyter.sandbox.jars import ARTIFACTS, build_pom
from skein_jupyter.sandbox.java import find_java, parse_java_version


def test_parse_ports_reads_names_and_numbers():
    assert parse_ports("namenode=19000, resourcemanager.http=18088") == {
        "namenode": 19000, "resourcemanager.http": 18088}


@pytest.mark.parametrize("text, fragment", [
    ("namnode=9000", "unknown sandbox port 'namnode=9000'"),
    ("namenode", "unknown sandbox port 'namenode'"),
    ("namenode=http", "not a port number"),
    ("namenode=70000", "not a port number"),
])
def test_parse_ports_rejects_bad_input(text, fragment):
    with pytest.raises(UsageError, match=fragment) as info:
        parse_ports(text)
    assert info.value.exit_code == 2


@pytest.mark.parametrize("text, major", [
    ('openjdk version "1.8.0_392"', 8),
    ('openjdk version "17.0.15" 2025-04-15', 17),
    ('JAVA_VERSION="25.0.3"', 25),
    ('IMPLEMENTOR="x"\nJAVA_VERSION="21"', 21),
    ("garbage", None),
])
def test_parse_java_version(text, major):
    assert parse_java_version(text) == major


def _fake_jdk(tmp_path, version):
    home = tmp_path / f"jdk-{version}"
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "java").write_text("#!/bin/sh\nexit 0\n")
    (home / "bin" / "java").chmod(0o755)
    (home / "release").write_text(f'JAVA_VERSION="{version}"\n')
    return home


def test_java_missing_is_a_clear_error(tmp_path):
    with pytest.raises(JavaError, match=r"java_home=.*/nowhere has no bin/java; install OpenJDK 17"):
        find_java(str(tmp_path / "nowhere"))


@pytest.mark.parametrize("version, major", [("1.8.0_392", 8), ("25.0.1", 25)])
def test_java_too_old_or_too_new_is_a_clear_error(tmp_path, version, major):
    with pytest.raises(JavaError, match=f"is Java {major}, but the sandbox's Hadoop needs Java 17-22"):
        find_java(str(_fake_jdk(tmp_path, version)))


def test_java_from_environment_is_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(_fake_jdk(tmp_path, "11.0.2")))
    with pytest.raises(JavaError, match="JAVA_HOME=.* is Java 11"):
        find_java()


def test_config_layers_saved_then_environment_then_arguments(tmp_path, monkeypatch):
    monkeypatch.delenv("SKEIN_JUPYTER_SANDBOX_PORTS", raising=False)  # a developer's own sandbox ports
    root = tmp_path / "box"
    SandboxConfig.load(root, ports={"namenode": 19000, "namenode.http": 19870}).save()
    monkeypatch.setenv("SKEIN_JUPYTER_SANDBOX_PORTS", "namenode.http=29870")
    config = SandboxConfig.load(root, ports={"resourcemanager": 18032})
    assert config.ports["namenode"] == 19000          # saved
    assert config.ports["namenode.http"] == 29870     # environment beats saved
    assert config.ports["resourcemanager"] == 18032   # argument
    assert config.ports["nodemanager.http"] == DEFAULT_PORTS["nodemanager.http"]
    saved = json.loads((root / "sandbox.json").read_text())
    assert saved["ports"]["namenode"] == 19000


def test_site_files_use_the_configured_ports_and_dirs(tmp_path):
    config = SandboxConfig.load(tmp_path / "box", ports={"namenode": 19000, "resourcemanager.http": 18088})
    files = site_files(config)
    assert files["core-site.xml"]["fs.defaultFS"] == "hdfs://localhost:19000"
    yarn = files["yarn-site.xml"]
    assert yarn["yarn.resourcemanager.webapp.address"] == "localhost:18088"
    assert yarn["yarn.nodemanager.local-dirs"].startswith(str(tmp_path / "box"))
    assert yarn["yarn.nodemanager.disk-health-checker.max-disk-utilization-per-disk-percentage"] == "99.5"
    assert "JAVA_HOME" in yarn["yarn.nodemanager.env-whitelist"].split(",")
    assert yarn["yarn.application.classpath"] == f"{config.conf_dir},{config.lib_dir}/*"
    assert files["capacity-scheduler.xml"]["yarn.scheduler.capacity.maximum-am-resource-percent"] == "0.5"


def test_site_xml_round_trips():
    root = ET.fromstring(to_xml({"a.b": "1", "c": "x<y"}))
    assert {p.find("name").text: p.find("value").text for p in root} == {"a.b": "1", "c": "x<y"}


def test_pom_lists_every_artifact_at_the_version():
    root = ET.fromstring(build_pom("3.5.0"))
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    deps = root.findall("m:dependencies/m:dependency", ns)
    assert [d.find("m:artifactId", ns).text for d in deps] == list(ARTIFACTS)
    assert {d.find("m:version", ns).text for d in deps} == {"3.5.0"}
    assert root.find("m:packaging", ns).text == "pom"
