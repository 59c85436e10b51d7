"""The kernel figures: a YARN kernel's start against the floor, its execute round trip against a local kernel."""
import os
import tempfile
import time
import uuid
from pathlib import Path

from .harness import measure
from .scenarios import _bare_app, _python_ran

#: execute_requests per round-trip sample (the sample is their mean).
ROUND_TRIPS = 20


def _started(kernel_name):
    """A started kernel and its ready client; the seconds from start to the first execute_reply."""
    from jupyter_client.manager import KernelManager

    start = time.monotonic()
    manager = KernelManager(kernel_name=kernel_name)
    manager.start_kernel()
    client = manager.client()
    client.start_channels()
    client.wait_for_ready(timeout=600)
    client.execute_interactive("pass", timeout=600)
    return manager, client, time.monotonic() - start


def _stop(manager, client):
    client.stop_channels()
    manager.shutdown_kernel(now=False)


def _round_trip_ms(client):
    """Mean milliseconds of :data:`ROUND_TRIPS` trivial execute_requests, each waited for."""
    start = time.monotonic()
    for _ in range(ROUND_TRIPS):
        reply = client.execute_interactive("pass", timeout=60)
        assert reply["content"]["status"] == "ok", reply
    return (time.monotonic() - start) / ROUND_TRIPS * 1000


def kernel_figures(context, runs):
    """Kernel start to the first execute_reply, against the floor with the same (already running) driver;
    a trivial execute round trip on the YARN kernel against one on a local ipykernel."""
    from skein_jupyter.kernels import install_kernel
    from skein_jupyter.provisioner import skein_client

    with tempfile.TemporaryDirectory(prefix="bench-kernels-") as tmp:
        os.environ["JUPYTER_DATA_DIR"] = str(Path(tmp) / "data")
        name = f"bench-yarn-{uuid.uuid4().hex[:6]}"
        install_kernel({"env": context.url, "name": name, "memory": "1GiB"})
        local = Path(tmp) / "data" / "kernels" / "bench-local"
        local.mkdir(parents=True)
        (local / "kernel.json").write_text(
            '{"argv": ["%s", "-m", "ipykernel_launcher", "-f", "{connection_file}"], "display_name": "local", '
            '"language": "python"}' % (context.prefix / "bin" / "python"))
        _bare_app(context.url)  # warm YARN's cache of the unpacked environment
        client = skein_client()  # the provisioner's driver, started once per process as in a Jupyter server
        floor_fig = measure("floor: submit to the service's Python (driver up)",
                            lambda: _python_ran(context.url, client), runs)
        held = {}

        def start_yarn():
            manager, kernel, seconds = _started(name)
            held.setdefault("yarn", []).append((manager, kernel))
            return seconds

        start_fig = measure("YARN kernel: start -> first execute_reply", start_yarn, runs)
        try:
            yarn_manager, yarn_kernel = held["yarn"][-1]
            local_manager, local_kernel, _ = _started("bench-local")
            try:
                yarn_rt = measure(f"YARN kernel: execute round trip (mean of {ROUND_TRIPS})",
                                  lambda: _round_trip_ms(yarn_kernel), runs, unit="ms")
                local_rt = measure(f"local ipykernel: execute round trip (mean of {ROUND_TRIPS})",
                                   lambda: _round_trip_ms(local_kernel), runs, unit="ms")
            finally:
                _stop(local_manager, local_kernel)
        finally:
            for manager, kernel in held.get("yarn", []):
                _stop(manager, kernel)
    return ("Kernels on YARN (a kernelspec of ours, jupyter_client's KernelManager)",
            [floor_fig, start_fig, yarn_rt, local_rt],
            [("kernel start / floor", start_fig.name, floor_fig.name),
             ("round trip YARN / local", yarn_rt.name, local_rt.name)])
