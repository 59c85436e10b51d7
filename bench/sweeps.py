"""The sweep figures: one sweep application against local papermill on every core, and against separate apps."""
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .harness import Figure, measure
from .scenarios import _bare_app, _cli_run, _trivial_notebook

SWEEP_SETS = 32
SWEEP_PARALLEL = 4


def _cores():
    """The cores this process may run on (a container's or taskset's limit), not the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _local_sweep(papermill, notebook, directory):
    """A callable: the 32 sets with local papermill, as many at a time as this process has cores."""
    cores = _cores()

    def local():
        commands = [[str(papermill), str(notebook), str(Path(directory) / f"local-{x:02d}.ipynb"), "-p", "x", str(x),
                     "--no-progress-bar"] for x in range(SWEEP_SETS)]
        running: list = []
        deadline = time.monotonic() + 1800
        while commands or running:
            while commands and len(running) < cores:  # xargs -P$(nproc), without a shell
                running.append(subprocess.Popen(commands.pop(0), stdout=subprocess.DEVNULL,
                                                stderr=subprocess.DEVNULL))
            # whichever ends first frees its slot, as xargs -P does
            for proc in [p for p in running if p.poll() is not None]:
                assert proc.returncode == 0, "local papermill failed"
                running.remove(proc)
            if len(running) == cores or (running and not commands):
                assert time.monotonic() < deadline, "local papermill did not finish in 1800 s"
                time.sleep(0.05)
    return local, cores


def _load():
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def sweep_speedup(context, runs):
    """32 parameter sets: one sweep application, against local papermill with as many processes as cores
    (the machine's limit) and against 32 applications one after another (as per-notebook schedulers run them).

    The separate applications share one Skein driver (kinder to them than a
    scheduler calling the CLI per notebook, which starts a driver each time).
    Each figure's runs alternate with the others', so all see the same load.
    """
    import skein

    from skein_jupyter.config import load_recipe
    from skein_jupyter.runs import follow, start

    with tempfile.TemporaryDirectory() as tmp:
        notebook = _trivial_notebook(tmp)
        sets = Path(tmp) / "sets.yaml"
        sets.write_text("".join(f"- {{x: {i}}}\n" for i in range(SWEEP_SETS)))
        _bare_app(context.url)
        local, cores = _local_sweep(context.prefix / "bin" / "papermill", notebook, tmp)

        def recipe(x):
            model, _ = load_recipe(kind="run", environ={}, flags={
                "environment": context.url, "resources.memory": "512 MiB", "run.notebook": str(notebook),
                "run.parameters": {"x": x}})
            return model

        def one_sweep():
            _cli_run(notebook, context.url, "--sweep", str(sets), "--parallel", str(SWEEP_PARALLEL))

        sweep = Figure(f"one sweep app, {SWEEP_SETS} sets, parallel {SWEEP_PARALLEL}", "s", [])
        baseline = Figure(f"local papermill, {SWEEP_SETS} sets, {cores} at a time", "s", [])
        serial = Figure(f"{SWEEP_SETS} apps, one after another", "s", [])
        with skein.Client(log=False) as client:
            def one_after_another():
                for x in range(SWEEP_SETS):
                    outcome = follow(client, start(recipe(x), client).app_id, timeout=900)
                    assert outcome.succeeded, outcome

            for i in range(runs):
                for figure, function in ((sweep, one_sweep), (baseline, local), (serial, one_after_another)):
                    started = time.monotonic()
                    function()
                    figure.samples.append(time.monotonic() - started)
                    print(f"  {figure.name} [{i + 1}/{runs}]: {figure.samples[-1]:.2f} s (load {_load()})",
                          file=sys.stderr, flush=True)
    return (f"Sweep of {SWEEP_SETS} sets (goals: within 1.3x of local papermill, at least 8x faster than one "
            f"after another; load average at the end {_load()})", [sweep, baseline, serial],
            [("sweep / local papermill", sweep.name, baseline.name),
             ("one after another / sweep", serial.name, sweep.name)])


def sweep_burst(context, runs):
    """32 applications submitted at once, against one sweep application."""
    import skein

    from skein_jupyter.config import load_recipe
    from skein_jupyter.runs import follow, start

    with tempfile.TemporaryDirectory() as tmp:
        notebook = _trivial_notebook(tmp)
        sets = Path(tmp) / "sets.yaml"
        sets.write_text("".join(f"- {{x: {i}}}\n" for i in range(SWEEP_SETS)))
        _bare_app(context.url)

        def recipe(x):
            model, _ = load_recipe(kind="run", environ={}, flags={
                "environment": context.url, "resources.memory": "512 MiB", "run.notebook": str(notebook),
                "run.parameters": {"x": x}})
            return model

        with skein.Client(log=False) as client:
            def all_at_once():
                app_ids = [start(recipe(x), client).app_id for x in range(SWEEP_SETS)]
                for app_id in app_ids:
                    assert follow(client, app_id, timeout=1800).succeeded

            sweep = measure(f"one sweep app, {SWEEP_SETS} sets, parallel {SWEEP_PARALLEL}", lambda: _cli_run(
                notebook, context.url, "--sweep", str(sets), "--parallel", str(SWEEP_PARALLEL)), runs)
            burst = measure(f"{SWEEP_SETS} apps, submitted at once", all_at_once, runs)
    return (f"{SWEEP_SETS} applications at once against one sweep", [sweep, burst],
            [("at once / sweep", burst.name, sweep.name)])
