"""The figures: each function measures one group, a figure next to its baseline."""
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from .harness import Figure, measure

PACKAGES = ("skein", "ipykernel", "jupyter_server", "papermill")


@dataclasses.dataclass
class Context:
    sandbox: object
    prefix: Path        # a virtualenv with the Jupyter packages
    archive: Path       # it, packed
    url: str            # it, uploaded to the sandbox

    @classmethod
    def create(cls):
        from skein_jupyter.envstore import upload
        from skein_jupyter.packing import pack
        from skein_jupyter.paths import cache_dir
        from skein_jupyter.progress import Progress
        from skein_jupyter.sandbox import Sandbox

        sandbox = Sandbox()
        sandbox.up(progress=Progress(enabled=True))
        os.environ.update(sandbox.env())
        work = cache_dir() / "bench"
        prefix = work / "venv"
        if not (prefix / "bin" / "jupyter-server").exists():
            print("building the benchmark virtualenv (once)", file=sys.stderr)
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(prefix)], check=True)
            subprocess.run([str(prefix / "bin" / "python"), "-m", "pip", "install", "-q", *PACKAGES], check=True)
        archive = work / "bench-env.tar.gz"
        if not archive.exists():
            pack(archive, prefix=str(prefix), force=True)
        return cls(sandbox, prefix, archive, upload(archive).url)


def _echo_spec(url, signal=False):
    import skein

    # With signal, the service's Python says it ran through the key-value store, so the
    # floor stops where a server's readiness would, not after the application's shutdown.
    code = "import skein; skein.ApplicationClient.from_current().kv['ran'] = b'1'" if signal else "pass"
    script = f"source environment/bin/activate\npython -c \"{code}\""
    return skein.ApplicationSpec(
        name="bench-floor", queue="default",
        master=skein.Master(resources=skein.Resources(memory="512 MiB", vcores=1)),
        services={"floor": skein.Service(resources=skein.Resources(memory="512 MiB", vcores=1), script=script,
                                         files={"environment": skein.File(url, type="archive",
                                                                          visibility="private")})})


def _bare_app(url, address=None):
    import skein

    from skein_jupyter.applications import wait_for_final_state

    with skein.Client(address=address, log=False) as client:
        app_id = client.submit(_echo_spec(url))
        report = wait_for_final_state(client, app_id, 600)
        assert str(report.final_status) == "SUCCEEDED", report.diagnostics


def _python_ran(url, client=None):
    """Submit (new driver, unless ``client``) until the service's Python has run: the floor for time-to-ready."""
    import contextlib

    import skein

    start = time.monotonic()  # the driver's start counts: the CLI starts one too
    with contextlib.nullcontext(client) if client is not None else skein.Client(log=False) as client:
        app_id = client.submit(_echo_spec(url, signal=True))
        deadline = start + 600
        while str(client.application_report(app_id).state) != "RUNNING":
            assert time.monotonic() < deadline, "the floor application did not run"
            time.sleep(0.05)
        app = client.connect(app_id, wait=False)
        while "ran" not in app.kv:
            assert time.monotonic() < deadline, "the floor service did not run"
            time.sleep(0.05)
        return time.monotonic() - start


def floor(context, runs):
    """A bare Skein app whose one service runs `python -c pass` from the packed env."""
    import skein

    _bare_app(context.url)  # warm YARN's cache of the unpacked environment
    fresh = measure("bare app, new driver: submit to FINISHED", lambda: _bare_app(context.url), runs)
    skein.Client.start_global_driver()
    try:
        address = skein.Client.from_global_driver().address
        warm = measure("bare app, global driver", lambda: _bare_app(context.url, address), runs)
    finally:
        skein.Client.stop_global_driver()
    return ("Floor: the least a launch costs on this cluster", [fresh, warm],
            [("new driver / global driver", fresh.name, warm.name)])


def _notebook_to_200(url, workspace=None, keep=False):
    import uuid

    start = time.monotonic()
    proc = subprocess.run(["skein-jupyter", "notebook", "start", "--env", url, "--server", "--memory", "1GiB",
                           "--workspace", workspace or f"bench-{uuid.uuid4().hex[:10]}", "--json", "--quiet"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    request = urllib.request.Request(f"http://{info['host']}:{info['port']}{info['base_url']}api/status",
                                     headers={"Authorization": f"token {info['token']}"})
    deadline = time.monotonic() + 600
    while True:
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                if response.status == 200:
                    break
        except OSError:
            assert time.monotonic() < deadline, "the server did not answer /api/status within 600 s"
            time.sleep(0.05)
    elapsed = time.monotonic() - start
    if keep:
        return elapsed, info
    subprocess.run(["skein-jupyter", "notebook", "stop", info["app_id"]], capture_output=True, timeout=300)
    return elapsed


def _webhdfs():
    from fsspec.implementations.webhdfs import WebHDFS

    from skein_jupyter.identity import hadoop_user
    from skein_jupyter.workspaces import namenode_urls

    host, _, port = namenode_urls()[0].partition("://")[2].rpartition(":")
    return WebHDFS(host, port=int(port), user=hadoop_user(), skip_instance_cache=True)


def _seed_workspace(name, files=200, total=50 * 2**20):
    """A workspace of ``files`` files, ``total`` bytes in all, in 10 directories (made once)."""
    from skein_jupyter.identity import hadoop_user
    from skein_jupyter.workspaces import workspace_path

    fs = _webhdfs()
    path = workspace_path(name, hadoop_user())
    if fs.exists(f"{path}/d9/f{files - 1:03}.bin"):
        return
    for i in range(files):
        with fs.open(f"{path}/d{i % 10}/f{i:03}.bin", "wb") as handle:
            handle.write(os.urandom(total // files))


def _save_latencies(runs):
    """Seconds from a save through the contents API until HDFS has the new content, ``runs`` times."""
    import uuid

    from skein_jupyter.identity import hadoop_user
    from skein_jupyter.workspaces import workspace_path

    name = f"bench-save-{uuid.uuid4().hex[:8]}"
    _, info = _notebook_to_200(_CONTEXT_URL[0], name, keep=True)
    fs, path = _webhdfs(), workspace_path(name, hadoop_user())
    latencies = []
    try:
        for i in range(runs):
            text = uuid.uuid4().hex
            body = json.dumps({"type": "file", "format": "text", "content": text}).encode()
            request = urllib.request.Request(
                f"http://{info['host']}:{info['port']}{info['base_url']}api/contents/save-{i}.txt", data=body,
                method="PUT", headers={"Authorization": f"token {info['token']}", "Content-Type": "application/json"})
            start = time.monotonic()
            urllib.request.urlopen(request, timeout=60).read()
            deadline = start + 60
            while True:
                try:
                    if fs.cat_file(f"{path}/save-{i}.txt").decode() == text:
                        break
                except FileNotFoundError:
                    pass
                assert time.monotonic() < deadline, "a save did not reach HDFS within 60 s"
                time.sleep(0.02)
            latencies.append(time.monotonic() - start)
    finally:
        subprocess.run(["skein-jupyter", "notebook", "stop", info["app_id"]], capture_output=True, timeout=300)
    return latencies


_CONTEXT_URL: list = []


def workspace(context, runs):
    """Time to ready with a 200-file / 50 MB workspace, against an empty one and the floor; save latency."""
    from .harness import Figure

    _bare_app(context.url)
    _CONTEXT_URL[:] = [context.url]
    _seed_workspace("bench-200-files")
    floor_fig = measure("floor: submit to the service's Python running", lambda: _python_ran(context.url), runs)
    empty = measure("notebook start, new empty workspace", lambda: _notebook_to_200(context.url), runs)
    full = measure("notebook start, 200 files / 50 MB workspace",
                   lambda: _notebook_to_200(context.url, "bench-200-files"), runs)
    saves = Figure("save -> on HDFS (20 saves, one server)", "s", _save_latencies(20))
    print(f"  save -> on HDFS: median {saves.median:.2f} s, max {max(saves.samples):.2f} s", file=sys.stderr)
    return ("Workspaces: time to ready and save latency",
            [floor_fig, empty, full, saves],
            [("200-file workspace / floor", full.name, floor_fig.name),
             ("200-file workspace / empty workspace", full.name, empty.name),
             ("empty workspace / floor", empty.name, floor_fig.name)])


def notebook_ready(context, runs):
    """`notebook start` to a 200 on /api/status, against the floor measured alongside."""
    _bare_app(context.url)
    floor_fig = measure("floor: submit to the service's Python running", lambda: _python_ran(context.url), runs)
    ready = measure("notebook start -> 200 on /api/status", lambda: _notebook_to_200(context.url), runs)
    return ("Notebook time to ready (environment already uploaded; goal: within 1.5x of the floor)",
            [floor_fig, ready], [("notebook / floor", ready.name, floor_fig.name)])


def packing(context, runs):
    """Our `env pack` against plain venv-pack defaults on the same environment."""
    import venv_pack

    from skein_jupyter.packing import pack

    sizes = {}
    with tempfile.TemporaryDirectory() as tmp:
        def ours():
            sizes["ours"] = pack(Path(tmp) / "ours.tar.gz", prefix=str(context.prefix), force=True).archive.stat().st_size

        def plain():
            out = Path(tmp) / "plain.tar.gz"
            venv_pack.pack(prefix=str(context.prefix), output=str(out), force=True)
            sizes["plain"] = out.stat().st_size

        mine = measure("skein-jupyter env pack", ours, runs)
        theirs = measure("venv-pack defaults", plain, runs)
    size_ours = measure("archive size, env pack (MiB)", lambda: sizes["ours"] / 2**20, 1, unit="M")
    size_theirs = measure("archive size, venv-pack (MiB)", lambda: sizes["plain"] / 2**20, 1, unit="M")
    return ("Packing (with kernelspec patching and metadata)", [mine, theirs, size_ours, size_theirs],
            [("pack time, ours / venv-pack", mine.name, theirs.name),
             ("size, ours / venv-pack", size_ours.name, size_theirs.name)])


def environment_caching(context, runs):
    """A launch with a new environment (pack, upload, localize) against one with it unchanged."""
    from skein_jupyter.environment import EnvironmentRef
    from skein_jupyter.envstore import prepare
    from skein_jupyter.packing import pack

    with tempfile.TemporaryDirectory() as tmp:
        state = {}

        def first():
            # A fresh archive has a new content hash: packed, uploaded and localized anew.
            start = time.monotonic()
            archive = pack(Path(tmp) / f"env-{time.time_ns()}.tar.gz", prefix=str(context.prefix)).archive
            state["url"] = prepare(EnvironmentRef.parse(str(archive))).url
            state["archive"] = archive
            _notebook_to_200(state["url"])
            return time.monotonic() - start

        def second():
            start = time.monotonic()
            url = prepare(EnvironmentRef.parse(str(state["archive"]))).url  # only an existence check
            _notebook_to_200(url)
            return time.monotonic() - start

        def prep_again():
            start = time.monotonic()
            prepared = prepare(EnvironmentRef.parse(str(state["archive"])))
            assert not prepared.uploaded
            return time.monotonic() - start

        cold, warm, prep = [], [], []
        for _ in range(runs):
            cold.append(measure("first launch, new environment", first, 1).samples[0])
            warm.append(measure("second launch, unchanged", second, 1).samples[0])
            prep.append(measure("launch preparation, unchanged", prep_again, 1).samples[0])
    from .harness import Figure

    figures = [Figure("first launch, new environment", "s", cold), Figure("second launch, unchanged", "s", warm),
               Figure("launch preparation, unchanged", "s", prep)]
    return ("Environment caching (to a 200 from the server)", figures,
            [("first / second", figures[0].name, figures[1].name)])


def cli_startup(context, runs):
    """`skein-jupyter --help` against a bare Python start: imports must stay lazy."""
    def run(command):
        return lambda: subprocess.run(command, capture_output=True, check=True) and None

    ours = measure("skein-jupyter --help", run(["skein-jupyter", "--help"]), runs)
    python = measure("python -c pass", run([sys.executable, "-c", "pass"]), runs)
    return ("CLI start-up", [ours, python], [("skein-jupyter --help / python", ours.name, python.name)])


def _trivial_notebook(directory):
    """A two-cell notebook with a parameters cell: what a batch launch costs, not the work."""
    nb = {"cells": [{"cell_type": "code", "id": "p", "metadata": {"tags": ["parameters"]}, "execution_count": None,
                     "outputs": [], "source": "x = 1"},
                    {"cell_type": "code", "id": "c", "metadata": {}, "execution_count": None, "outputs": [],
                     "source": "print(x * 2)"}],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    path = Path(directory) / "trivial.ipynb"
    path.write_text(json.dumps(nb))
    return path


def _cli_run(notebook, url, *extra):
    proc = subprocess.run(["skein-jupyter", "run", str(notebook), "--env", url, "--memory", "512MiB", "-q",
                           *extra], capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def batch_overhead(context, runs):
    """`skein-jupyter run` of a trivial notebook against local papermill, and against the floor."""
    papermill = context.prefix / "bin" / "papermill"
    with tempfile.TemporaryDirectory() as tmp:
        notebook = _trivial_notebook(tmp)
        _bare_app(context.url)  # warm YARN's cache of the unpacked environment

        def local():
            subprocess.run([str(papermill), str(notebook), str(Path(tmp) / "out.ipynb"), "-p", "x", "2",
                            "--no-progress-bar"], check=True, capture_output=True, timeout=600)

        ours = Figure("skein-jupyter run (new driver, to the summary)", "s", [])
        theirs = Figure("local papermill, same notebook", "s", [])
        floor_fig = Figure("floor: bare app, new driver, to FINISHED", "s", [])
        figures = ((ours, lambda: _cli_run(notebook, context.url, "-p", "x", "2")), (theirs, local),
                   (floor_fig, lambda: _bare_app(context.url)))
        for _ in range(runs):  # side by side: each run measures all three under the same load
            for figure, function in figures:
                started = time.monotonic()
                function()
                figure.samples.append(time.monotonic() - started)
                print(f"  {figure.name} [{len(figure.samples)}/{runs}]: {figure.samples[-1]:.2f} s", file=sys.stderr,
                      flush=True)

    overhead = Figure("overhead: YARN run - local papermill", "s",
                      [a - b for a, b in zip(ours.samples, theirs.samples)])
    above_floor = Figure("YARN run - floor (goal: at most 2 s)", "s",
                         [a - b for a, b in zip(ours.samples, floor_fig.samples)])
    return ("Batch overhead (a trivial notebook)", [ours, theirs, floor_fig, overhead, above_floor],
            [("YARN run / local papermill", ours.name, theirs.name),
             ("YARN run / floor", ours.name, floor_fig.name)])
