"""The papermill engine of a worker (runtime/execute.py, runtime/setrun.py) with a real local ipykernel. No cluster.

The engine runs in a child process here as in a container; the worker it
reports to is a small stand-in (a dict for the key-value store, no uploads),
since only the engine's own behaviour is under test.
"""
import json
import subprocess
import sys
import textwrap
import threading
import time
import types

import pytest

from skein_jupyter.runtime.setrun import Engine, SetRun

NOTEBOOK = {
    "cells": [
        {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "x = 0", "outputs": [],
         "execution_count": None},
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
         "source": "import os\nassert 'seen' not in globals()\nseen = x\nprint(os.getpid())"},
    ],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    "nbformat": 4, "nbformat_minor": 5,
}


def _args(tmp_path, index, prestart=True, reuse_kernel=False, notebook="nb.ipynb"):
    path = tmp_path / f"args-{index}.json"
    path.write_text(json.dumps({
        "input": str(tmp_path / notebook), "output": str(tmp_path / f"out-{index}.ipynb"),
        "parameters": {"x": index}, "kernel": None, "engine": None, "cell_timeout": None, "start_timeout": 60,
        "papermill_options": {}, "prestart": prestart, "reuse_kernel": reuse_kernel}))
    return str(path)


@pytest.fixture
def notebook(tmp_path):
    (tmp_path / "nb.ipynb").write_text(json.dumps(NOTEBOOK))
    return tmp_path


# Run in its own interpreter: the engine patches papermill's execution manager for the process.
SERVE = textwrap.dedent("""
    import json, os, signal, sys, threading
    from skein_jupyter.runtime import execute

    killed = []
    spares = []
    ran = []
    pids = []

    def running(pid):  # not gone, nor a zombie
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    class Recorded(execute.Spare):
        def __init__(self, key, reuse=False):
            super().__init__(key, reuse)
            spares.append(self)
            pids.append(self.km.provisioner.process.pid)

        def shutdown(self):
            # A stop that comes while the engine shuts a kernel down: the last one, started ahead for no
            # next set (stop-in-cleanup), or the one the second set ran in (stop-in-current).
            last = sys.argv[1] == "stop-in-cleanup" and len(ran) == len(sys.argv) - 2 and self is spares[-1]
            current = sys.argv[1] == "stop-in-current" and len(ran) == 2 and self is spares[0]
            if (last or current) and not killed:
                killed.append(1)
                shutdown_kernel = self.km.shutdown_kernel

                async def stopped_meanwhile(*args, **kwargs):
                    os.kill(os.getpid(), signal.SIGTERM)
                    return await shutdown_kernel(*args, **kwargs)

                self.km.shutdown_kernel = stopped_meanwhile
            super().shutdown()

        def close_clients(self):
            if sys.argv[1] == "stop-in-close" and not killed:  # a stop while a shared kernel's clients close
                killed.append(1)
                os.kill(os.getpid(), signal.SIGTERM)
            super().close_clients()

    execute.Spare = Recorded
    run_set = execute.run_set

    def counted(args, emit, km=None):
        ahead = len(spares)  # kernels started ahead before this set ran
        status = run_set(args, emit, km)
        ran.append(status)
        print(json.dumps({"threads": threading.active_count(), "status": status, "given": km is not None,
                          "ahead": ahead}), flush=True)
        if sys.argv[1] == "kill" and len(spares) == 2 and not killed:  # the kernel for the next set dies
            spares[-1].km.provisioner.process.kill()
            spares[-1].km.provisioner.process.wait()
            killed.append(1)
        return status

    execute.run_set = counted
    execute._track_cells(lambda **event: None)
    execute._atomic_saves()
    before = threading.active_count()
    code = execute.serve(sys.argv[2:], lambda **event: None)
    print(json.dumps({"before": before, "after": threading.active_count(), "code": code,
                      "kernels": [pid for pid in pids if running(pid)]}), flush=True)
""")


def _serve(mode, paths):
    proc = subprocess.run([sys.executable, "-c", SERVE, mode, *paths], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def test_kernels_started_ahead_leak_nothing_and_a_dead_one_is_replaced(notebook):
    """Four sets, each with a kernel started ahead by the previous one; the one for set 2 dies while it waits.

    The thread count does not grow from set to set nor after the end, and set 2
    runs in a kernel papermill starts itself, and succeeds.
    """
    started = time.monotonic()
    rows = _serve("kill", [_args(notebook, i) for i in range(4)])
    sets, end = rows[:-1], rows[-1]
    print(f"four sets in {time.monotonic() - started:.1f}s; threads {[r['threads'] for r in sets]}, "
          f"{end['before']} before, {end['after']} after")
    assert [r["status"] for r in sets] == ["succeeded"] * 4
    assert [r["given"] for r in sets] == [False, True, False, True]
    # The next set's kernel starts only once a set runs (at its first cell), never beside a kernel still booting.
    assert [r["ahead"] for r in sets] == [0, 1, 2, 3]
    assert sets[3]["threads"] <= sets[1]["threads"]
    assert end["after"] <= end["before"] and end["code"] == 0 and end["kernels"] == []
    assert json.loads((notebook / "out-2.ipynb").read_text())["metadata"]["papermill"]["parameters"] == {"x": 2}


def test_a_stop_while_the_last_spare_kernel_shuts_down_ends_the_engine_cleanly(notebook):
    """SIGTERM during the shutdown of the kernel started ahead after the last set: exit 0, no kernel left.

    nbclient leaves SIGTERM's default action after a set; the engine takes the
    signal back, so the stop is logged instead of killing it mid-shutdown.
    """
    rows = _serve("stop-in-cleanup", [_args(notebook, i) for i in range(2)])
    sets, end = rows[:-1], rows[-1]
    assert [r["status"] for r in sets] == ["succeeded"] * 2
    assert end["code"] == 0 and end["after"] <= end["before"] and end["kernels"] == []


def test_a_stop_while_a_set_s_kernel_shuts_down_ends_the_engine_once_the_kernel_is_gone(notebook):
    """SIGTERM during the shutdown of the kernel the second set ran in: no third set, exit 1, no kernel left."""
    rows = _serve("stop-in-current", [_args(notebook, i) for i in range(3)])
    sets, end = rows[:-1], rows[-1]
    assert [r["status"] for r in sets] == ["succeeded"] * 2
    assert end["code"] == 1 and end["kernels"] == []


def _catches(pid, signum):
    """Whether process ``pid`` has a handler for ``signum`` (Linux: SigCgt in /proc/PID/status)."""
    with open(f"/proc/{pid}/status") as f:
        caught = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
    return bool(caught & (1 << (signum - 1)))


def _reads_its_input(pid):
    """Whether process ``pid``'s main thread is blocked reading file descriptor 0 (x86-64: syscall 0);
    elsewhere, or without /proc/PID/syscall, after a second's grace."""
    import platform

    try:
        if platform.machine() != "x86_64":
            raise OSError("not x86-64")
        with open(f"/proc/{pid}/syscall") as f:
            fields = f.read().split()
    except OSError:
        time.sleep(1)
        return True
    return len(fields) > 1 and fields[0] == "0" and int(fields[1], 16) == 0


def test_a_stop_while_the_engine_waits_for_a_set_ends_it_with_1():
    """Between sets (blocked on its input) a SIGTERM ends the engine at once, with 1 and no traceback."""
    import os
    import signal

    read_end, write_end = os.pipe()
    engine = subprocess.Popen([sys.executable, "-m", "skein_jupyter.runtime", "engine", str(write_end)],
                              pass_fds=[write_end], stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    os.close(write_end)
    os.close(read_end)
    try:
        deadline = time.monotonic() + 120
        while not (_catches(engine.pid, signal.SIGTERM) and _reads_its_input(engine.pid)):  # imports done
            assert time.monotonic() < deadline and engine.poll() is None, "the engine did not start"
            time.sleep(0.05)
        engine.send_signal(signal.SIGTERM)
        engine.wait(60)  # before its input closes (an end of input would end it too)
        _, stderr = engine.communicate(timeout=60)
    finally:
        engine.kill()
    assert engine.returncode == 1 and "Traceback" not in stderr, stderr


def test_reuse_kernel_runs_the_sets_in_one_kernel_and_leaks_nothing(notebook):
    """The opt-in: three sets in one kernel the engine started (state carries over), shut down at the end."""
    nb = json.loads(json.dumps(NOTEBOOK))
    nb["cells"][1]["source"] = "import os\ncount = globals().get('count', 0) + 1\nprint(f'{os.getpid()} {count} {x}')"
    (notebook / "shared.ipynb").write_text(json.dumps(nb))
    rows = _serve("plain", [_args(notebook, i, reuse_kernel=True, notebook="shared.ipynb") for i in range(3)])
    sets, end = rows[:-1], rows[-1]
    assert [r["status"] for r in sets] == ["succeeded"] * 3
    assert [r["given"] for r in sets] == [True] * 3 and [r["ahead"] for r in sets] == [1, 1, 1]
    printed = ["".join(json.loads((notebook / f"out-{i}.ipynb").read_text())["cells"][-1]["outputs"][0]["text"])
               .split() for i in range(3)]
    assert len({pid for pid, _, _ in printed}) == 1
    assert [(count, x) for _, count, x in printed] == [("1", "0"), ("2", "1"), ("3", "2")]
    assert sets[2]["threads"] <= sets[0]["threads"]  # each set's client closed
    assert end["code"] == 0 and end["kernels"] == [] and end["after"] <= end["before"]


def test_a_stop_while_a_shared_kernel_s_clients_close_leaves_no_kernel(notebook):
    rows = _serve("stop-in-close", [_args(notebook, i, reuse_kernel=True) for i in range(3)])
    sets, end = rows[:-1], rows[-1]
    assert [r["status"] for r in sets] == ["succeeded"]
    assert end["code"] == 1 and end["kernels"] == [] and end["after"] <= end["before"]


def test_reuse_kernel_gives_the_set_after_a_failure_a_new_kernel(notebook):
    """A cell timeout leaves the cell running in the kernel: the next set must not inherit it (nor a retry)."""
    nb = json.loads(json.dumps(NOTEBOOK))
    nb["cells"][1]["source"] = "import os, time\nprint(f'pid={os.getpid()}')\ntime.sleep(30 if x == 0 else 0)"
    (notebook / "slow.ipynb").write_text(json.dumps(nb))
    paths = [_args(notebook, i, reuse_kernel=True, notebook="slow.ipynb") for i in range(3)]
    first = json.loads(open(paths[0]).read())
    open(paths[0], "w").write(json.dumps(dict(first, cell_timeout=3)))
    rows = _serve("plain", paths)
    sets, end = rows[:-1], rows[-1]
    assert [r["status"] for r in sets] == ["failed", "succeeded", "succeeded"]
    pids = ["".join(json.loads((notebook / f"out-{i}.ipynb").read_text())["cells"][-1]["outputs"][0]["text"])
            for i in range(3)]
    assert pids[0] != pids[1] == pids[2], pids  # set 1 did not wait in set 0's kernel for its cell to end
    assert end["code"] == 0 and end["kernels"] == []


EVENTS = textwrap.dedent("""
    import json, sys
    from skein_jupyter.runtime import execute

    events = []
    execute._track_cells(lambda **event: events.append(event))
    execute.serve(sys.argv[1:], lambda **event: events.append(event))
    print(json.dumps(events))
""")


def test_cell_events_never_carry_a_parameters_cell_s_source(notebook):
    """The notebook's parameters cell (its defaults) and papermill's injected one are named, never shown."""
    nb = json.loads(json.dumps(NOTEBOOK))
    nb["cells"][0]["source"] = "x = 0\nsecret = 'dflt-7731'"
    (notebook / "defaults.ipynb").write_text(json.dumps(nb))
    proc = subprocess.run([sys.executable, "-c", EVENTS, _args(notebook, 5, prestart=False, notebook="defaults.ipynb")],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "dflt-7731" not in proc.stdout + proc.stderr
    sources = [e["source"] for e in events if e.get("event") == "cell"]
    assert sources[:2] == ["# Parameters (the notebook's defaults)", "# Parameters"], sources
    assert events[-1] == {"event": "result", "status": "succeeded"}


def _worker(tmp_path):
    run = types.SimpleNamespace(notebook="nb.ipynb", sets=[{"x": 0}, {"x": 1}], html=False, checkpoint_interval=0,
                                input=str(tmp_path / "nb.ipynb"), kernel=None, engine=None, cell_timeout=None,
                                start_timeout=60, papermill_options={}, timeout=120, reuse_kernel=False)
    job = types.SimpleNamespace(run=run, parameters=lambda i: run.sets[i])
    return types.SimpleNamespace(job=job, kv={}, progress_key=lambda i: f"progress/{i}", workdir=tmp_path,
                                 output="/nowhere", stop_requested=threading.Event(), upload=lambda paths: None)


def test_engine_gone_between_sets_is_replaced_and_survives_a_failing_handler(notebook):
    """The engine can no longer take a set (its input closed, as when it ends): a new one runs the set.

    Then an exception in the handler of one event is logged; the following
    events, and the result, still arrive.
    """
    engine = Engine()
    engine.proc.stdin.close()
    set_run = SetRun(_worker(notebook), 0, 1, engine)
    result = set_run.execute()
    assert result["status"] == "succeeded", result
    assert set_run.engine is not engine
    engine = set_run.engine
    seen, done = [], threading.Event()

    def listener(event):
        seen.append(event["event"])
        if event["event"] == "result":
            done.set()
        if len(seen) == 1:
            raise KeyError("cells")

    engine.listener = listener
    try:
        assert engine.send(_args(notebook, 1, prestart=False))
        assert done.wait(120), seen
        assert engine.reader.is_alive() and seen[0] == "start"
    finally:
        engine.close()


# A stop or timeout that comes during an autosave in a long cell (nbclient saves from its output task).
AUTOSAVE_STOP = textwrap.dedent("""
    import os, signal, sys
    from skein_jupyter.runtime import execute
    import papermill

    signal.signal(signal.SIGUSR1, execute._interrupt)
    handler = execute._atomic_saves()
    write, saves = handler.write, []

    def counted(buf, path):
        saves.append(1)
        if len(saves) == 4:  # an autosave while the long cell prints
            os.kill(os.getpid(), signal.SIGUSR1)
        return write(buf, path)

    handler.write = counted
    try:
        papermill.execute_notebook(sys.argv[1], sys.argv[2], progress_bar=False, autosave_cell_every=1)
        print("ended without Interrupted")
    except execute.Interrupted as exc:
        print(f"Interrupted {exc.status}; cell ended: {os.path.exists(sys.argv[3])}")
""")


def test_a_timeout_during_an_autosave_interrupts_the_running_cell(tmp_path):
    ended = tmp_path / "cell-ended"
    notebook = {**NOTEBOOK, "cells": [{"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
                                       "source": f"import time\nfor i in range(120):\n    print(i, flush=True)\n"
                                                 f"    time.sleep(0.25)\nopen({str(ended)!r}, 'w').close()"}]}
    (tmp_path / "long.ipynb").write_text(json.dumps(notebook))
    proc = subprocess.run([sys.executable, "-c", AUTOSAVE_STOP, str(tmp_path / "long.ipynb"),
                           str(tmp_path / "out.ipynb"), str(ended)], capture_output=True, text=True, timeout=240)
    assert "Interrupted timed_out; cell ended: False" in proc.stdout, proc.stdout + proc.stderr[-3000:]
