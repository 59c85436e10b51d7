"""Session fixtures: one real sandbox cluster, one Skein driver per process, and app bookkeeping.

The suite runs its files side by side in pytest-xdist workers (``-n 2`` in
setup.cfg; ``-n 0`` runs it in one process). What the workers share is made
once, under an fcntl lock: the sandbox is brought up (or restarted with the
session's GPUs and node size) by the first worker only, when no other test
process uses it, and stopped at the end by the last one, only if the session
started it; the Jupyter test virtualenv, its packed archive and its uploads are
made once too.

Each process has its own Skein driver: a global driver in a private Skein
config directory, so the commands the tests run (in-process or as
subprocesses) reuse it instead of starting their own. Its log names every
application the process submitted (:func:`submitted_here`): a worker kills
only those at the end, never another worker's. Applications submitted
through the ``submit`` fixture are killed if still running when their test
ends, and their logs are printed when the test failed.

A test that must change what every test sees (the cluster's configuration,
say) takes the ``cluster_alone`` fixture: no other ``yarn`` test runs while it
does. No test needs it today: unique names do.
"""
import atexit
import contextlib
import fcntl
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

# Before anything imports skein, which reads SKEIN_CONFIG once. Private to this process (each
# xdist worker, and the controller, imports this file): removed when it exits.
SKEIN_CONFIG = tempfile.mkdtemp(prefix="skein-jupyter-tests-skein-")
os.environ["SKEIN_CONFIG"] = SKEIN_CONFIG
atexit.register(shutil.rmtree, SKEIN_CONFIG, ignore_errors=True)

import pytest  # noqa: E402  (after SKEIN_CONFIG is set)

from skein_jupyter.progress import Progress  # noqa: E402
from skein_jupyter.sandbox import Sandbox  # noqa: E402

ACTIVE_STATES = ["NEW", "NEW_SAVING", "SUBMITTED", "ACCEPTED", "RUNNING"]

#: This process's pytest-xdist worker ("gw0", "gw1", ...), or "main" when the suite runs in one process.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")

#: The log of this process's Skein driver: it names every application the process submitted.
DRIVER_LOG = Path(SKEIN_CONFIG) / "driver.log"


@contextlib.contextmanager
def file_lock(path, shared=False, timeout=None):
    """Hold an fcntl lock on ``path`` (made if missing) for the ``with`` block; exclusive unless ``shared``.

    What the test processes of a session (and sessions sharing a sandbox) serialize on. With
    ``timeout`` (seconds), a lock still held by another process then fails the test (a lock cycle
    between test processes would otherwise hang the run)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        if timeout is None:
            fcntl.flock(handle, mode)
        else:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(handle, mode | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        pytest.fail(f"{path.name} still held by another test process after {timeout}s")
                    time.sleep(1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def session_dir(tmp_path_factory):
    """A directory all the xdist workers of this session share (the base temporary directory without xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if WORKER != "main" else base


def once(tmp_path_factory, name, make):
    """``make(directory)`` run by one process of the session; the others wait and get its (JSON) result."""
    directory = session_dir(tmp_path_factory) / f"once-{name}"
    result = directory / "result.json"
    with file_lock(session_dir(tmp_path_factory) / f"once-{name}.lock"):
        if not result.exists():
            directory.mkdir(exist_ok=True)
            result.write_text(json.dumps(make(directory)))
    return json.loads(result.read_text())


def submitted_here():
    """Ids of the applications this process submitted so far, in-process or from a CLI subprocess.

    Both go through this process's global Skein driver, whose log says ``Submitted application
    <id>`` for each. Compare before and after to check that a command submitted nothing: other
    workers submit at the same time, so the cluster's list of applications cannot tell."""
    try:
        text = DRIVER_LOG.read_text(errors="replace")
    except FileNotFoundError:
        return set()
    return set(re.findall(r"Submitted application (application_\d+_\d+)", text))


def wait_until(predicate, timeout, what, poll=0.25):
    """Call ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(poll)


#: Fixtures only the ``yarn`` tier may use: the sandbox, and the Jupyter test virtualenv
#: (installed from the package index on a machine's first session, ~56 MiB packed).
YARN_ONLY_FIXTURES = ("sandbox", "test_venv")


#: The slower files, slowest first (from ``--durations``), so that no long file is left to run by
#: itself at the end; then the other files with ``yarn`` tests; the short files without any last.
SLOW_FILES = ("test_guides.py", "test_guides_batch.py", "test_jupyter_scheduler_ui.py", "test_schedules.py",
              "test_jupyter_scheduler.py", "test_flow_runs.py", "test_runs.py", "test_kernels.py",
              "test_kernel_clients.py", "test_workspace.py", "test_notebook.py", "test_browser.py",
              "test_culling.py", "test_privacy.py", "test_environments.py", "test_tls.py", "test_gpus.py",
              "test_sandbox.py", "test_notifications.py", "test_kernels.py")


def _file_rank(items):
    """Where each test file runs in the suite: SLOW_FILES, the other files with ``yarn`` tests, the rest.

    pytest-xdist (``--dist loadfile --no-loadscope-reorder``) hands whole files to the workers in this order."""
    yarn_files = {item.path.name for item in items if item.get_closest_marker("yarn") is not None}

    def rank(item):
        name = item.path.name
        if name in SLOW_FILES:
            return (0, SLOW_FILES.index(name))
        return (1 if name in yarn_files else 2, 0)

    return rank


def pytest_collection_modifyitems(config, items):
    """A test that uses the sandbox or the Jupyter test virtualenv must be marked ``yarn``, so
    `-m "not yarn"` is the fast tier: no cluster, no package index, under a minute. Files run in
    the order of :func:`_file_rank` (a stable sort: tests keep their order within a file)."""
    unmarked = [item.nodeid for item in items
                if set(YARN_ONLY_FIXTURES) & set(getattr(item, "fixturenames", ()))
                and item.get_closest_marker("yarn") is None]
    if unmarked:
        raise pytest.UsageError(f"tests that use {' or '.join(YARN_ONLY_FIXTURES)} but are not marked "
                                "@pytest.mark.yarn (the fast tier packs small_venv instead): " + ", ".join(unmarked))
    items.sort(key=_file_rank(items))


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


#: GPUs (countable ``yarn.io/gpu``) the session sandbox declares, so GPU requests are tested.
SESSION_GPUS = 2
#: What the session sandbox's one node offers: twice a user's sandbox, so two workers'
#: applications (each an ApplicationMaster of 1 vcore, 512 MiB, plus containers) run at once
#: instead of queueing; the scheduler admits ApplicationMasters up to half of it (8 at once).
SESSION_VCORES = 16
SESSION_MEMORY_MB = 16384


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


@pytest.fixture(scope="session")
def sandbox():
    """The sandbox cluster, up with :data:`SESSION_GPUS` GPUs and the session's node size, with
    this process's environment pointing at it.

    The test processes using a sandbox are recorded (pids) in ``test-users.json`` in its
    directory, under a lock. The first brings it up: a sandbox already running with other GPUs or
    node size (e.g. started by the README's command) is restarted with these and left running at
    the end. The others never restart it; the last one out stops it if the first started it.
    """
    from skein_jupyter.sandbox import SandboxConfig

    box = Sandbox(SandboxConfig.load(gpus=SESSION_GPUS, nodemanager_vcores=SESSION_VCORES,
                                     nodemanager_memory_mb=SESSION_MEMORY_MB))
    users_file = box.config.root / "test-users.json"
    with file_lock(box.config.root / "test-users.lock"):
        state = json.loads(users_file.read_text()) if users_file.exists() else {}
        users = [pid for pid in state.get("pids", []) if _alive(pid)]
        if not users:
            state = {"stop_at_end": not box.running}
            box.up(progress=Progress(enabled=True), restart=True)
        else:  # in use by another test process: start what is missing, never restart
            box.up(progress=Progress(enabled=True))
        state["pids"] = [*users, os.getpid()]
        users_file.write_text(json.dumps(state))
    os.environ.update(box.env())
    yield box
    with file_lock(box.config.root / "test-users.lock"):
        state = json.loads(users_file.read_text()) if users_file.exists() else {}
        state["pids"] = [pid for pid in state.get("pids", []) if pid != os.getpid() and _alive(pid)]
        if state["pids"]:
            users_file.write_text(json.dumps(state))
        else:
            users_file.unlink(missing_ok=True)
            if state.get("stop_at_end"):
                box.down()


_ALONE_HERE = False  # this process holds the exclusive cluster lock (``cluster_alone``)


#: Taken shared by every ``yarn`` test, exclusively by ``cluster_alone``; a test waiting for the
#: exclusive lock holds the turnstile, so the shared takers queue behind it instead of starving it.
def _alone_locks():
    from skein_jupyter.sandbox.config import default_root

    return default_root() / "test-alone.lock", default_root() / "test-alone.turnstile"


@pytest.fixture(autouse=True)
def _yarn_tests_share_the_cluster(request):
    """Every ``yarn`` test holds the cluster lock shared, so ``cluster_alone`` waits for them."""
    if request.node.get_closest_marker("yarn") is None or _ALONE_HERE:
        yield  # (a flock of our own beside this process's exclusive one would wait for ever)
        return
    lock, turnstile = _alone_locks()
    with file_lock(turnstile):
        pass
    with file_lock(lock, shared=True):
        yield


@pytest.fixture(scope="module")
def cluster_alone():
    """For a module whose tests change what every test sees (the cluster's configuration, say):
    no other ``yarn`` test, in any worker, runs while the module's tests do (other
    files' module-scoped fixtures, a server say, may still be up).

    Costs the other workers' time: use it only where unique names cannot do."""
    global _ALONE_HERE
    lock, turnstile = _alone_locks()
    with file_lock(turnstile), file_lock(lock):
        _ALONE_HERE = True
        try:
            yield
        finally:
            _ALONE_HERE = False


@pytest.fixture(scope="session")
def skein_client(sandbox, tmp_path_factory):
    """This process's Skein driver (global, private to the process); at the end kills what the process
    submitted and left running (:func:`submitted_here`), never another worker's or a developer's applications."""
    import skein

    from skein_jupyter.applications import FINAL_STATES

    skein.Security.new_credentials().to_directory(SKEIN_CONFIG)
    skein.Client.start_global_driver(log=str(DRIVER_LOG))
    client = skein.Client.from_global_driver()
    yield client
    for app_id in sorted(submitted_here()):
        if str(client.application_report(app_id).state) not in FINAL_STATES:
            client.kill_application(app_id)
    client.close()
    shutil.copy(DRIVER_LOG, tmp_path_factory.mktemp("skein") / "driver.log")  # kept with the session's files
    skein.Client.stop_global_driver(force=True)
    shutil.rmtree(SKEIN_CONFIG, ignore_errors=True)


@pytest.fixture
def submit(skein_client, request):
    """``submit(spec) -> app_id``; on teardown kills what still runs, prints logs of failed tests."""
    from skein_jupyter.applications import FINAL_STATES, application_logs

    submitted = []

    def _submit(spec):
        app_id = skein_client.submit(spec)
        submitted.append(app_id)
        return app_id

    yield _submit
    failed = getattr(request.node, "report_call", None)
    failed = failed is not None and failed.failed
    for app_id in submitted:
        if str(skein_client.application_report(app_id).state) not in FINAL_STATES:
            skein_client.kill_application(app_id)
        if failed:
            try:
                print(f"----- logs of {app_id} -----\n{application_logs(app_id, timeout=60)}")
            except Exception as exc:  # the test failed already; say why logs are missing
                print(f"----- no logs of {app_id}: {exc}")


def free_ports():
    """A free port for every sandbox listener, as ``name=port`` text for SKEIN_JUPYTER_SANDBOX_PORTS."""
    import socket

    from skein_jupyter.sandbox import DEFAULT_PORTS

    sockets = []
    try:
        for _ in DEFAULT_PORTS:
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return ",".join(f"{name}={sock.getsockname()[1]}" for name, sock in zip(DEFAULT_PORTS, sockets))
    finally:
        for sock in sockets:
            sock.close()


@pytest.fixture(scope="module")
def webhdfs(sandbox):
    """The tests' own WebHDFS client of the sandbox (fsspec's, as containers use), to look at workspaces."""
    from fsspec.implementations.webhdfs import WebHDFS

    from skein_jupyter.identity import hadoop_user
    from skein_jupyter.workspaces import namenode_urls

    host, _, port = namenode_urls()[0].partition("://")[2].rpartition(":")
    return WebHDFS(host, port=int(port), user=hadoop_user(), skip_instance_cache=True)


def kernel_socket(server, kernel_id):
    """A client connected to a kernel of ``server`` over its websocket, as a notebook tab is."""
    import websocket

    return websocket.create_connection(
        f"ws://{server.host}:{server.port}{server.base_url}api/kernels/{kernel_id}/channels",
        header=[f"Authorization: token {server.token}"], timeout=120)


def send_code(ws, code):
    """Send ``code`` as an execute_request over the kernel websocket ``ws``; returns its message id."""
    import json
    import uuid

    msg_id = uuid.uuid4().hex
    ws.send(json.dumps({
        "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex,
                   "msg_type": "execute_request", "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True}}))
    return msg_id


def processes_under(path):
    """Pids of processes whose command line or working directory mentions ``path``."""
    from pathlib import Path

    path = str(path)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if path in cmdline or cwd.startswith(path):
            found.append(int(entry.name))
    return found


# ----- packed environments, made once per session

#: What a test environment holds: the packages notebook servers and runs need.
#: (jupyter-scheduler: for `notebook start --scheduler`, tests/test_jupyter_scheduler_ui.py.)
TEST_ENV_PACKAGES = ("skein", "ipykernel", "jupyter_server", "papermill", "jupyterlab", "notebook",
                     "jupyter-scheduler>=2.12,<3")


def make_venv(path, packages=TEST_ENV_PACKAGES):
    """A real virtualenv with ``packages`` installed from the package index."""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=300)
    if packages:
        subprocess.run([str(path / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        *packages], check=True, timeout=900)
    return path


def cached_test_venv():
    """The test virtualenv, made once per machine and kept in the cache directory.

    Virtualenvs are not relocatable, so it is built where it stays, under a
    name made of what it holds; a ``.complete`` marker beside it says it is whole. Delete
    ``~/.cache/skein-jupyter/test-venvs`` (or the cache directory's) to rebuild.
    """
    import hashlib
    import subprocess
    import sys

    from skein_jupyter.paths import cache_dir

    key = hashlib.sha256(repr((sys.version, TEST_ENV_PACKAGES, 2)).encode()).hexdigest()[:12]
    path = cache_dir() / "test-venvs" / f"analytics-{key}"
    complete = path.parent / f"{path.name}.complete"
    if complete.exists():
        return path
    with file_lock(path.parent / f"{path.name}.lock"):  # one process builds it; the others wait
        if complete.exists():
            return path
        shutil.rmtree(path, ignore_errors=True)
        make_venv(path)
        for name in ("python3", "analytics"):
            subprocess.run([str(path / "bin" / "python"), "-m", "ipykernel", "install", "--sys-prefix",
                            "--name", name, "--display-name", name.title()],
                           check=True, capture_output=True, timeout=300)
        complete.write_text("")
    return path


@pytest.fixture(scope="session")
def test_venv():
    """A virtualenv for notebook servers and runs, with two kernelspecs that name their
    interpreter by absolute path, as ``ipykernel install --sys-prefix`` writes them.
    Tests must not change it (it is shared by later sessions)."""
    return cached_test_venv()


def conda_layout(venv, prefix):
    """``venv`` copied to ``prefix`` with conda's layout: conda-meta/ with a history file and
    a package record, kernelspecs naming the interpreter by absolute path as conda writes them.

    NOT a conda-solved environment (no conda channel is reachable here), but the real
    conda-pack packs it."""
    import json

    shutil.copytree(venv, prefix, symlinks=True)
    (prefix / "conda-meta").mkdir()
    (prefix / "conda-meta" / "history").write_text("==> 2026-11-01 00:00:00 <==\n# cmd: fixture\n")
    kernel_json = "share/jupyter/kernels/{}/kernel.json"
    for name in ("python3", "analytics"):
        kernel = prefix / kernel_json.format(name)
        spec = json.loads(kernel.read_text())
        spec["argv"][0] = str(prefix / "bin" / "python")
        kernel.write_text(json.dumps(spec))
    record = {"name": "kernelspec-fixture", "version": "1.0", "build": "0", "build_number": 0,
              "channel": "local", "url": "", "files": [kernel_json.format("python3")], "link": None}
    (prefix / "conda-meta" / "kernelspec-fixture-1.0-0.json").write_text(json.dumps(record))
    return prefix


@pytest.fixture(scope="session")
def conda_envs(test_venv, tmp_path_factory):
    """A conda ``envs`` directory holding "analytics", the test virtualenv in conda's layout
    (:func:`conda_layout`); point CONDA_ENVS_PATH at it."""
    envs = tmp_path_factory.mktemp("conda-envs")
    conda_layout(test_venv, envs / "analytics")
    return envs


# ----- small environments for the fast tier (packing without a cluster)

#: The distributions a small environment records as installed: what ``pack()`` requires
#: for every kind of job (skein_jupyter.packing.REQUIRED).
SMALL_VENV_PACKAGES = (("skein", "0.8.2"), ("ipykernel", "6.29.5"), ("jupyter_server", "2.14.2"),
                       ("papermill", "2.6.0"))


def _dist_info(site, name, version, files=()):
    """A ``NAME-VERSION.dist-info`` as pip writes it (METADATA, INSTALLER, RECORD with hashes)."""
    import base64
    import hashlib

    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "INSTALLER").write_text("pip\n")
    rows = []
    for path in [*files, info / "METADATA", info / "INSTALLER"]:
        digest = base64.urlsafe_b64encode(hashlib.sha256(path.read_bytes()).digest()).rstrip(b"=").decode()
        rows.append(f"{os.path.relpath(path, site)},sha256={digest},{path.stat().st_size}")
    rows.append(f"{os.path.relpath(info / 'RECORD', site)},,")
    (info / "RECORD").write_text("\n".join(rows) + "\n")


def make_small_venv(path, packages=SMALL_VENV_PACKAGES, kernels=("python3", "analytics")):
    """A real, small virtualenv (``python -m venv --without-pip``, well under a MiB) for packing tests.

    It holds a real pure-Python package with a console script (its shebang names the
    environment's interpreter by absolute path, as pip writes it), the dist-info records of
    ``packages`` (metadata only: what ``pack()`` reads to check an environment's requirements;
    the packers copy files and import nothing), and ``kernels``, kernelspecs naming the
    interpreter by absolute path as ``ipykernel install --sys-prefix`` writes them. Packed
    for real by venv-pack (or conda-pack, see :func:`conda_layout`) in a fraction of a second;
    it cannot run Jupyter, so tests that start kernels use ``test_venv``."""
    import json
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120)
    site = next(path.glob("lib/python3*/site-packages"))
    if packages:
        package = site / "analytics_helpers"
        package.mkdir()
        (package / "__init__.py").write_text('"""Helpers for the analytics notebooks."""\n\n'
                                             "def main():\n    print('analytics helpers')\n")
        script = path / "bin" / "analytics-helpers"
        script.write_text(f"#!{path / 'bin' / 'python'}\nimport sys\nfrom analytics_helpers import main\n"
                          "sys.exit(main())\n")
        script.chmod(0o755)
        _dist_info(site, "analytics_helpers", "1.0", files=[package / "__init__.py", script])
        for name, version in packages:
            _dist_info(site, name, version)
    for name in kernels:
        kernel = path / "share" / "jupyter" / "kernels" / name
        kernel.mkdir(parents=True)
        spec = {"argv": [str(path / "bin" / "python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": name.title(), "language": "python", "metadata": {"debugger": True}}
        (kernel / "kernel.json").write_text(json.dumps(spec, indent=1))
    return path


@pytest.fixture(scope="session")
def small_venv(tmp_path_factory):
    """A small real virtualenv with two kernelspecs (:func:`make_small_venv`); tests must not change it."""
    return make_small_venv(tmp_path_factory.mktemp("small-venv") / "analytics")


@pytest.fixture(scope="session")
def small_conda_envs(small_venv, tmp_path_factory):
    """A conda ``envs`` directory holding "analytics", ``small_venv`` in conda's layout."""
    envs = tmp_path_factory.mktemp("small-conda-envs")
    conda_layout(small_venv, envs / "analytics")
    return envs


@pytest.fixture(scope="session")
def packed_small_venv(small_venv, tmp_path_factory):
    """``small_venv`` packed by ``skein-jupyter env pack``: the archive's path."""
    from skein_jupyter.packing import pack

    return pack(tmp_path_factory.mktemp("packed-small") / "analytics.tar.gz", prefix=str(small_venv)).archive


@pytest.fixture(scope="session")
def packed_venv(test_venv, tmp_path_factory):
    """``test_venv`` packed by ``skein-jupyter env pack`` (once per session, shared by the workers):
    the archive's path."""
    from skein_jupyter.packing import pack

    def make(directory):
        return str(pack(directory / "analytics.tar.gz", prefix=str(test_venv)).archive)

    return Path(once(tmp_path_factory, "packed-venv", make))


@pytest.fixture(scope="session")
def uploaded_venv(packed_venv, sandbox, tmp_path_factory):
    """``packed_venv`` uploaded to the sandbox's HDFS: its upload result (the first worker uploads;
    the others, under the lock, find the same content there)."""
    from skein_jupyter.envstore import upload

    with file_lock(session_dir(tmp_path_factory) / "upload.lock"):
        return upload(packed_venv)


@pytest.fixture(scope="session")
def published(packed_venv, sandbox, tmp_path_factory):
    """The test environment published by an admin as "analytics", for everyone (public)."""
    from skein_jupyter.envstore import PUBLISHED_DIR, upload

    with file_lock(session_dir(tmp_path_factory) / "upload.lock"):
        return upload(packed_venv, to=PUBLISHED_DIR, public=True)


def write_notebook(path, cells, kernel="python3"):
    """A notebook of code cells; ``cells`` are sources, or ``(source, [tags])`` pairs."""
    import json

    nb = {"cells": [], "metadata": {"kernelspec": {"name": kernel, "display_name": kernel, "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    for index, cell in enumerate(cells):
        source, tags = cell if isinstance(cell, tuple) else (cell, [])
        nb["cells"].append({"cell_type": "code", "id": f"cell-{index}", "metadata": {"tags": tags},
                            "execution_count": None, "outputs": [], "source": source})
    path.write_text(json.dumps(nb, indent=1))
    return path
