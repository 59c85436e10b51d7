"""Where a sweep set's CPU goes: a papermill process per set (before) against the engine (after), and uploads.

CPU is user + system seconds of a process and every descendant it waited
for (its kernels), from ``os.wait4``: what a set costs the node's cores,
whatever the wall time. The sets run locally with the project's own Python,
the same notebook and kernel for both; only the uploads need the sandbox.
"""
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from .harness import Figure, measure
from .scenarios import _trivial_notebook

SETS = 9  # the engine's figure is (CPU of SETS sets - CPU of one set) / (SETS - 1)
DEADLINE = 900


def _cpu(process: subprocess.Popen) -> float:
    """Wait for ``process``; its CPU seconds and those of the descendants it waited for."""
    deadline = time.monotonic() + DEADLINE
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            assert process.returncode == 0, f"{process.args[:4]} exited with {process.returncode}"
            return usage.ru_utime + usage.ru_stime
        if time.monotonic() >= deadline:
            process.kill()  # its kernels watch their parent and end with it
            process.returncode = os.waitstatus_to_exitcode(os.wait4(process.pid, 0)[1])
            raise AssertionError(f"{process.args[:4]} did not end within {DEADLINE}s")
        time.sleep(0.02)


def _papermill_set(notebook: Path, directory: Path, x: int) -> float:
    """One set as before the change: its own papermill process (Python, imports, kernel)."""
    return _cpu(subprocess.Popen(
        [sys.executable, "-m", "papermill", str(notebook), str(directory / f"pm-{x}.ipynb"), "-p", "x", str(x),
         "--no-progress-bar"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))


def _engine(notebook: Path, directory: Path, sets: int) -> float:
    """``sets`` sets through one engine process, as a worker feeds it (the next kernel started ahead)."""
    read_end, write_end = os.pipe()
    engine = subprocess.Popen([sys.executable, "-m", "skein_jupyter.runtime", "engine", str(write_end)],
                              pass_fds=[write_end], stdin=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    os.close(write_end)
    results: list = []

    def events():
        with os.fdopen(read_end) as stream:
            results.extend(event["status"] for event in map(json.loads, stream) if event.get("event") == "result")

    reader = threading.Thread(target=events, daemon=True)
    reader.start()
    for x in range(sets):
        args = directory / f"args-{uuid.uuid4().hex}.json"
        args.write_text(json.dumps({
            "input": str(notebook), "output": str(directory / f"engine-{x}.ipynb"), "parameters": {"x": x},
            "kernel": None, "engine": None, "cell_timeout": None, "start_timeout": 120, "papermill_options": {},
            "prestart": True}))
        engine.stdin.write(f"{args}\n")
    engine.stdin.close()
    cpu = _cpu(engine)
    reader.join(30)
    assert results == ["succeeded"] * sets, f"engine results: {results}"
    return cpu


def _uploads(output: Path):
    """Callables putting ``output`` on HDFS: ``hdfs dfs -put`` (a JVM) and the runtime's WebHDFS session."""
    from skein_jupyter.identity import hadoop_user
    from skein_jupyter.runtime.clusterfs import find_hdfs
    from skein_jupyter.runtime.webhdfs import Outputs
    from skein_jupyter.workspaces import namenode_urls

    hdfs = find_hdfs()
    assert hdfs, "no hdfs command"
    target = f"/user/{hadoop_user()}/bench-set-cpu-{uuid.uuid4().hex[:8]}"
    outputs = Outputs(namenode_urls(), hadoop_user())
    outputs.mkdir(target)

    def jvm():
        return _cpu(subprocess.Popen([hdfs, "dfs", "-put", "-f", str(output), f"{target}/jvm.ipynb"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def webhdfs():
        before = time.process_time()
        outputs.put([str(output)], target + "/")
        return time.process_time() - before

    return jvm, webhdfs, lambda: outputs.hdfs.delete(target, recursive=True)


def set_cpu(context, runs):
    """CPU per set: a papermill process per set against one engine per container; ``hdfs dfs -put`` against
    WebHDFS for an output notebook."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        notebook = _trivial_notebook(tmp)
        _papermill_set(notebook, directory, 0)  # warm the disk cache for both
        before = measure("papermill process per set (before)", lambda: _papermill_set(notebook, directory, 1),
                         runs, unit="s")
        first = Figure("engine: one set (engine start, imports)", "s", [])
        after = Figure(f"engine: each further set (of {SETS})", "s", [])
        for i in range(runs):
            one = _engine(notebook, directory, 1)
            many = _engine(notebook, directory, SETS)
            first.samples.append(one)
            after.samples.append((many - one) / (SETS - 1))
            print(f"  engine [{i + 1}/{runs}]: first set {one:.2f} s, each further set {after.samples[-1]:.2f} s "
                  "CPU", file=sys.stderr, flush=True)
        jvm, webhdfs, cleanup = _uploads(directory / "pm-1.ipynb")
        try:
            webhdfs()  # the session's first request opens its connection, as a worker's first output does
            put_jvm = measure("upload: hdfs dfs -put (before)", jvm, runs, unit="s")
            put_web = measure("upload: WebHDFS session (after)", webhdfs, runs, unit="s")
        finally:
            cleanup()
    return ("CPU seconds per set, user + system, kernels included (trivial notebook)",
            [before, first, after, put_jvm, put_web],
            [("papermill per set / engine per set", before.name, after.name),
             ("hdfs dfs -put / WebHDFS", put_jvm.name, put_web.name)])
