"""GPUs (the countable ``yarn.io/gpu`` resource): declared by the sandbox, scheduled, refused when absent.

The session sandbox declares ``SESSION_GPUS`` GPUs (tests/conftest.py). A
cluster without GPUs is tested against the answers of a real sandbox
ResourceManager without them (tests/data/rm/nogpu-*.json, captured from a
Hadoop 3.5.0 sandbox started without ``--gpus``), served over HTTP so that the
real reading code runs on them.
"""
import uuid
import http.server
import json
import threading
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import SESSION_GPUS, submitted_here
from skein_jupyter.cli import cli
from skein_jupyter.config import load_recipe
from skein_jupyter.exceptions import UsageError
from skein_jupyter.kinds import KINDS
from skein_jupyter.sandbox import SandboxConfig
from skein_jupyter.sandbox.hadoop_config import site_files
from skein_jupyter.scheduler import GPU, allocation_from_scheduler, maximum_allocation
from skein_jupyter.spec import check_allocation

RM_ANSWERS = Path(__file__).resolve().parent / "data" / "rm"


def _recipe(**flags):
    recipe, _ = load_recipe(kind="notebook", flags={"environment": "analytics", **flags}, environ={})
    return recipe


# ----- the sandbox's configuration (no cluster)

def test_gpus_declare_a_countable_type_the_node_count_and_the_dominant_calculator(tmp_path):
    files = site_files(SandboxConfig(root=tmp_path, gpus=2))
    assert files["resource-types.xml"]["yarn.resource-types"] == GPU
    assert files["resource-types.xml"][f"yarn.resource-types.{GPU}.maximum-allocation"] == "2"
    assert files["node-resources.xml"] == {f"yarn.nodemanager.resource-type.{GPU}": "2"}
    assert files["capacity-scheduler.xml"]["yarn.scheduler.capacity.resource-calculator"].endswith(
        ".DominantResourceCalculator")


def test_no_gpus_means_no_gpu_resource_type(tmp_path):
    files = site_files(SandboxConfig(root=tmp_path))
    assert "resource-types.xml" not in files and "node-resources.xml" not in files
    assert files["capacity-scheduler.xml"]["yarn.scheduler.capacity.resource-calculator"].endswith(
        ".DefaultResourceCalculator")


def test_gpus_are_remembered_by_the_saved_config(tmp_path, monkeypatch):
    monkeypatch.delenv("SKEIN_JUPYTER_SANDBOX_PORTS", raising=False)
    SandboxConfig(root=tmp_path, gpus=3).save()
    assert SandboxConfig.load(tmp_path).gpus == 3
    assert SandboxConfig.load(tmp_path, gpus=0).gpus == 0
    assert SandboxConfig.saved(tmp_path)["gpus"] == 3


# ----- a cluster without GPUs, as its ResourceManager answers

@pytest.fixture
def rm_without_gpus():
    """An HTTP server answering /ws/v1/cluster/scheduler and /nodes as a sandbox RM without GPUs did."""
    answers = {f"/ws/v1/cluster/{name}": (RM_ANSWERS / f"nogpu-{name}.json").read_bytes()
               for name in ("scheduler", "nodes")}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = answers.get(self.path)
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body or b"{}")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_cluster_without_gpus_has_no_gpu_limit_and_refuses_gpus(rm_without_gpus):
    allocation = maximum_allocation("default", base=rm_without_gpus)
    assert (allocation.memory_mb, allocation.vcores, allocation.gpus) == (8192, 8, None)
    with pytest.raises(UsageError) as info:
        check_allocation(_recipe(**{"resources.gpus": 1}).resources, allocation)
    assert str(info.value) == ("resources.gpus: 1 asked for, but this cluster has no GPUs (no yarn.io/gpu "
                               "resource); drop --gpus, or use a cluster with GPUs")
    assert info.value.exit_code == 2
    check_allocation(_recipe().resources, allocation)  # no GPUs asked for: fine


def test_the_gpu_limit_is_read_from_a_real_answer_with_gpus():
    answer = json.loads((RM_ANSWERS / "gpu2-scheduler.json").read_text())
    assert allocation_from_scheduler(answer, "default").gpus == 2


# ----- on the session sandbox, which has GPUs

@pytest.mark.yarn
def test_the_session_sandbox_offers_its_gpus(sandbox):
    assert sandbox.config.gpus == SESSION_GPUS
    allocation = maximum_allocation("default")
    assert allocation.gpus == SESSION_GPUS


@pytest.mark.yarn
def test_changing_the_gpus_of_a_running_sandbox_is_refused(sandbox):
    result = CliRunner().invoke(cli, ["sandbox", "up", "--gpus", str(SESSION_GPUS + 1)])
    assert result.exit_code == 2, result.output
    assert (f"is running with {SESSION_GPUS} GPU(s), not {SESSION_GPUS + 1}; add --restart" in result.output)
    assert sandbox.running and sandbox.running_gpus() == SESSION_GPUS


@pytest.mark.yarn
def test_more_gpus_than_the_cluster_has_are_refused_before_submitting(uploaded_venv, skein_client):
    before = submitted_here()
    result = CliRunner().invoke(cli, ["notebook", "start", "--env", uploaded_venv.url, "--memory", "1GiB",
                                      "--workspace", f"t-{uuid.uuid4().hex[:10]}", "--gpus", str(SESSION_GPUS + 1)])
    assert result.exit_code == 2, result.output
    assert (f"Error: resources.gpus: {SESSION_GPUS + 1} is above the cluster maximum of {SESSION_GPUS} "
            "per container") in result.output
    assert submitted_here() == before  # nothing was submitted


def _gpus_used(sandbox, app_id):
    """The ``yarn.io/gpu`` the ResourceManager counts as allocated to ``app_id`` now."""
    url = f"{sandbox.config.web_url('resourcemanager.http')}/ws/v1/cluster/apps/{app_id}"
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": "application/json"}),
                                timeout=10) as response:
        app = json.load(response)["app"]
    for usage in (app.get("resourceInfo") or {}).get("resourceUsagesByPartition") or []:
        infos = ((usage.get("used") or {}).get("resourceInformations") or {}).get("resourceInformation") or []
        for item in infos:
            if item.get("name") == GPU:
                return int(item.get("value", 0))
    return 0


@pytest.mark.yarn
def test_a_notebook_server_with_one_gpu_gets_a_container_with_one_gpu(uploaded_venv, skein_client, sandbox):
    from skein_jupyter.notebook import start, stop

    recipe, _ = load_recipe(kind="notebook", environ={}, flags={
        "environment": uploaded_venv.url, "resources.memory": "1 GiB", "resources.gpus": 1,
        "notebook.frontend": "server", "notebook.workspace": f"t-{uuid.uuid4().hex[:10]}"})
    server = start(recipe, skein_client, timeout=600)
    try:
        assert _gpus_used(sandbox, server.app_id) == 1
        app_client = skein_client.connect(server.app_id)
        containers = app_client.get_containers()
        assert [c.state for c in containers] == ["RUNNING"]
        service = app_client.get_specification().services[KINDS["notebook"].service]
        assert service.resources.gpus == 1
    finally:
        stop(skein_client, server.app_id)
