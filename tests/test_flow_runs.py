"""Flows on the sandbox's YARN, for real: a diamond with a retry and a recorded value, failure policies
(continue and stop) in one flow, and `kill` of a running flow. Each flow is one application."""
import json
import re
import time
import uuid

import pytest
from click.testing import CliRunner

from conftest import wait_until, write_notebook
from skein_jupyter.cli import cli
from skein_jupyter.config import load_recipe
from skein_jupyter.hdfs import HadoopFS
from skein_jupyter.runs import follow, kill, start
from skein_jupyter.runtime import keys

pytestmark = pytest.mark.yarn

RECORD = "import json, os\njson.dump({values}, open(os.environ['SKEIN_JUPYTER_RECORD'], 'w'))"


@pytest.fixture(scope="module")
def notebooks(tmp_path_factory):
    base = tmp_path_factory.mktemp("flow-notebooks")
    return {
        "record": write_notebook(base / "record.ipynb", [
            ("rows = 42", ["parameters"]), RECORD.format(values="{'rows': rows, 'label': 'from-a'}")]),
        # Fails on its first attempt only: the attempt number is in the environment.
        "flaky": write_notebook(base / "flaky.ipynb", [
            "import os\nattempt = int(os.environ['SKEIN_JUPYTER_ATTEMPT'])\nprint(f'attempt {attempt}')",
            "assert attempt > 1, 'fails on the first attempt on purpose'"]),
        "use": write_notebook(base / "use.ipynb", [
            ("rows = 0\nlabel = ''", ["parameters"]), "print(f'rows={rows} label={label}', flush=True)"]),
        "fail": write_notebook(base / "fail.ipynb", ["raise ValueError('this step fails on purpose')"]),
        "ok": write_notebook(base / "ok.ipynb", ["print('ok', flush=True)"]),
        "sleepy": write_notebook(base / "sleepy.ipynb", [
            "print('before the sleep', flush=True)", "import time\ntime.sleep(600)", "print('never')"]),
    }


def _flow(tmp_path, env_url, steps, parallel=2, name=None):
    """A flow recipe file and its model; every step's notebook is given as a path."""
    import yaml

    name = name or f"flowtest-{uuid.uuid4().hex[:8]}"
    data = {"kind": "flow", "name": name, "environment": env_url, "resources": {"memory": "512 MiB"},
            "flow": {"parallel": parallel, "steps": steps}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))   # the steps' order is the recipe's
    recipe, _ = load_recipe(path, environ={}, config_path=tmp_path / "none.yaml")
    return path, recipe


def _run(recipe, skein_client, submitted):
    started = time.monotonic()
    app_id = start(recipe, skein_client).app_id
    submitted.append(app_id)
    outcome = follow(skein_client, app_id, timeout=900)
    print(f"flow {app_id}: {outcome.status} in {time.monotonic() - started:.1f}s")
    return app_id, outcome


@pytest.fixture
def submitted(skein_client):
    """Application ids to kill if a test leaves them running."""
    ids = []
    yield ids
    from skein_jupyter.launch import kill_quietly

    for app_id in ids:
        kill_quietly(skein_client, app_id)


def _steps(outcome):
    return {row["step"]: row for row in outcome.results}


def _printed(path):
    nb = json.loads(HadoopFS().cat(path))
    return "\n".join("".join(o.get("text") or "") for c in nb["cells"] for o in c.get("outputs", []))


def test_a_diamond_retries_a_step_and_passes_a_recorded_value(uploaded_venv, skein_client, submitted, notebooks,
                                                               tmp_path):
    path, recipe = _flow(tmp_path, uploaded_venv.url, {
        "a": {"notebook": str(notebooks["record"]), "parameters": {"rows": 7}},
        "b": {"notebook": str(notebooks["flaky"]), "depends_on": ["a"], "retries": 1, "retry_interval": "1s"},
        "c": {"notebook": str(notebooks["ok"]), "depends_on": ["a"]},
        "d": {"notebook": str(notebooks["use"]), "depends_on": ["b", "c"],
              "inputs": {"rows": "a.rows", "label": "a.label"}},
    })
    app_id, outcome = _run(recipe, skein_client, submitted)
    steps = _steps(outcome)
    assert outcome.status == "succeeded", outcome
    assert (outcome.state, outcome.final_status) == ("FINISHED", "SUCCEEDED")
    assert {name: (row["status"], row["attempts"]) for name, row in steps.items()} == {
        "a": ("succeeded", 1), "b": ("succeeded", 2), "c": ("succeeded", 1), "d": ("succeeded", 1)}
    assert steps["a"]["values"] == {"rows": 7, "label": "from-a"}
    assert steps["d"]["output"].endswith(f"/{app_id}/d/use.ipynb")
    assert "rows=7 label=from-a" in _printed(steps["d"]["output"])
    assert "attempt 2" in _printed(steps["b"]["output"])
    # status, logs and fetch know flows
    shown = CliRunner().invoke(cli, ["status", app_id, "--json"])
    assert shown.exit_code == 0, shown.output
    assert [r["step"] for r in json.loads(shown.output)["results"]] == ["a", "b", "c", "d"]
    table = CliRunner().invoke(cli, ["status", app_id])
    assert "STEP" in table.output and "b                succeeded         2" in table.output, table.output
    logs = CliRunner().invoke(cli, ["logs", app_id, "--type", "step-b.log"])
    assert logs.exit_code == 0 and "step b (attempt 2)" in logs.output, logs.output
    fetched = CliRunner().invoke(cli, ["fetch", app_id, str(tmp_path / "out")])
    assert fetched.exit_code == 0, fetched.output
    assert (tmp_path / "out" / "flow.json").is_file() and (tmp_path / "out" / "d" / "use.ipynb").is_file()


def test_continue_runs_independent_steps_and_stop_stops_the_rest(uploaded_venv, skein_client, submitted,
                                                                 notebooks, tmp_path):
    # parallel 2: fails_continue and sleeper start first; ok can only start once fails_continue has failed.
    path, recipe = _flow(tmp_path, uploaded_venv.url, {
        "fails_continue": {"notebook": str(notebooks["fail"]), "on_failure": "continue"},
        # A timeout bounds what a broken stop can cost; far above the time the other steps need.
        "sleeper": {"notebook": str(notebooks["sleepy"]), "timeout": "240s"},
        "ok": {"notebook": str(notebooks["ok"])},
        "fails_stop": {"notebook": str(notebooks["fail"]), "depends_on": ["ok"]},
        "skipped": {"notebook": str(notebooks["ok"]), "depends_on": ["fails_continue"]},
        "never": {"notebook": str(notebooks["ok"]), "depends_on": ["sleeper"]},
    })
    # Detached, then followed with a deadline: a flow that never ends fails the test, not the suite.
    started = time.monotonic()
    detached = CliRunner().invoke(cli, ["run", str(path), "--detach", "--json"])
    assert detached.exit_code == 0, detached.output
    app_id = re.search(r"application_\d+_\d+", detached.output).group(0)
    submitted.append(app_id)
    outcome = follow(skein_client, app_id, timeout=600)
    print(f"flow {app_id}: {outcome.status} in {time.monotonic() - started:.1f}s")
    result = CliRunner().invoke(cli, ["status", app_id])
    print(result.output)
    assert result.exit_code == 1, result.output   # a notebook failed
    steps = _steps(outcome)
    assert (outcome.state, outcome.final_status, outcome.status) == ("FINISHED", "FAILED", "failed")
    assert {name: row["status"] for name, row in steps.items()} == {
        "fails_continue": "failed", "sleeper": "stopped", "ok": "succeeded", "fails_stop": "failed",
        "skipped": "skipped", "never": "cancelled"}
    assert steps["ok"]["started"] >= steps["fails_continue"]["finished"]
    assert "before the sleep" in _printed(steps["sleeper"]["output"])   # stopped, its partial output kept
    assert "ValueError" in result.output and "fails_stop" in result.output


def test_kill_of_a_running_flow_keeps_the_partial_output(uploaded_venv, skein_client, submitted, notebooks,
                                                         tmp_path):
    path, recipe = _flow(tmp_path, uploaded_venv.url, {
        "sleeper": {"notebook": str(notebooks["sleepy"]), "timeout": "120s"},
        "after": {"notebook": str(notebooks["ok"]), "depends_on": ["sleeper"]},
    })
    started = time.monotonic()
    app_id = start(recipe, skein_client).app_id
    submitted.append(app_id)

    def sleeping():
        report = skein_client.application_report(app_id)
        assert str(report.state) not in ("FINISHED", "FAILED", "KILLED"), report.diagnostics
        if str(report.state) != "RUNNING":
            return None
        value = skein_client.connect(app_id, wait=False).kv.get(keys.FLOW_PROGRESS + "sleeper")
        return value if value and json.loads(value).get("cell") == 1 else None
    wait_until(sleeping, 300, f"{app_id} to sleep in step sleeper", poll=0.5)
    report = kill(skein_client, app_id)
    print(f"flow {app_id} killed {time.monotonic() - started:.1f}s after submission")
    assert (str(report.state), str(report.final_status)) == ("FINISHED", "KILLED")
    outcome = follow(skein_client, app_id, timeout=60)
    steps = _steps(outcome)
    assert outcome.status == "stopped"
    assert {name: row["status"] for name, row in steps.items()} == {"sleeper": "stopped", "after": "cancelled"}
    assert "before the sleep" in _printed(steps["sleeper"]["output"])
