"""What the YARN scheduler allows one container, read from the ResourceManager's REST API.

The limit that decides whether a container request can ever be granted is
the scheduler's maximum allocation (``yarn.scheduler.maximum-allocation-*``,
per queue where the capacity scheduler sets one), not the size of the
largest node: a request above it is refused by YARN at submission, or sits
in ACCEPTED for ever. GPUs are the ``yarn.io/gpu`` resource type; a cluster
without that type has none to give.
"""
import dataclasses
import json
import urllib.request
import xml.etree.ElementTree as ElementTree

__all__ = ["Allocation", "GPU", "rm_web_url", "maximum_allocation", "allocation_from_scheduler"]

GPU = "yarn.io/gpu"
_TIMEOUT = 5


@dataclasses.dataclass(frozen=True)
class Allocation:
    """The most one container may ask for; ``gpus`` is None where the cluster has no GPU resource type."""

    memory_mb: int
    vcores: int
    gpus: int | None = None
    source: str = "the scheduler's maximum allocation"


def _conf_dirs():
    from .identity import hadoop_conf_dirs

    return hadoop_conf_dirs()


def _site_properties(name):
    for directory in _conf_dirs():
        path = directory / name
        if path.is_file():
            try:
                root = ElementTree.parse(path).getroot()
            except ElementTree.ParseError:
                return {}
            return {p.findtext("name"): (p.findtext("value") or "").strip() for p in root.iter("property")}
    return {}


def rm_web_url(properties: dict | None = None) -> str | None:
    """``http(s)://host:port`` of the ResourceManager's web address in the Hadoop configuration, or None.

    With ResourceManager HA, the first configured ResourceManager's.
    """
    props = _site_properties("yarn-site.xml") if properties is None else properties
    https = props.get("yarn.http.policy", "HTTP_ONLY") == "HTTPS_ONLY"
    key = "yarn.resourcemanager.webapp.https.address" if https else "yarn.resourcemanager.webapp.address"
    ids = [i.strip() for i in props.get("yarn.resourcemanager.ha.rm-ids", "").split(",") if i.strip()]
    candidates = [f"{key}.{i}" for i in ids] + [key]
    address = next((props[k] for k in candidates if props.get(k)), None)
    if address is None:
        host = next((props[k] for k in [f"yarn.resourcemanager.hostname.{i}" for i in ids]
                     + ["yarn.resourcemanager.hostname"] if props.get(k)), None)
        if host is None:
            return None
        address = f"{host}:{8090 if https else 8088}"
    if address.startswith("0.0.0.0:"):
        address = "localhost:" + address.split(":", 1)[1]
    return f"{'https' if https else 'http'}://{address}"


def _get_json(url):
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=_TIMEOUT) as response:
        return json.loads(response.read().decode())


def _find_queue(queue_info, name):
    for queue in (queue_info.get("queues") or {}).get("queue") or []:
        if queue.get("queueName") == name or queue.get("queuePath") == name:
            return queue
        found = _find_queue(queue, name)
        if found is not None:
            return found
    return None


def _allocation(data, source):
    if not isinstance(data, dict) or "memory" not in data:
        return None
    gpus = None
    infos = ((data.get("resourceInformations") or {}).get("resourceInformation")) or []
    for info in infos:
        if info.get("name") == GPU:
            gpus = int(info.get("value", 0))
    return Allocation(int(data["memory"]), int(data.get("vCores", data.get("vcores", 0))), gpus, source)


def allocation_from_scheduler(scheduler: dict, queue: str | None = None) -> "Allocation | None":
    """The :class:`Allocation` in a ``/ws/v1/cluster/scheduler`` answer: the queue's maximum, else the root's.

    Returns None when the answer carries no maximum allocation (schedulers other than the capacity
    scheduler on older Hadoop).
    """
    info = (scheduler.get("scheduler") or {}).get("schedulerInfo") or {}
    if queue:
        found = _find_queue(info, queue)
        if found is not None:
            allocation = _allocation(found.get("maximumAllocation"), f"the maximum allocation of queue {queue}")
            if allocation is not None:
                return allocation
    return _allocation(info.get("maximumAllocation"), "the scheduler's maximum allocation")


def _from_conf(base):
    """``yarn.scheduler.maximum-allocation-mb/-vcores`` as the ResourceManager itself has them."""
    values = {}
    for name in ("yarn.scheduler.maximum-allocation-mb", "yarn.scheduler.maximum-allocation-vcores"):
        with urllib.request.urlopen(f"{base}/conf?name={name}", timeout=_TIMEOUT) as response:
            root = ElementTree.fromstring(response.read())
        values[name] = int(root.findtext("property/value"))
    return Allocation(values["yarn.scheduler.maximum-allocation-mb"],
                      values["yarn.scheduler.maximum-allocation-vcores"], None, "yarn.scheduler.maximum-allocation-mb/-vcores")


def maximum_allocation(queue: str | None = None, base: str | None = None, gpus: bool = True) -> "Allocation | None":
    """The :class:`Allocation` the ResourceManager grants one container in ``queue``, or None if unknown.

    Parameters
    ----------
    queue : str, optional
        The queue of the job; its own maximum applies where the scheduler reports one.
    base : str, optional
        The ResourceManager's web address; :func:`rm_web_url` by default.
    gpus : bool
        Also find the GPU limit where the scheduler's answer has none (one more request).
    """
    base = base or rm_web_url()
    if base is None:
        return None
    try:
        allocation = allocation_from_scheduler(_get_json(f"{base}/ws/v1/cluster/scheduler"), queue)
        allocation = allocation or _from_conf(base)
        if allocation.gpus is None and gpus:
            allocation = dataclasses.replace(allocation, gpus=_cluster_gpus(base))
        return allocation
    except (OSError, ValueError, TypeError, AttributeError, ElementTree.ParseError):
        return None  # e.g. a web UI behind SPNEGO: the caller falls back to what Skein reports


def _cluster_gpus(base):
    """The most GPUs the ``yarn.io/gpu`` resource type allows, or None if the cluster has no such type."""
    nodes = _get_json(f"{base}/ws/v1/cluster/nodes")
    most = None
    for node in (nodes.get("nodes") or {}).get("node") or []:
        infos = ((node.get("totalResource") or {}).get("resourceInformations") or {}).get("resourceInformation") or []
        for item in infos:
            if item.get("name") == GPU:
                most = max(most or 0, int(item.get("value", 0)))
    return most
