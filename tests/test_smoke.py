"""Smoke tests of the real cluster: Skein's key-value store, HDFS, failures, and logs."""
import os
import shlex
import subprocess
import sys
import textwrap
import uuid

import pytest
import skein
from click.testing import CliRunner

from conftest import wait_until
from skein_jupyter.applications import application_logs, wait_for_final_state
from skein_jupyter.cli import cli

pytestmark = pytest.mark.yarn

SMALL = skein.Resources(memory="64 MiB", vcores=1)
MASTER = skein.Master(resources=skein.Resources(memory="256 MiB", vcores=1))


def _spec(name, script):
    return skein.ApplicationSpec(name=name, queue="default", master=MASTER,
                                 services={"main": skein.Service(resources=SMALL, script=script)})


def test_service_writes_to_the_key_value_store_and_the_client_reads_it(skein_client, submit):
    value = uuid.uuid4().hex
    code = textwrap.dedent(f"""\
        import time, skein
        app = skein.ApplicationClient.from_current()
        app.kv["smoke.value"] = b"{value}"
        deadline = time.monotonic() + 300
        while "smoke.done" not in app.kv and time.monotonic() < deadline:
            time.sleep(0.2)
        """)
    app_id = submit(_spec("smoke-kv", shlex.join([sys.executable, "-c", code])))
    wait_until(lambda: str(skein_client.application_report(app_id).state) == "RUNNING", 180,
               "the application to run")
    app = skein_client.connect(app_id, wait=False)
    got = wait_until(lambda: app.kv.get("smoke.value"), 180, "the service's key")
    assert got == value.encode()
    app.kv["smoke.done"] = b"1"
    report = wait_for_final_state(skein_client, app_id, 180)
    assert str(report.final_status) == "SUCCEEDED"


def test_hdfs_put_get_round_trip_of_10_mb(sandbox, tmp_path):
    data = os.urandom(10 * 2**20)
    (tmp_path / "in.bin").write_bytes(data)
    target = f"/tmp/smoke-{uuid.uuid4().hex}.bin"

    def hdfs(*args):
        proc = subprocess.run(["hdfs", "dfs", *args], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    hdfs("-put", str(tmp_path / "in.bin"), target)
    try:
        assert hdfs("-stat", "%b", target).strip() == str(len(data))
        hdfs("-get", target, str(tmp_path / "out.bin"))
    finally:
        hdfs("-rm", "-skipTrash", target)
    assert (tmp_path / "out.bin").read_bytes() == data


def test_failing_service_ends_failed_and_its_logs_are_retrievable(skein_client, submit):
    marker = f"about-to-fail-{uuid.uuid4().hex[:8]}"
    app_id = submit(_spec("smoke-fail", f"echo {marker}; exit 3"))
    report = wait_for_final_state(skein_client, app_id, 180)
    assert str(report.state) == "FINISHED"
    assert str(report.final_status) == "FAILED"
    logs = application_logs(app_id, timeout=120)
    assert marker in logs
    assert "FAILED: main_0 - Container failed during execution" in logs


def test_yarn_logs_of_a_finished_application_hold_its_stdout(skein_client, submit):
    marker = f"hello-from-yarn-{uuid.uuid4().hex[:8]}"
    app_id = submit(_spec("smoke-logs", f"echo {marker}"))
    report = wait_for_final_state(skein_client, app_id, 180)
    assert str(report.final_status) == "SUCCEEDED"
    logs = application_logs(app_id, timeout=120)
    assert "LogType:main.log" in logs
    stdout = logs.split("LogType:main.log", 1)[1].split("End of LogType", 1)[0]
    assert marker in stdout


def test_logs_of_an_unknown_application_is_a_clear_error(sandbox):
    from skein_jupyter.exceptions import ApplicationError, UsageError

    with pytest.raises(ApplicationError, match="YARN does not know application application_1_0001"):
        application_logs("application_1_0001", timeout=5)
    with pytest.raises(UsageError, match="'app-123' is not a YARN application id"):
        application_logs("app-123")


def test_sandbox_check_runs_a_first_job_and_prints_the_floor(sandbox):
    result = CliRunner().invoke(cli, ["sandbox", "check", "--dir", str(sandbox.config.root), "--json"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    import json

    data = json.loads(result.output)
    assert data["final_status"] == "SUCCEEDED"
    assert data["app_id"].startswith("application_")
    assert 0 < data["seconds_to_finished"] <= data["seconds_to_logs"]
