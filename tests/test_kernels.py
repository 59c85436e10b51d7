"""Kernels in YARN containers through the kernel provisioner, driven by jupyter_client's KernelManager.

The kernelspec is written by hand into a temporary JUPYTER_PATH directory (the shape documented in
skein_jupyter/provisioner.py). One kernel proves several things: code runs in the application's
container, an interrupt arrives as KeyboardInterrupt, a lost container is a dead kernel, a restart
starts a fresh one (state gone), a shutdown ends its application SUCCEEDED, and the key is in no log.
A client SIGKILLed leaves no orphan: its application ends within the lease.
"""
import json
import os
import select
import signal
import subprocess
import sys
import time
import uuid

import pytest
from conftest import wait_until

FINAL = ("FINISHED", "FAILED", "KILLED")


# ----------------------------------------------------------------- the contract (no cluster)

def test_a_kernel_recipe_becomes_a_tagged_kernel_job_and_spec():
    from skein_jupyter.provisioner import kernel_recipe
    from skein_jupyter.runtime.job import from_json, to_json
    from skein_jupyter.spec import SpecContext, build_spec, job_from_recipe

    options = {"env": "hdfs:///envs/analytics.tar.gz", "memory": "1 GiB", "vcores": 2, "queue": "default",
               "lease": "30s", "idle_timeout": "10m", "name": "yarn-py"}
    recipe = kernel_recipe("0f8e-kernel", options)
    assert (recipe.kind, recipe.resources.memory, recipe.resources.vcores) == ("kernel", 1024, 2)
    job = from_json(to_json(job_from_recipe(recipe, "alice")))
    assert (job.kind, job.kernel.lease, job.kernel.idle_timeout) == ("kernel", 30, 600)
    spec = build_spec(recipe, SpecContext.example(), write_job=False)
    assert spec.name == "skein-jupyter-kernel-0f8e-kernel"
    assert {"skein-jupyter", "skein-jupyter-kernel", "skein-jupyter-kernel-0f8e-kernel",
            "skein-jupyter-kernelspec-yarn-py"} <= set(spec.tags)
    import dataclasses

    from skein_jupyter.runtime.job import JobError

    with pytest.raises(JobError, match="idle_timeout"):  # 0 is not "never" (that is null)
        from_json(to_json(dataclasses.replace(job, kernel=dataclasses.replace(job.kernel, idle_timeout=0))))
    (service,) = spec.services.values()
    assert "python -m skein_jupyter_runtime kernel" in service.script
    assert (service.instances, service.max_restarts) == (1, 0)


@pytest.mark.parametrize("options, problem", [({"env": "hdfs:///e.tar.gz", "lease": "5s"}, "lease"),
                                              ({"env": "hdfs:///e.tar.gz", "colour": "red"}, "colour"),
                                              ({"memory": "1 GiB"}, "env")])
def test_a_bad_kernel_config_is_refused_before_anything_is_submitted(options, problem):
    from skein_jupyter.exceptions import UsageError
    from skein_jupyter.provisioner import kernel_options, kernel_recipe

    with pytest.raises(UsageError, match=problem):
        kernel_recipe("k", kernel_options(**options))


def test_a_failed_heartbeat_write_does_not_stop_the_lease():
    import logging
    import threading

    from skein_jupyter.provisioner import renew_lease
    from skein_jupyter.runtime import keys

    stop = threading.Event()

    class BlinkingKV(dict):
        """Fails its first write (a network blip), then stops the renewal after three good ones."""
        failed = 0

        def __setitem__(self, key, value):
            if not self.failed:
                self.failed += 1
                raise ConnectionError("blip")
            super().__setitem__(key, value)
            if value == b"3":
                stop.set()

    kv = BlinkingKV()
    thread = threading.Thread(target=renew_lease, args=(kv, stop, 0.01, logging.getLogger("test")), daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    assert (kv.failed, kv[keys.KERNEL_HEARTBEAT]) == (1, b"3")


def test_calls_made_while_the_interpreter_shuts_down_run_in_this_thread(monkeypatch):
    """jupyter_client shuts kernels down at exit, when no worker thread may start (``jupyter run``)."""
    import asyncio
    import concurrent.futures.thread

    from skein_jupyter.provisioner import _off_loop

    assert asyncio.run(_off_loop(lambda x: x + 1, 1)) == 2
    monkeypatch.setattr(concurrent.futures.thread, "_shutdown", True)
    assert asyncio.run(_off_loop(lambda x: x + 1, 41)) == 42


def test_a_kernel_ended_by_its_idle_timeout_is_not_started_again():
    import asyncio

    from skein_jupyter.exceptions import ApplicationError
    from skein_jupyter.provisioner import YarnKernelProvisioner
    from skein_jupyter.runtime.kernel import IDLE_END

    provisioner = YarnKernelProvisioner(kernel_id="k1", kernel_spec=None, parent=None)
    provisioner._idle_end = f"{IDLE_END}: the kernel ran no code for 60s"  # what poll() read in the diagnostics
    with pytest.raises(ApplicationError, match="not started again"):  # before anything is submitted
        asyncio.run(provisioner.launch_kernel([]))


def test_the_container_publishes_the_ports_ipykernel_bound_and_keeps_its_runtime_off_the_kernels_path(tmp_path):
    from skein_jupyter.runtime.kernel import PORT_NAMES, bound_ports, kernel_env

    connection_file = tmp_path / "kernel.json"
    connection_file.write_text(json.dumps({**dict.fromkeys(PORT_NAMES, 0), "key": "k"}))
    rewrite = ("import json, sys, time; time.sleep(0.3); "
               f"open(sys.argv[1], 'w').write(json.dumps({{**dict.fromkeys({PORT_NAMES!r}, 4242), 'key': 'k'}})); "
               "time.sleep(30)")
    process = subprocess.Popen([sys.executable, "-c", rewrite, str(connection_file)])
    try:
        assert bound_ports(process, connection_file, timeout=30) == dict.fromkeys(PORT_NAMES, 4242)
    finally:
        process.kill()
        process.wait()
    assert bound_ports(process, connection_file, timeout=30) is None  # a dead kernel: no ports
    env = kernel_env({"PYTHONPATH": f"skein_jupyter_runtime.zip{os.pathsep}/home/me/lib", "HOME": "/home/me"})
    assert env == {"PYTHONPATH": "/home/me/lib", "HOME": "/home/me"}
    assert "PYTHONPATH" not in kernel_env({"PYTHONPATH": "skein_jupyter_runtime.zip"})


def test_an_interrupt_reaches_the_cell_even_when_it_lands_in_ipykernels_own_code(tmp_path, monkeypatch):
    """The container's kernel (runtime/kernel_launcher.py), run here locally: an interrupt sent at the cell's
    ``busy`` while IPython is still in a slow ``pre_run_cell`` hook (as a loaded machine makes its own code
    slow) stops the hook and still interrupts the cell; a short cell interrupted at ``busy`` replies ``ok``;
    a slow ``post_run_cell`` hook is stopped as plain ipykernel stops it. (Plain ipykernel 7 can lose an
    interrupt sent at ``busy``: the cell runs on.)"""
    import queue

    from jupyter_client import KernelManager

    from skein_jupyter.runtime.kernel import kernel_command

    directory = tmp_path / "kernels" / "launcher"
    directory.mkdir(parents=True)
    (directory / "kernel.json").write_text(json.dumps({  # the command line the container runs
        "argv": kernel_command(directory, "{connection_file}"), "display_name": "launcher", "language": "python",
        "interrupt_mode": "message"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    km = KernelManager(kernel_name="launcher")
    km.start_kernel()
    client = km.client()
    client.start_channels()

    def run(code, interrupt=False, after=0.0):
        """(status, ename) of the reply to ``code``, interrupted ``after`` s after it is ``busy`` if asked."""
        msg_id = client.execute(code)
        deadline = time.monotonic() + 60
        while interrupt:
            assert time.monotonic() < deadline, "no busy status within 60 s"
            msg = client.get_iopub_msg(timeout=max(1, deadline - time.monotonic()))
            interrupt = not (msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status"
                             and msg["content"]["execution_state"] == "busy")
            if not interrupt:
                time.sleep(after)
                km.interrupt_kernel()
        try:
            while (reply := client.get_shell_msg(timeout=max(1, deadline - time.monotonic())))[
                    "parent_header"].get("msg_id") != msg_id:
                pass
        except queue.Empty:
            return "no reply", None
        return reply["content"]["status"], reply["content"].get("ename")

    try:
        client.wait_for_ready(timeout=120)
        started = time.monotonic()
        assert run("import time\nget_ipython().events.register('pre_run_cell', lambda info: time.sleep(1))\n"
                   "get_ipython().events.register('post_run_cell', lambda result: time.sleep(1))") == ("ok", None)
        assert run("time.sleep(600)", interrupt=True) == ("error", "KeyboardInterrupt")  # sent in pre_run_cell
        assert run("x = 1", interrupt=True) == ("ok", None)  # over before the interrupt landed in its code
        assert run("get_ipython().events.callbacks['pre_run_cell'].clear()\n"
                   "get_ipython().events.callbacks['post_run_cell'].clear()\nx") == ("ok", None)
        assert run("time.sleep(600)", interrupt=True) == ("error", "KeyboardInterrupt")
        # A slow hook after the cell (matplotlib's figure rendering) is stopped, as with plain ipykernel.
        assert run("import builtins\nbuiltins.slow = False\ndef hook(result):\n    if builtins.slow:\n"
                   "        time.sleep(20)\n        builtins.hook_ended = True\n"
                   "get_ipython().events.register('post_run_cell', hook)") == ("ok", None)
        assert run("builtins.slow = True", interrupt=True, after=2) == ("ok", None)
        assert run("builtins.slow = False\nget_ipython().events.callbacks['post_run_cell'].clear()\n"
                   "assert not getattr(builtins, 'hook_ended', False), 'the hook was not stopped'") == ("ok", None)
        print(f"interrupts answered in {time.monotonic() - started:.1f}s")
    finally:
        client.stop_channels()
        km.shutdown_kernel(now=True)


# ----------------------------------------------------------------- on the sandbox

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


@pytest.mark.yarn
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

        reply, out = execute(client, "import os, importlib.util; x = 41; print(os.environ['CONTAINER_ID']); "
                                     "print(importlib.util.find_spec('skein_jupyter_runtime'))")
        assert reply["status"] == "ok"
        assert out.split() == [container.yarn_container_id, "None"]  # and our runtime is not on its path

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
        # (Skein ends an application whose only container it killed SUCCEEDED: the exit code says little.)
        assert str(skein_client.application_report(first_app).state) in FINAL
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


@pytest.mark.yarn
def test_a_killed_client_leaves_no_kernel_behind(kernelspec, skein_client):
    lease = 15
    process = subprocess.Popen([sys.executable, "-c", CLIENT, kernelspec(lease=f"{lease}s")],
                               stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        # Once the kernel is up (select: the wait has a deadline even if the client hangs).
        readable, _, _ = select.select([process.stdout], [], [], 300)
        app_id = process.stdout.readline().strip() if readable else "(no kernel within 300s)"
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
