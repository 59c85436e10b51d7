"""Papermill runs and sweeps on the sandbox's YARN, for real: parameters, outputs, failures,
timeouts, stops, hard kills, lost containers, sweeps, and the example recipes."""
import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import submitted_here, wait_until, write_notebook
from skein_jupyter.applications import wait_for_final_state
from skein_jupyter.cli import cli
from skein_jupyter.config import load_recipe
from skein_jupyter.hdfs import HadoopFS
from skein_jupyter.runs import fetch, follow, kill, start, start_and_follow, status
from skein_jupyter.runtime import keys

pytestmark = pytest.mark.yarn
ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "recipes" / "notebooks" / "report.ipynb"


def _recipe(env_url, notebook, kind="run", **flags):
    recipe, _ = load_recipe(kind=kind, environ={}, flags={
        "environment": env_url, "resources.memory": "512 MiB", "run.notebook": str(notebook), **flags})
    return recipe


def _notebook_on_cluster(path):
    return json.loads(HadoopFS().cat(path))


def _outputs(cell):
    """The text of a cell's outputs: stream text, results and error names."""
    parts = []
    for out in cell.get("outputs", []):
        text = out.get("text") or out.get("data", {}).get("text/plain") or out.get("ename") or ""
        parts.append("".join(text) if isinstance(text, list) else text)
    return "\n".join(parts)


def _source(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


@pytest.fixture(scope="module")
def notebooks(tmp_path_factory):
    base = tmp_path_factory.mktemp("notebooks")
    return {
        "failing": write_notebook(base / "failing.ipynb", [
            ("divisor = 0", ["parameters"]), "print('first cell ran', flush=True)",
            "ratio = 1 / divisor", "print('after the failure')"]),
        "sleepy": write_notebook(base / "sleepy.ipynb", [
            ("seconds = 600", ["parameters"]), "print('before', flush=True)",
            "import time\nprint('sleeping', flush=True)\ntime.sleep(seconds)", "print('never')"]),
        "sweepable": write_notebook(base / "sweepable.ipynb", [
            ("alpha = 1\nn = 1\nfail = False", ["parameters"]),
            # A fresh kernel per set, even in a kernel started ahead: nothing of another set is here.
            "import os\nassert 'seen' not in globals() and 'SJ_LEAK' not in os.environ, 'another set leaked'\n"
            "seen = 1\nos.environ['SJ_LEAK'] = '1'",
            "total = sum(alpha * i for i in range(n))\nprint(f'total={total}')",
            "if fail:\n    raise ValueError(f'set with alpha={alpha} fails on purpose')"]),
        "no_parameters": write_notebook(base / "plain.ipynb", ["alpha = 1", "print(alpha)"]),
    }


def _wait_for_cell(skein_client, app_id, cell, timeout=300):
    """Wait until set 0 runs ``cell`` (index in the output notebook); returns its progress record."""
    def running():
        report = skein_client.application_report(app_id)
        assert str(report.state) not in ("FINISHED", "FAILED", "KILLED"), f"{app_id} ended: {report.diagnostics}"
        if str(report.state) != "RUNNING":
            return None
        value = skein_client.connect(app_id, wait=False).kv.get(keys.RUN_PROGRESS + "0")
        progress = json.loads(value) if value else {}
        return progress if progress.get("cell") == cell else None
    return wait_until(running, timeout, f"{app_id} to run cell {cell}", poll=0.5)


# ----------------------------------------------------------------- a run, start to end

@pytest.fixture(scope="module")
def report_run(uploaded_venv, skein_client):
    recipe = _recipe(uploaded_venv.url, REPORT, **{"run.parameters": {"alpha": 2, "n": 5, "label": "tested"},
                                                   "run.html": True})
    submission, outcome = start_and_follow(recipe, skein_client)
    SUBMISSIONS[submission.app_id] = submission
    return submission.app_id, outcome


SUBMISSIONS = {}


@pytest.fixture
def submission_of_report_run(report_run):
    return SUBMISSIONS[report_run[0]]


def test_parameters_reach_the_notebook_and_html_is_written(report_run, submission_of_report_run):
    app_id, outcome = report_run
    assert outcome.status == "succeeded", outcome
    runtime = submission_of_report_run.spec.services["papermill"].files["skein_jupyter_runtime.zip"]
    # The runtime zip came from the user's private cache on the cluster, not uploaded with the app.
    assert runtime.source.startswith("hdfs:///user/") and "/.skein-jupyter/runtime/" in runtime.source
    assert str(runtime.visibility).upper() == "PRIVATE"
    assert (outcome.state, outcome.final_status) == ("FINISHED", "SUCCEEDED")
    result = outcome.results[0]
    assert result["output"].endswith(f"/skein-jupyter/runs/{app_id}/report.ipynb")
    nb = _notebook_on_cluster(result["output"])
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert len(injected) == 1
    assert "alpha = 2" in _source(injected[0]) and 'label = "tested"' in _source(injected[0])
    printed = "\n".join(_outputs(c) for c in nb["cells"])
    assert "tested: total=20" in printed  # 2 * (0+1+2+3+4), computed on YARN
    html = HadoopFS().cat(result["html"])
    assert html.lstrip().lower().startswith("<!doctype html") and "tested: total=20" in html


def test_status_logs_and_fetch_of_a_finished_run(report_run, tmp_path):
    app_id, _ = report_run
    shown = CliRunner().invoke(cli, ["status", app_id, "--json"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.output)
    assert data["status"] == "succeeded" and data["results"][0]["parameters"] == {}
    logs = CliRunner().invoke(cli, ["logs", app_id, "--type", "papermill.log"])
    assert logs.exit_code == 0, logs.output
    assert "set 0 (attempt 1): parameters" in logs.output and "set 0: succeeded" in logs.output
    fetched = CliRunner().invoke(cli, ["fetch", app_id, str(tmp_path / "out")])
    assert fetched.exit_code == 0, fetched.output
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["report.html", "report.ipynb", "result.json"]
    assert json.loads((tmp_path / "out" / "result.json").read_text())["summary"]["status"] == "succeeded"


def test_failing_cell_fails_the_run_and_keeps_what_ran(uploaded_venv, notebooks, skein_client):
    proc = subprocess.run([sys.executable, "-m", "skein_jupyter", "run", str(notebooks["failing"]),
                           "--env", uploaded_venv.url, "--memory", "512MiB", "--retries", "1", "-q"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: run application_") and "failed in cell 3 (ZeroDivisionError)" in error
    app_id = error.split()[2]
    report = skein_client.application_report(app_id)
    assert str(report.final_status) == "FAILED"
    # YARN's diagnostics name the exception and cell, never its message (whoever may view the app sees them)
    assert "ZeroDivisionError in cell 3" in report.diagnostics and "division by zero" not in report.diagnostics
    outcome, _ = status(skein_client, app_id)
    result = outcome.results[0]
    assert result["attempt"] == 1  # a failing cell is not retried without retry_failed_cells
    nb = _notebook_on_cluster(result["output"])
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert "first cell ran" in _outputs(code[1])
    assert any(o.get("output_type") == "error" and o["ename"] == "ZeroDivisionError" for o in code[2]["outputs"])
    assert "after the failure" not in json.dumps(nb["cells"][-1].get("outputs"))


def test_whole_run_timeout_stops_the_kernel_and_saves(uploaded_venv, notebooks, skein_client):
    # The clock starts with papermill, before the kernel: 60 s leaves its start (over 10 s on a loaded
    # machine, with another worker's applications beside it) time to reach the 600 s sleep of cell 2.
    recipe = _recipe(uploaded_venv.url, notebooks["sleepy"], **{"run.timeout": "60s"})
    _, outcome = start_and_follow(recipe, skein_client)
    assert outcome.status == "timed_out" and outcome.final_status == "FAILED"
    result = outcome.results[0]
    assert result["ename"] == "RunTimeout" and result["cell"] == 2
    nb = _notebook_on_cluster(result["output"])
    assert "papermill-error-cell-tag" in nb["cells"][0]["metadata"]["tags"]  # the banner
    code = nb["cells"][1:]
    assert "before" in _outputs(code[1])
    assert "sleeping" in _outputs(code[2]) and "RunTimeout" in _outputs(code[2])
    assert code[3]["metadata"]["papermill"]["status"] == "pending" and not code[3]["outputs"]


def test_kill_stops_the_run_and_keeps_its_partial_output(uploaded_venv, notebooks, skein_client):
    submission = start(_recipe(uploaded_venv.url, notebooks["sleepy"]), skein_client)
    _wait_for_cell(skein_client, submission.app_id, 2)
    report = kill(skein_client, submission.app_id)
    assert (str(report.state), str(report.final_status)) == ("FINISHED", "KILLED")
    outcome, _ = status(skein_client, submission.app_id)
    assert outcome.status == "stopped"
    nb = _notebook_on_cluster(outcome.results[0]["output"])
    assert "sleeping" in _outputs(nb["cells"][3]) and "RunStopped" in _outputs(nb["cells"][3])


def test_hard_kill_keeps_the_last_checkpoint(uploaded_venv, notebooks, skein_client):
    recipe = _recipe(uploaded_venv.url, notebooks["sleepy"], **{"run.checkpoint_interval": "2s"})
    submission = start(recipe, skein_client)
    app_id = submission.app_id
    _wait_for_cell(skein_client, app_id, 2)
    output = skein_client.connect(app_id, wait=False).kv[keys.RUN_OUTPUT].decode() + "/sleepy.ipynb"
    fs = HadoopFS()
    # A checkpoint taken after cell 1 printed (an earlier one, before any cell ran, may be there first).
    wait_until(lambda: fs.exists(output) and "before" in _outputs(json.loads(fs.cat(output))["cells"][1]), 120,
               "a checkpoint of the output notebook after cell 1", poll=2)
    skein_client.kill_application(app_id)  # what `yarn application -kill` does: no time to save
    wait_for_final_state(skein_client, app_id, 120)
    nb = _notebook_on_cluster(output)
    assert "before" in _outputs(nb["cells"][1])
    assert nb["cells"][2]["metadata"]["papermill"]["status"] == "running"


def _worker_pids(app_id):
    """Pids of the papermill workers (the container's main process) of an application on this machine."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if b"skein_jupyter_runtime" in cmdline and b"run" in cmdline and \
                f"SKEIN_APPLICATION_ID={app_id}".encode() in environ:
            pids.append(int(entry.name))
    return pids


def test_a_lost_container_is_retried(uploaded_venv, notebooks, skein_client):
    recipe = _recipe(uploaded_venv.url, notebooks["sleepy"], **{"run.retries": 1,
                                                                "run.parameters": {"seconds": 5}})
    submission = start(recipe, skein_client)
    app_id = submission.app_id
    progress = _wait_for_cell(skein_client, app_id, 3)  # the injected parameters shift the sleep to cell 3
    assert progress["attempt"] == 1
    pids = _worker_pids(app_id)
    assert len(pids) == 1, pids
    os.kill(pids[0], signal.SIGKILL)  # the container dies as on a lost node: exit 137, no result
    outcome = follow(skein_client, app_id, timeout=600)
    assert outcome.status == "succeeded", outcome
    assert outcome.results[0]["attempt"] == 2


def test_input_notebook_on_hdfs(uploaded_venv, notebooks, skein_client):
    fs = HadoopFS()
    fs.mkdir("/tmp/skein-jupyter-tests")
    fs.put([notebooks["sweepable"]], "/tmp/skein-jupyter-tests")
    url = "hdfs:///tmp/skein-jupyter-tests/sweepable.ipynb"
    recipe = _recipe(uploaded_venv.url, url, **{"run.parameters": {"alpha": 3, "n": 3}})
    submission, outcome = start_and_follow(recipe, skein_client)
    assert submission.spec.services["papermill"].files["input.ipynb"].source == url
    assert outcome.succeeded, outcome
    assert outcome.results[0]["output"].endswith("/sweepable.ipynb")
    nb = _notebook_on_cluster(outcome.results[0]["output"])
    assert "total=9" in "\n".join(_outputs(c) for c in nb["cells"])


# ----------------------------------------------------------------- sweeps

def test_sweep_of_8_sets_runs_them_all_3_at_a_time(uploaded_venv, notebooks, skein_client, tmp_path):
    sets = [{"alpha": a, "n": 4, "fail": a == 5} for a in range(1, 9)]
    recipe = _recipe(uploaded_venv.url, notebooks["sweepable"], kind="sweep",
                     **{"sweep.parameters": sets, "sweep.parallel": 3})
    submission, outcome = start_and_follow(recipe, skein_client)
    assert submission.spec.services["papermill"].instances == 3
    assert outcome.status == "failed" and outcome.final_status == "FAILED"  # one set failed, the rest ran
    unexpected = [(r["set"], r["ename"], r["evalue"]) for r in outcome.results
                  if r["status"] != "succeeded" and not r["parameters"]["fail"]]
    assert outcome.summary["counts"] == {"succeeded": 7, "failed": 1}, unexpected
    assert [r["set"] for r in outcome.results] == list(range(8))
    for r, params in zip(outcome.results, sets):
        assert r["parameters"] == params
        nb = _notebook_on_cluster(r["output"])
        printed = "\n".join(_outputs(c) for c in nb["cells"])
        assert f"total={params['alpha'] * 6}" in printed
        if params["fail"]:
            assert r["status"] == "failed" and r["ename"] == "ValueError" and "ValueError" in printed
        else:
            assert r["status"] == "succeeded"
    # never more than 3 sets at once
    events = sorted([(r["started"], 1) for r in outcome.results] + [(r["finished"], -1) for r in outcome.results])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert 1 <= peak <= 3
    files = fetch(skein_client, submission.app_id, tmp_path)
    names = sorted(Path(f).name for f in files)
    assert names == sorted([f"sweepable-{i:02d}.ipynb" for i in range(8)] + ["sweep.csv", "sweep.json"])
    table = list(csv.DictReader(io.StringIO((tmp_path / "sweep.csv").read_text())))
    assert [row["status"] for row in table] == ["failed" if s["fail"] else "succeeded" for s in sets]
    assert [json.loads(row["alpha"]) for row in table] == list(range(1, 9))
    assert json.loads((tmp_path / "sweep.json").read_text())["summary"]["sets"] == 8
    # No process per set, no JVM per upload: one engine per container, every output through WebHDFS.
    logs = CliRunner().invoke(cli, ["logs", submission.app_id, "--type", "papermill.log"])
    assert logs.exit_code == 0, logs.output
    assert 1 <= logs.output.count("papermill engine started") <= 3, logs.output[-3000:]
    assert "using hdfs dfs" not in logs.output, logs.output[-3000:]


def test_a_sweep_with_reuse_kernel_runs_a_container_s_sets_in_one_kernel(uploaded_venv, skein_client, tmp_path):
    notebook = write_notebook(tmp_path / "counting.ipynb", [
        ("x = 0", ["parameters"]),
        "import os\ncount = globals().get('count', 0) + 1\nprint(f'pid={os.getpid()} count={count} x={x}')"])
    recipe = _recipe(uploaded_venv.url, notebook, kind="sweep",
                     **{"sweep.parameters": [{"x": i} for i in range(3)], "sweep.parallel": 1,
                        "sweep.reuse_kernel": True})
    submission, outcome = start_and_follow(recipe, skein_client)
    assert outcome.status == "succeeded", [(r["set"], r["ename"], r["evalue"]) for r in outcome.results]
    printed = [_outputs(_notebook_on_cluster(r["output"])["cells"][-1]).split() for r in outcome.results]
    assert len({pid for pid, _, _ in printed}) == 1, printed  # one kernel for the container's three sets
    assert [(count, x) for _, count, x in printed] == [("count=1", "x=0"), ("count=2", "x=1"), ("count=3", "x=2")]


# ----------------------------------------------------------------- bad input: refused before submitting

def _apps(skein_client):
    """What this worker submitted (others submit meanwhile: the cluster's list cannot tell)."""
    return submitted_here()


def test_bad_runs_are_refused_before_submitting(uploaded_venv, notebooks, skein_client, tmp_path):
    not_a_notebook = tmp_path / "data.json.ipynb"
    not_a_notebook.write_text('{"rows": [1, 2, 3]}')
    text_file = tmp_path / "notes.txt"
    text_file.write_text("hello")
    HadoopFS().put([text_file], "/tmp/")
    empty_sweep = tmp_path / "sets.yaml"
    empty_sweep.write_text("[]\n")
    env = ["--env", uploaded_venv.url]
    cases = [
        ([str(tmp_path / "missing.ipynb"), *env], "missing.ipynb does not exist"),
        (["hdfs:///tmp/no-such-notebook.ipynb", *env], "hdfs:///tmp/no-such-notebook.ipynb does not exist on the "
                                                       "cluster"),
        (["hdfs:///tmp/notes.txt", *env], "is not a notebook (.ipynb) or a recipe (.yaml)"),
        ([str(text_file), *env], "is not a notebook (.ipynb) or a recipe (.yaml)"),
        ([str(not_a_notebook), *env], "is not a Jupyter notebook (nbformat 4 JSON)"),
        ([str(notebooks["no_parameters"]), *env, "-p", "alpha", "2"], "has no cell tagged 'parameters'"),
        ([str(REPORT), *env, "--output", "/tmp/notes.txt/out"], "run.output: cannot create /tmp/notes.txt/out"),
        ([str(REPORT), *env, "--kernel", "julia-1.10"], "the environment has no kernel 'julia-1.10' (it has "
                                                        "analytics, python3)"),
        ([str(REPORT), *env, "--parallel", "2"], "--parallel needs --sweep FILE"),
        ([str(REPORT), *env, "--sweep", str(empty_sweep)], "no parameter sets; give sweep.parameters"),
        ([str(REPORT), *env, "-y", "alpha: [1"], "-y 'alpha: [1' is not valid YAML"),
        ([str(REPORT), *env, "--timeout", "soon"], "run.timeout (from command line)"),
    ]
    before = _apps(skein_client)
    for args, message in cases:
        result = CliRunner().invoke(cli, ["run", *args, "-q"])
        assert result.exit_code == 2, (args, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], (args, result.output)
    assert _apps(skein_client) == before  # nothing was submitted
    assert not HadoopFS().exists("/tmp/notes.txt/out")


def test_a_bad_output_is_refused_before_the_environment_is_uploaded(packed_venv, skein_client, tmp_path, capsys):
    blocker = tmp_path / "blocker.txt"
    blocker.write_text("a file where the output directory would go")
    HadoopFS().put([blocker], "/tmp/")
    before = _apps(skein_client)
    started = time.monotonic()
    # A local archive: a launch would upload it (or find it uploaded) while preparing the environment.
    result = CliRunner().invoke(cli, ["run", str(REPORT), "--env", str(packed_venv),
                                      "--output", "/tmp/blocker.txt/{app_id}"])
    with capsys.disabled():
        print(f"\nrun -> refused for a bad output (nothing uploaded): {time.monotonic() - started:.2f}s")
    assert result.exit_code == 2, result.output
    assert "Error: run.output: cannot create /tmp/blocker.txt" in result.output
    assert "preparing environment" not in result.output and "uploading" not in result.output, result.output
    assert _apps(skein_client) == before


# ----------------------------------------------------------------- the job contract

SECRET_PARAMETER = "sk-live-7f3a9c1e5b2d"
#: An environment value a shell would mangle: it must reach the kernel exactly as written.
SECRET_ENV = 'pw-$HOME-`id`-"dq"-\'sq\'-back\\slash\nsecond line'


def _sha(text):
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def _launch_scripts(app_id):
    """The launch_container.sh files of a running application under the sandbox's NodeManager dirs."""
    root = Path(os.environ.get("SKEIN_JUPYTER_SANDBOX_DIR") or Path.home() / ".local/share/skein-jupyter/sandbox")
    return [p for p in root.rglob("launch_container.sh") if app_id in str(p)]


def test_parameters_and_env_values_stay_out_of_launch_scripts_and_logs(uploaded_venv, skein_client, tmp_path,
                                                                       capsys):
    notebook = write_notebook(tmp_path / "secret.ipynb", [
        ("api_key = ''\nseconds = 0", ["parameters"]),
        "import hashlib, os, time\n"
        "print('env', hashlib.sha256(os.environ['SECRET_ENV'].encode()).hexdigest())\n"
        "print('key', hashlib.sha256(api_key.encode()).hexdigest(), flush=True)",
        "time.sleep(seconds)"])
    import yaml

    # Through a recipe file, as a user writes one: the parser must take the value exactly as written.
    recipe_file = tmp_path / "secret.yaml"
    recipe_file.write_text(yaml.safe_dump({
        "kind": "run", "environment": uploaded_venv.url, "resources": {"memory": "512 MiB"},
        "env": {"SECRET_ENV": SECRET_ENV},
        "run": {"notebook": str(notebook), "parameters": {"api_key": SECRET_PARAMETER, "seconds": 20}}}))
    recipe, _ = load_recipe(recipe_file, environ={}, config_path=tmp_path / "no-config.yaml")
    assert recipe.env == {"SECRET_ENV": SECRET_ENV}
    started = time.monotonic()
    submission = start(recipe, skein_client)
    with capsys.disabled():  # the measure the issue asks for: checks, job file, submission
        print(f"\nrun -> submitted (environment already uploaded): {time.monotonic() - started:.2f}s")
    app_id = submission.app_id
    assert not Path(submission.spec.services["papermill"].files["job.json"].source[7:]).exists()
    _wait_for_cell(skein_client, app_id, 3)
    scripts = _launch_scripts(app_id)
    assert scripts, "no launch_container.sh of the running application found"
    for script in scripts:
        text = script.read_text(errors="replace")
        assert "SKEIN_JUPYTER_JOB" not in text and SECRET_PARAMETER not in text and "pw-$HOME" not in text
    outcome = follow(skein_client, app_id, timeout=600)
    assert outcome.succeeded, outcome
    printed = "\n".join(_outputs(c) for c in _notebook_on_cluster(outcome.results[0]["output"])["cells"])
    assert f"env {_sha(SECRET_ENV)}" in printed  # exactly as written: $, backticks, quotes, \\, newline
    assert f"key {_sha(SECRET_PARAMETER)}" in printed
    from skein_jupyter.applications import application_logs

    logs = application_logs(app_id, timeout=120)
    assert "launch_container.sh" in logs and "skein-jupyter runtime:" in logs  # the logs are there...
    assert "parameters api_key, seconds" in logs and "environment variables SECRET_ENV" in logs
    for secret in (SECRET_PARAMETER, "pw-$HOME", "second line"):  # ...the values are not
        assert secret not in logs


def test_a_stop_before_the_first_set_ends_killed_with_a_summary(uploaded_venv, notebooks, skein_client):
    recipe = _recipe(uploaded_venv.url, notebooks["sweepable"], **{"run.checkpoint_interval": 0})
    submission = start(recipe, skein_client)
    app_id = submission.app_id
    wait_until(lambda: str(skein_client.application_report(app_id).state) == "RUNNING", 300, "RUNNING")
    report = kill(skein_client, app_id)  # the worker's container is still starting
    assert (str(report.state), str(report.final_status)) == ("FINISHED", "KILLED"), report.diagnostics
    outcome, _ = status(skein_client, app_id)
    assert outcome.summary is not None and outcome.status == "stopped", outcome
    assert outcome.results[0]["status"] == "cancelled"


def test_checkpoint_interval_0_runs_and_saves_at_the_end(uploaded_venv, notebooks, skein_client):
    recipe = _recipe(uploaded_venv.url, notebooks["sweepable"], **{"run.checkpoint_interval": 0,
                                                                  "run.parameters": {"alpha": 2, "n": 3}})
    _, outcome = start_and_follow(recipe, skein_client)
    assert outcome.succeeded, outcome
    assert "total=6" in "\n".join(_outputs(c) for c in _notebook_on_cluster(outcome.results[0]["output"])["cells"])


def test_a_sweep_of_10000_sets_starts_runs_sets_and_stops(uploaded_venv, notebooks, skein_client):
    from skein_jupyter.runtime.job import to_json
    from skein_jupyter.spec import job_from_recipe

    grid = {"alpha": list(range(100)), "n": list(range(1, 101))}
    recipe = _recipe(uploaded_venv.url, notebooks["sweepable"], kind="sweep",
                     **{"sweep.grid": grid, "sweep.parallel": 2, "run.checkpoint_interval": 0})
    print(f"\njob.json of 10,000 sets: {len(to_json(job_from_recipe(recipe, 'u'))) / 1024:.0f} KiB")
    submission = start(recipe, skein_client)
    app_id = submission.app_id

    def done_sets():
        report = skein_client.application_report(app_id)
        assert str(report.state) not in ("FINISHED", "FAILED", "KILLED"), report.diagnostics
        if str(report.state) != "RUNNING":
            return None
        store = skein_client.connect(app_id, wait=False).kv
        results = store.get_prefix(keys.RUN_RESULT)
        return results if len(results) >= 3 else None
    wait_until(done_sets, 600, "3 sets of 10,000 done", poll=2)
    assert skein_client.connect(app_id, wait=False).kv[keys.RUN_SETS] == b"10000"
    report = kill(skein_client, app_id, timeout=300)
    assert (str(report.state), str(report.final_status)) == ("FINISHED", "KILLED"), report.diagnostics
    outcome, _ = status(skein_client, app_id)
    counts = outcome.summary["counts"]
    assert outcome.status == "stopped" and outcome.summary["sets"] == 10000, outcome.summary
    assert counts.get("succeeded", 0) >= 3 and counts["cancelled"] >= 9000, counts
    first = next(r for r in outcome.results if r["status"] == "succeeded")
    assert first["output"].endswith(".ipynb") and "total=" in "\n".join(
        _outputs(c) for c in _notebook_on_cluster(first["output"])["cells"])


# ----------------------------------------------------------------- pure logic, no cluster

def test_annotate_marks_the_interrupted_cell(tmp_path):
    from skein_jupyter.runtime.outputs import annotate

    path = write_notebook(tmp_path / "nb.ipynb", ["a = 1", "b = 2", "c = 3"])
    nb = json.loads(path.read_text())
    for index, state in enumerate(["completed", "completed", "completed"]):
        nb["cells"][index]["metadata"]["papermill"] = {"status": state, "start_time": "t" if index < 2 else None}
    path.write_text(json.dumps(nb))
    assert annotate(path, "timed_out", "timeout of 5s")  # the last cell started: the second
    nb = json.loads(path.read_text())
    assert nb["cells"][0]["cell_type"] == "markdown" and "timeout of 5s" in nb["cells"][0]["source"][0]
    assert nb["cells"][2]["metadata"]["papermill"]["status"] == "failed"
    assert nb["cells"][2]["outputs"][-1]["ename"] == "RunTimeout"
    assert nb["cells"][3]["metadata"]["papermill"]["status"] == "pending"
    assert nb["metadata"]["papermill"]["exception"] is True
