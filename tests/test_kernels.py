"""Kernels in YARN containers through the kernel provisioner, driven by jupyter_client's KernelManager.

The kernelspec is written by hand into a temporary JUPYTER_PATH directory (the shape documented in
skein_jupyter/provisioner.py). One kernel proves several things: code runs in the application's
container, an interrupt arrives as KeyboardInterrupt, a lost container is a dead kernel, a restart
starts a fresh one (state gone), a shutdown ends its application SUCCEEDED, and the key is in no log.
A client SIGKILLed leaves no orphan: its application ends within the lease.
"""
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from conftest import wait_until

pytestmark = pytest.mark.yarn

FINAL = ("FINISHED", "FAILED", "KILLED")


@pytest.fixture
def kernelspec(tmp_path, monkeypatch, uploaded_venv, skein_client):
    """``make(**config) -> kernel name``: a kernelspec of the provisioner in a private JUPYTER_PATH."""
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))

    def make(**config):
        name = f"yarn-test-{uuid.uuid4().hex[:8]}"
        directory = tmp_path / "kernels" / name
        directory.mkdir(parents=True)
        config = {"env": uploaded_venv.url, "memory": "512 MiB", "name": name, **config}
        spec = {"argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python (YARN, test)", "language": "python", "interrupt_mode": "message",
                "metadata": {"kernel_provisioner": {"provisioner_name": "skein-jupyter", "config": config}}}
        (directory / "kernel.json").write_text(json.dumps(spec))
        return name

    return make


def execute(client, code, timeout=120):
    """Run ``code``; returns (reply content, stdout text)."""
    msg_id = client.execute(code)
    out = []
    deadline = time.monotonic() + timeout
    while True:
        msg = client.get_iopub_msg(timeout=max(1, deadline - time.monotonic()))
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    reply = client.get_shell_msg(timeout=max(1, deadline - time.monotonic()))
    return reply["content"], "".join(out)


def started(km, skein_client):
    client = km.client()
    client.start_channels()
    client.wait_for_ready(timeout=300)
    app_id = km.provisioner.app_id
    containers = skein_client.connect(app_id, wait=False).get_containers()
    return client, app_id, containers[0]


def test_a_kernel_runs_in_its_container_interrupts_restarts_and_shuts_down(kernelspec, skein_client):
    from jupyter_client import KernelManager

    from skein_jupyter.applications import application_logs

    t0 = time.monotonic()
    km = KernelManager(kernel_name=kernelspec())
    km.start_kernel()
    try:
        client, first_app, container = started(km, skein_client)
        print(f"kernel started in {time.monotonic() - t0:.1f}s ({first_app})")
        report = skein_client.application_report(first_app)
        assert f"skein-jupyter-kernel-{km.kernel_id}" in report.tags and report.name.endswith(km.kernel_id)

        reply, out = execute(client, "import os; x = 41; print(os.environ['CONTAINER_ID'])")
        assert reply["status"] == "ok"
        assert out.strip() == container.yarn_container_id

        msg_id = client.execute("import time; time.sleep(600)")
        wait_until(lambda: (m := client.get_iopub_msg(timeout=60))["parent_header"].get("msg_id") == msg_id
                   and m["msg_type"] == "status" and m["content"]["execution_state"] == "busy", 60, "busy", poll=0)
        t = time.monotonic()
        km.interrupt_kernel()
        reply = client.get_shell_msg(timeout=60)["content"]
        print(f"interrupt answered in {time.monotonic() - t:.1f}s")
        assert (reply["status"], reply["ename"]) == ("error", "KeyboardInterrupt")
        assert execute(client, "print(x + 1)")[1].strip() == "42"  # the kernel lives on

        # A lost container is a dead kernel.
        t = time.monotonic()
        skein_client.connect(first_app, wait=False).kill_container(container.id)
        wait_until(lambda: not km.is_alive(), 120, "the kernel to be seen dead")
        print(f"lost container seen in {time.monotonic() - t:.1f}s")
        assert str(skein_client.application_report(first_app).final_status) != "SUCCEEDED"
        client.stop_channels()

        # A restart starts a new application: state gone.
        t = time.monotonic()
        km.restart_kernel(now=True)
        client, second_app, container = started(km, skein_client)
        print(f"restart took {time.monotonic() - t:.1f}s ({second_app})")
        assert second_app != first_app
        reply, _ = execute(client, "x")
        assert (reply["status"], reply["ename"]) == ("error", "NameError")
        key = km.session.key.decode()
        client.stop_channels()
    finally:
        t = time.monotonic()
        km.shutdown_kernel()
        print(f"shutdown took {time.monotonic() - t:.1f}s")
    report = skein_client.application_report(second_app)
    assert (str(report.state), str(report.final_status)) == ("FINISHED", "SUCCEEDED")
    assert key not in application_logs(second_app)


CLIENT = """
import sys, time
from jupyter_client import KernelManager
km = KernelManager(kernel_name=sys.argv[1])
km.start_kernel()
print(km.provisioner.app_id, flush=True)
time.sleep(600)
"""


def test_a_killed_client_leaves_no_kernel_behind(kernelspec, skein_client):
    lease = 15
    process = subprocess.Popen([sys.executable, "-c", CLIENT, kernelspec(lease=f"{lease}s")],
                               stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        app_id = process.stdout.readline().strip()  # once the kernel is up
        assert app_id.startswith("application_"), app_id
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    killed = time.monotonic()
    assert str(skein_client.application_report(app_id).state) == "RUNNING"
    report = wait_until(lambda: (r := skein_client.application_report(app_id)) and str(r.state) in FINAL and r,
                        lease + 60, f"{app_id} to end after its client was killed")
    print(f"application ended {time.monotonic() - killed:.1f}s after its client was killed (lease {lease}s)")
    assert str(report.final_status) == "KILLED"
    assert "lease" in report.diagnostics
