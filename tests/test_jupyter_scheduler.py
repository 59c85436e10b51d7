"""jupyter-scheduler's REST API on a real local jupyter_server whose backend is YARN (skein_jupyter.jupyter_scheduler).

The servers run in this process's environment (jupyter-scheduler installed: the ``scheduler`` extra),
against the sandbox; schedules live in a directory of this module's own, fired by a scheduler of its own.
"""
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone

import pytest
import requests

from conftest import wait_until, write_notebook

pytest.importorskip("jupyter_scheduler")
pytestmark = pytest.mark.yarn

PREFIX = f"t{uuid.uuid4().hex[:6]}"
FINAL = {"COMPLETED", "FAILED", "STOPPED"}


class Server:
    """``jupyter server`` with the backend configured, on a free port, token in its environment only."""

    def __init__(self, root, log):
        from skein_jupyter.jupyter_scheduler import SERVER_OPTIONS

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.root, self.token = root, secrets.token_hex(16)
        env = dict(os.environ, JUPYTER_TOKEN=self.token, JUPYTER_DATA_DIR=str(root / ".data"))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", f"--ServerApp.port={self.port}", "--ServerApp.ip=127.0.0.1",
             f"--ServerApp.root_dir={root}", "--ServerApp.open_browser=False", "--allow-root", *SERVER_OPTIONS],
            env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self.up, 60, "the jupyter server to answer")

    def up(self):
        assert self.proc.poll() is None, "the jupyter server exited"
        try:
            return requests.get(self.url("api/status"), headers=self.headers, timeout=5).ok
        except requests.ConnectionError:
            return False

    @property
    def headers(self):
        return {"Authorization": f"token {self.token}"}

    def url(self, path):
        return f"http://127.0.0.1:{self.port}/{path}"

    def call(self, method, path, body=None, ok=(200, 204)):
        response = requests.request(method, self.url(path), headers=self.headers, json=body, timeout=300)
        assert response.status_code in ok, f"{method} {path}: {response.status_code} {response.text[:500]}"
        return response.json() if response.text else None

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="module")
def workspace(published, sandbox, tmp_path_factory):
    """A server root with three notebooks, a small profile, schedules and job records directories of its own."""
    from skein_jupyter import schedules
    from skein_jupyter.hdfs import HadoopFS
    from skein_jupyter.identity import hadoop_user
    from skein_jupyter.jupyter_scheduler import store

    root = tmp_path_factory.mktemp("jupyterlab")
    write_notebook(root / "report.ipynb", [("alpha = 1", ["parameters"]), "print('alpha is', alpha * 2)"])
    write_notebook(root / "broken.ipynb", ["print('before the failure')", "raise ValueError('boom')"])
    write_notebook(root / "slow.ipynb", ["print('started')", "import time\ntime.sleep(900)"])
    profiles = root / "profiles.yaml"
    profiles.write_text("default: tiny\nprofiles:\n  tiny: {memory: 512 MiB, vcores: 1}\n  big: {memory: 1 GiB}\n")
    directory = f"/user/{hadoop_user()}/skein-jupyter/test-schedules-{PREFIX}"
    records = f"/user/{hadoop_user()}/skein-jupyter/test-lab-jobs-{PREFIX}"  # not there yet: the first job makes it
    saved = {k: os.environ.get(k) for k in (schedules.DIR_VARIABLE, store.DIR_VARIABLE, "SKEIN_JUPYTER_PROFILES")}
    os.environ.update({schedules.DIR_VARIABLE: directory, store.DIR_VARIABLE: records,
                       "SKEIN_JUPYTER_PROFILES": str(profiles)})
    log = open(root / "servers.log", "ab")
    try:
        yield {"root": root, "env": published.metadata["name"], "directory": directory, "log": log}
    finally:
        log.close()
        print((root / "servers.log").read_text()[-3000:])
        HadoopFS().run("-rm", "-r", "-f", "-skipTrash", directory, records, check=False)
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


def _job(env, name, notebook, **more):
    return {"name": name, "input_uri": notebook, "runtime_environment_name": env, "output_formats": ["ipynb", "html"],
            "compute_type": "tiny", **more}


def _wait_status(server, job_id, wanted, timeout):
    found = {}

    def reached():
        found.update(server.call("GET", f"scheduler/jobs/{job_id}"))
        return found["status"] in wanted

    wait_until(reached, timeout, f"{job_id} to be {' or '.join(wanted)}", poll=2)
    return found


def _downloaded(server, job_id):
    server.call("GET", f"scheduler/jobs/{job_id}/download_files?redownload=true")
    job = server.call("GET", f"scheduler/jobs/{job_id}")
    return {f["file_format"]: server.root / f["file_path"] for f in job["job_files"] if f["file_path"]}


def _end(skein_client, job_ids):
    from skein_jupyter.launch import kill_quietly

    for job_id in job_ids:
        kill_quietly(skein_client, job_id[len("yarn-"):])


@pytest.mark.timeout(1800)  # three submissions through the server, one after another; minutes on a loaded machine
def test_jobs_run_on_yarn_fail_stop_download_and_show_on_a_second_server(workspace, skein_client, tmp_path):
    from skein_jupyter.jupyter_scheduler import JOB_TAG
    from skein_jupyter.runtime import keys

    started = time.monotonic()
    created = []  # ended in `finally`, whatever happened
    server = Server(workspace["root"], workspace["log"])
    server.root = workspace["root"]
    try:
        # the panel lists the jobs before the first is created (no records directory yet)
        assert [j for j in server.call("GET", "scheduler/jobs?max_items=0")["jobs"] if j["name"].startswith(PREFIX)] == []
        environments = server.call("GET", "scheduler/runtime_environments")
        mine = [e for e in environments if e["name"] == workspace["env"]]
        assert mine and mine[0]["compute_types"] == ["tiny", "big"] and mine[0]["default_compute_type"] == "tiny"
        bad = requests.post(server.url("scheduler/jobs"), headers=server.headers, timeout=60,
                            json=_job(workspace["env"], "bad", "report.ipynb", compute_type="huge"))
        assert bad.status_code == 500 and "no resource profile 'huge'" in bad.text

        ok = server.call("POST", "scheduler/jobs", _job(workspace["env"], f"{PREFIX} ok", "report.ipynb",
                                                        parameters={"alpha": "21"}))["job_id"]
        created.append(ok)
        broken = server.call("POST", "scheduler/jobs", _job(workspace["env"], f"{PREFIX} broken",
                                                            "broken.ipynb"))["job_id"]
        created.append(broken)
        slow = server.call("POST", "scheduler/jobs", _job(workspace["env"], f"{PREFIX} slow", "slow.ipynb"))["job_id"]
        created.append(slow)
        print(f"3 jobs created in {time.monotonic() - started:.1f}s")
        report = skein_client.application_report(ok[len("yarn-"):])
        assert JOB_TAG in report.tags

        _wait_status(server, slow, {"IN_PROGRESS"}, 600)
        kv = skein_client.connect(slow[len("yarn-"):], wait=False).kv
        wait_until(lambda: json.loads(kv.get(keys.RUN_PROGRESS + "0") or b'{"done": 0}').get("done", 0) >= 1,
                   600, "the slow notebook's first cell to run", poll=2)
        server.call("PATCH", f"scheduler/jobs/{slow}", {"status": "STOPPED"})
        done = {job: _wait_status(server, job, FINAL, 600) for job in (ok, broken, slow)}
        print(f"all ended at {time.monotonic() - started:.1f}s: " + ", ".join(
            f"{job}={d['status']}" for job, d in done.items()))
        assert [done[j]["status"] for j in (ok, broken, slow)] == ["COMPLETED", "FAILED", "STOPPED"]
        assert done[ok]["parameters"] == {"alpha": "21"} and done[ok]["compute_type"] == "tiny"
        message = done[broken].get("status_message") or ""
        assert "ValueError in cell 2" in message and "boom" not in message, message

        files = _downloaded(server, ok)
        assert set(files) == {"ipynb", "html", "input"}, files
        assert "alpha is 42" in files["ipynb"].read_text() and "alpha is 42" in files["html"].read_text()
        files = _downloaded(server, broken)
        assert "before the failure" in files["ipynb"].read_text() and "boom" in files["ipynb"].read_text()
        files = _downloaded(server, slow)
        assert "started" in files["ipynb"].read_text()

        listed = server.call("GET", "scheduler/jobs?sort_by=create_time")
        ids = [j["job_id"] for j in listed["jobs"] if j["name"].startswith(PREFIX)]
        assert set(ids) == {ok, broken, slow}
    finally:
        server.stop()
        _end(skein_client, created)

    # a second server of the same user, with its own (empty) root and data dir, sees the same jobs
    second = Server(tmp_path, workspace["log"])
    try:
        listed = second.call("GET", "scheduler/jobs")
        mine = {j["job_id"]: j["status"] for j in listed["jobs"] if j["name"].startswith(PREFIX)}
        assert mine == {ok: "COMPLETED", broken: "FAILED", slow: "STOPPED"}
        second.call("DELETE", f"scheduler/jobs/{broken}")
        listed = second.call("GET", "scheduler/jobs")
        assert broken not in {j["job_id"] for j in listed["jobs"]}
    finally:
        second.stop()
    print(f"test took {time.monotonic() - started:.1f}s")


@pytest.fixture(scope="module")
def scheduler(workspace, uploaded_venv, skein_client):
    """This module's scheduler application (3 s poll) for its schedules directory; stopped at the end."""
    from skein_jupyter import scheduler_app

    app_id = scheduler_app.start(skein_client, environment=uploaded_venv.url, poll=3)
    try:
        yield app_id
    finally:
        scheduler_app.stop(skein_client)


@pytest.mark.timeout(1800)  # create, edit (made again), a cron fire, the fired run to its end
def test_definition_is_a_schedule_that_fires_with_the_server_stopped(workspace, scheduler, skein_client):
    from skein_jupyter import schedules
    from skein_jupyter.exceptions import UsageError
    from skein_jupyter.runtime import cron

    started = time.monotonic()
    server = Server(workspace["root"], workspace["log"])
    server.root = workspace["root"]
    definition = None
    try:
        body = dict(_job(workspace["env"], f"{PREFIX} every minute", "report.ipynb", parameters={"alpha": "5"}),
                    schedule="* * * * *", timezone="UTC")
        definition = server.call("POST", "scheduler/job_definitions", body)["job_definition_id"]
        print(f"definition {definition} created in {time.monotonic() - started:.1f}s")
        assert schedules.load(definition).cron == "* * * * *"
        assert server.call("GET", f"scheduler/job_definitions/{definition}")["active"] is True

        # what JupyterLab's edit form sends on a Save that changed nothing: the schedule is not made again
        made = schedules.load(definition).created
        server.call("PATCH", f"scheduler/job_definitions/{definition}",
                    {"schedule": "* * * * *", "timezone": "UTC", "input_uri": "report.ipynb"})
        assert schedules.load(definition).created == made
        bad = requests.patch(server.url(f"scheduler/job_definitions/{definition}"), headers=server.headers, timeout=60,
                             json={"schedule": "every minute", "parameters": {"alpha": "6"}})
        assert bad.status_code == 500 and "cron" in bad.text, bad.text[:300]  # refused; the definition stays as it was
        assert schedules.load(definition).created == made
        server.call("PATCH", f"scheduler/job_definitions/{definition}", {"active": False})
        assert schedules.load(definition).paused is True
        assert server.call("GET", f"scheduler/job_definitions/{definition}")["active"] is False
        # an edit of what runs makes the schedule again (still paused), then resume
        server.call("PATCH", f"scheduler/job_definitions/{definition}", {"parameters": {"alpha": "7"}})
        assert schedules.load(definition).paused is True
        resumed = datetime.now(timezone.utc)
        server.call("PATCH", f"scheduler/job_definitions/{definition}", {"active": True})
        described = server.call("GET", f"scheduler/job_definitions/{definition}")
        assert described["active"] is True and described["parameters"] == {"alpha": "7"}
        listed = server.call("GET", "scheduler/job_definitions")["job_definitions"]
        assert definition in {d["job_definition_id"] for d in listed}
    finally:
        server.stop()

    # the server is down: the scheduler fires the schedule anyway
    fired = []

    def a_fire():  # after the edits: a fire at a minute that passed while the test edited ran the old parameters
        fired[:] = [r["app_id"] for r in schedules.history(definition) if r.get("app_id")
                    and datetime.fromisoformat(r["scheduled"]) > resumed]
        return fired

    wait_until(a_fire, 180, "a fire of the definition's schedule", poll=5)
    print(f"fired {fired[0]} at {time.monotonic() - started:.1f}s, with no server running")

    server = Server(workspace["root"], workspace["log"])
    server.root = workspace["root"]
    try:
        jobs = server.call("GET", f"scheduler/jobs?job_definition_id={definition}")["jobs"]
        job_id = f"yarn-{fired[0]}"
        assert job_id in {j["job_id"] for j in jobs}
        done = _wait_status(server, job_id, FINAL, 600)
        assert done["status"] == "COMPLETED" and done["job_definition_id"] == definition
        assert "alpha is 14" in _downloaded(server, job_id)["ipynb"].read_text()

        server.call("DELETE", f"scheduler/job_definitions/{definition}")
        with pytest.raises(UsageError):
            schedules.load(definition)
        definition = None
    finally:
        server.stop()
        for report in skein_client.get_applications(states=["SUBMITTED", "ACCEPTED", "RUNNING"]):
            if cron.directory_tag(workspace["directory"]) in report.tags and report.id != scheduler:
                skein_client.kill_application(report.id)
        if definition:
            schedules.delete(definition)
    print(f"test took {time.monotonic() - started:.1f}s")
