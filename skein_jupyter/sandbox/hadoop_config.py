"""Hadoop's site files for a single-node sandbox, built as dicts and written as XML."""
from __future__ import annotations

import getpass
import shlex
import xml.etree.ElementTree as ET
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import SandboxConfig
    from .java import JavaRuntime

__all__ = ["site_files", "write_conf", "VFORK", "GPU"]

VFORK = "-Djdk.lang.Process.launchMechanism=VFORK"
GPU = "yarn.io/gpu"


def _hostport(config, name):
    return f"localhost:{config.ports[name]}"


def site_files(config: SandboxConfig) -> dict[str, dict[str, str]]:
    """``{file name: {property: value}}`` for core, hdfs, yarn and capacity-scheduler."""
    user = getpass.getuser()
    data = config.data_dir
    core = {
        "fs.defaultFS": config.hdfs_url,
        "hadoop.tmp.dir": str(data / "tmp"),
        # Lets tests and admins submit on behalf of other users (proxy user).
        f"hadoop.proxyuser.{user}.hosts": "*",
        f"hadoop.proxyuser.{user}.groups": "*",
    }
    hdfs = {
        "dfs.replication": "1",
        "dfs.namenode.name.dir": str(data / "name"),
        "dfs.datanode.data.dir": str(data / "data"),
        "dfs.namenode.rpc-address": _hostport(config, "namenode"),
        "dfs.namenode.http-address": _hostport(config, "namenode.http"),
        "dfs.datanode.address": _hostport(config, "datanode"),
        "dfs.datanode.http.address": _hostport(config, "datanode.http"),
        "dfs.datanode.ipc.address": _hostport(config, "datanode.ipc"),
        "dfs.datanode.hostname": "localhost",
        "dfs.namenode.datanode.registration.ip-hostname-check": "false",
        "dfs.namenode.safemode.extension": "0",
        "dfs.namenode.secondary.http-address": "localhost:0",
        "dfs.webhdfs.enabled": "true",
    }
    yarn = {
        "yarn.resourcemanager.hostname": "localhost",
        "yarn.resourcemanager.address": _hostport(config, "resourcemanager"),
        "yarn.resourcemanager.scheduler.address": _hostport(config, "resourcemanager.scheduler"),
        "yarn.resourcemanager.resource-tracker.address": _hostport(config, "resourcemanager.tracker"),
        "yarn.resourcemanager.admin.address": _hostport(config, "resourcemanager.admin"),
        "yarn.resourcemanager.webapp.address": _hostport(config, "resourcemanager.http"),
        "yarn.nodemanager.hostname": "localhost",
        "yarn.nodemanager.address": _hostport(config, "nodemanager"),
        "yarn.nodemanager.localizer.address": _hostport(config, "nodemanager.localizer"),
        "yarn.nodemanager.webapp.address": _hostport(config, "nodemanager.http"),
        "yarn.nodemanager.resource.memory-mb": str(config.nodemanager_memory_mb),
        "yarn.nodemanager.resource.cpu-vcores": str(config.nodemanager_vcores),
        "yarn.scheduler.minimum-allocation-mb": "32",
        "yarn.scheduler.maximum-allocation-mb": str(config.nodemanager_memory_mb),
        "yarn.scheduler.maximum-allocation-vcores": str(config.nodemanager_vcores),
        "yarn.nodemanager.vmem-check-enabled": "false",
        # The default 90% marks a node UNHEALTHY on a fairly full disk, and then
        # applications sit in ACCEPTED forever. `up` checks free space itself.
        "yarn.nodemanager.disk-health-checker.max-disk-utilization-per-disk-percentage": "99.5",
        "yarn.nodemanager.local-dirs": str(data / "nm-local"),
        "yarn.nodemanager.log-dirs": str(data / "nm-logs"),
        "yarn.nodemanager.env-whitelist": ",".join((
            "JAVA_HOME", "HADOOP_COMMON_HOME", "HADOOP_HDFS_HOME", "HADOOP_CONF_DIR",
            "CLASSPATH_PREPEND_DISTCACHE", "HADOOP_YARN_HOME", "HADOOP_HOME", "PATH", "LANG", "TZ")),
        # Skein's ApplicationMaster classpath is exactly this.
        "yarn.application.classpath": f"{config.conf_dir},{config.lib_dir}/*",
        "yarn.log-aggregation-enable": "true",
        "yarn.nodemanager.remote-app-log-dir": "/tmp/logs",
        "yarn.log-aggregation.retain-seconds": "604800",
        "yarn.timeline-service.enabled": "false",
        "yarn.resourcemanager.am.max-attempts": "2",
        "yarn.resourcemanager.recovery.enabled": "false",
        # Faster allocation on a one-node cluster than the 1 s default.
        "yarn.resourcemanager.nodemanagers.heartbeat-interval-ms": "250",
        "yarn.nodemanager.delete.debug-delay-sec": "0",
        # Without libhadoop (Maven has none), localizing an archive forks one
        # `chmod` per file; vfork makes each fork several times cheaper.
        "yarn.nodemanager.container-localizer.java.opts": f"-Xmx256m {VFORK}",
    }
    queue = "yarn.scheduler.capacity.root"
    capacity = {
        f"{queue}.queues": "default",
        f"{queue}.default.capacity": "100",
        f"{queue}.default.maximum-capacity": "100",
        f"{queue}.default.state": "RUNNING",
        f"{queue}.default.acl_submit_applications": "*",
        f"{queue}.default.acl_administer_queue": "*",
        # The default 0.1 admits only one small ApplicationMaster at a time.
        "yarn.scheduler.capacity.maximum-am-resource-percent": "0.5",
        "yarn.scheduler.capacity.resource-calculator":
            "org.apache.hadoop.yarn.util.resource.DefaultResourceCalculator",
    }
    files = {"core-site.xml": core, "hdfs-site.xml": hdfs, "yarn-site.xml": yarn,
             "capacity-scheduler.xml": capacity}
    if config.gpus:
        files.update(_gpu_files(config.gpus))
        # The default calculator counts memory only: GPUs (and vcores) would
        # be handed out without being accounted.
        capacity["yarn.scheduler.capacity.resource-calculator"] = (
            "org.apache.hadoop.yarn.util.resource.DominantResourceCalculator")
    return files


def _gpu_files(gpus):
    """``yarn.io/gpu`` as a plain countable resource type: declared, counted on the node, capped.

    Without ``yarn.nodemanager.resource-plugins`` (the GPU plugin that runs
    nvidia-smi), the NodeManager takes the count from node-resources.xml as
    it does for any custom resource type, so no GPU hardware is needed.
    """
    resource_types = {
        "yarn.resource-types": GPU,
        f"yarn.resource-types.{GPU}.minimum-allocation": "0",
        f"yarn.resource-types.{GPU}.maximum-allocation": str(gpus),
    }
    node_resources = {f"yarn.nodemanager.resource-type.{GPU}": str(gpus)}
    return {"resource-types.xml": resource_types, "node-resources.xml": node_resources}


def to_xml(properties):
    root = ET.Element("configuration")
    for name, value in properties.items():
        prop = ET.SubElement(root, "property")
        ET.SubElement(prop, "name").text = name
        ET.SubElement(prop, "value").text = value
    ET.indent(root)
    return '<?xml version="1.0"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


#: Web apps HDFS's HTTP servers look up as classpath resources. Their pages
#: ship only in Hadoop's tarball, not in the Maven jars; the REST endpoints
#: (/jmx, /webhdfs/v1) are registered in code and work without them.
HDFS_WEBAPPS = ("hdfs", "datanode", "secondary", "journal", "router")

_PLACEHOLDER = """<!doctype html><title>skein-jupyter sandbox</title>
<p>This sandbox is assembled from Hadoop's Maven jars, which do not include the
HDFS web pages. Use <a href="/jmx">/jmx</a>, WebHDFS (<code>/webhdfs/v1/</code>)
or <code>hdfs dfs</code> after <code>eval "$(skein-jupyter sandbox env)"</code>.</p>
"""


def _write_webapps(config):
    for name in HDFS_WEBAPPS:
        directory = config.root / "share" / "webapps" / name
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "index.html").write_text(_PLACEHOLDER)


def write_conf(config: SandboxConfig, java: JavaRuntime) -> None:
    """Write the conf dir and the launchers (``bin/hadoop``, ``bin/hdfs``, ``bin/yarn``)."""
    config.conf_dir.mkdir(parents=True, exist_ok=True)
    files = site_files(config)
    for stale in ("resource-types.xml", "node-resources.xml"):  # from an earlier `up --gpus N`
        if stale not in files:
            (config.conf_dir / stale).unlink(missing_ok=True)
    for name, properties in files.items():
        (config.conf_dir / name).write_text(to_xml(properties))
    package = resources.files(__package__)
    (config.conf_dir / "log4j.properties").write_text(package.joinpath("log4j.properties").read_text())
    # The launchers read JAVA_HOME from here when the caller has none set.
    (config.conf_dir / "sandbox-env.sh").write_text(
        f": \"${{JAVA_HOME:={shlex.quote(str(java.home))}}}\"\nexport JAVA_HOME\n")
    _write_webapps(config)
    config.bin_dir.mkdir(parents=True, exist_ok=True)
    launcher = config.bin_dir / "hadoop-launcher"
    launcher.write_text(package.joinpath("launcher.sh").read_text())
    launcher.chmod(0o755)
    for tool in ("hadoop", "hdfs", "yarn"):
        link = config.bin_dir / tool
        if not link.is_symlink():
            link.symlink_to(launcher.name)
