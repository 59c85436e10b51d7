"""Session fixtures: one real sandbox cluster, one Skein driver, and app bookkeeping.

The sandbox is brought up once per session (or reused when `.ci/run` or the
developer already started it) and stopped at the end only if this session
started it. One Skein driver serves the session: a global driver in a private
Skein config directory, so the commands the tests run (in-process or as
subprocesses) reuse it instead of starting their own. Applications submitted
through the ``submit`` fixture are killed if still running when their test
ends, and their logs are printed when the test failed.
"""
import os
import shutil
import tempfile
import time

# Before anything imports skein, which reads SKEIN_CONFIG once.
SKEIN_CONFIG = tempfile.mkdtemp(prefix="skein-jupyter-tests-skein-")
os.environ["SKEIN_CONFIG"] = SKEIN_CONFIG

import pytest  # noqa: E402  (after SKEIN_CONFIG is set)

from skein_jupyter.progress import Progress  # noqa: E402
from skein_jupyter.sandbox import Sandbox  # noqa: E402

ACTIVE_STATES = ["NEW", "NEW_SAVING", "SUBMITTED", "ACCEPTED", "RUNNING"]


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


def pytest_collection_modifyitems(config, items):
    """A test that uses the sandbox or the Jupyter test virtualenv must be marked ``yarn``, so
    `-m "not yarn"` is the fast tier: no cluster, no package index, under a minute."""
    unmarked = [item.nodeid for item in items
                if set(YARN_ONLY_FIXTURES) & set(getattr(item, "fixturenames", ()))
                and item.get_closest_marker("yarn") is None]
    if unmarked:
        raise pytest.UsageError(f"tests that use {' or '.join(YARN_ONLY_FIXTURES)} but are not marked "
                                "@pytest.mark.yarn (the fast tier packs small_venv instead): " + ", ".join(unmarked))


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


#: GPUs (countable ``yarn.io/gpu``) the session sandbox declares, so GPU requests are tested.
SESSION_GPUS = 2


@pytest.fixture(scope="session")
def sandbox():
    """The sandbox cluster, up with :data:`SESSION_GPUS` GPUs, with this process's environment pointing at it.

    A sandbox already running with another number of GPUs (e.g. started by
    the README's command) is restarted with these, and left running at the end.
    """
    from skein_jupyter.sandbox import SandboxConfig

    box = Sandbox(SandboxConfig.load(gpus=SESSION_GPUS))
    was_running = box.running
    box.up(progress=Progress(enabled=True), restart=True)
    os.environ.update(box.env())
    yield box
    if not was_running:
        box.down()


@pytest.fixture(scope="session")
def skein_client(sandbox, tmp_path_factory):
    """The session's Skein driver (global, private to the session); kills leftover applications at the end."""
    import skein

    log = tmp_path_factory.mktemp("skein") / "driver.log"
    skein.Security.new_credentials().to_directory(SKEIN_CONFIG)
    skein.Client.start_global_driver(log=str(log))
    client = skein.Client.from_global_driver()
    # Leave alone what ran before the session (a developer's own server).
    before = {report.id for report in client.get_applications(states=ACTIVE_STATES)}
    yield client
    for report in client.get_applications(states=ACTIVE_STATES):
        if report.id not in before:
            client.kill_application(report.id)
    client.close()
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
TEST_ENV_PACKAGES = ("skein", "ipykernel", "jupyter_server", "papermill", "jupyterlab", "notebook")


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
    shutil.rmtree(path, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
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
    """``test_venv`` packed by ``skein-jupyter env pack``: the archive's path."""
    from skein_jupyter.packing import pack

    return pack(tmp_path_factory.mktemp("packed") / "analytics.tar.gz", prefix=str(test_venv)).archive


@pytest.fixture(scope="session")
def uploaded_venv(packed_venv, sandbox):
    """``packed_venv`` uploaded to the sandbox's HDFS: its upload result."""
    from skein_jupyter.envstore import upload

    return upload(packed_venv)


@pytest.fixture(scope="session")
def published(packed_venv, sandbox):
    """The test environment published by an admin as "analytics", for everyone (public)."""
    from skein_jupyter.envstore import PUBLISHED_DIR, upload

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
