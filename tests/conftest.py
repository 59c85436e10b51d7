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


def pytest_collection_modifyitems(config, items):
    """A test that uses the sandbox must be marked ``yarn``, so `-m "not yarn"` is the fast tier."""
    unmarked = [item.nodeid for item in items
                if "sandbox" in getattr(item, "fixturenames", ()) and item.get_closest_marker("yarn") is None]
    if unmarked:
        raise pytest.UsageError("tests that use the sandbox but are not marked @pytest.mark.yarn: "
                                + ", ".join(unmarked))


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture(scope="session")
def sandbox():
    """The sandbox cluster, up, with this process's environment pointing at it."""
    box = Sandbox()
    result = box.up(progress=Progress(enabled=True))
    os.environ.update(box.env())
    yield box
    if not result.already_running:
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


@pytest.fixture(scope="session")
def conda_envs(test_venv, tmp_path_factory):
    """A conda ``envs`` directory holding "analytics" (point CONDA_ENVS_PATH at it).

    NOT a conda-solved environment: no conda channel is reachable here. It is the test
    virtualenv copied into a prefix with conda's layout (conda-meta/ with a history file
    and a package record), whose kernelspecs name the interpreter by absolute path as
    conda writes them. The real conda-pack packs it."""
    import json

    envs = tmp_path_factory.mktemp("conda-envs")
    prefix = envs / "analytics"
    shutil.copytree(test_venv, prefix, symlinks=True)
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
    return envs


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
