"""Flows without a cluster: the coordinator's deadlines and end, the step's inputs, the exit code, early checks."""
import pytest
import yaml

from conftest import write_notebook
from skein_jupyter.config import load_recipe
from skein_jupyter.exceptions import ApplicationError, NotebookFailed, UsageError
from skein_jupyter.flows import early_flow_checks
from skein_jupyter.outcome import RunOutcome, outcome_error
from skein_jupyter.runtime.dag import goes_on
from skein_jupyter.runtime.flow import ALLOCATION_TIMEOUT, TIMEOUT_GRACE, deadline
from skein_jupyter.runtime.step import check_inputs, read_record


def test_a_container_never_allocated_or_running_past_its_timeout_has_a_deadline():
    late = ALLOCATION_TIMEOUT + 1
    for state in ("WAITING", "REQUESTED"):
        assert deadline(state, now=late - 2, requested=0, running_since=None, timeout=None, stopping=False) is None
        assert deadline(state, now=late, requested=0, running_since=None, timeout=None,
                        stopping=False) == "not_allocated"
        assert deadline(state, now=1, requested=0, running_since=None, timeout=None, stopping=True) == "stopped"
    over = 100 + 60 + TIMEOUT_GRACE + 1   # RUNNING since 100, timeout 60
    assert deadline("RUNNING", now=over, requested=0, running_since=100, timeout=60, stopping=False) == "timed_out"
    assert deadline("RUNNING", now=over - 2, requested=0, running_since=100, timeout=60, stopping=True) is None
    assert deadline("RUNNING", now=10 ** 6, requested=0, running_since=100, timeout=None, stopping=False) is None


def test_the_flow_waits_only_for_a_container_a_retry_or_a_ready_step():
    graph = {"a": [], "b": ["a"], "c": []}
    stuck = {"a": "failed", "b": "pending", "c": "succeeded"}
    assert not goes_on(graph, stuck, live=False, retrying=False, stopping=False)
    assert goes_on(graph, stuck, live=True, retrying=False, stopping=False)
    assert goes_on(graph, {**stuck, "a": "retrying"}, live=False, retrying=True, stopping=False)
    assert goes_on(graph, {**stuck, "a": "succeeded"}, live=False, retrying=False, stopping=False)
    assert not goes_on(graph, {**stuck, "a": "succeeded"}, live=False, retrying=False, stopping=True)


@pytest.mark.parametrize("raw, message", [
    (None, "not written"), (b"[1]", "not a JSON object"), (b"{", "not JSON"),
    (b'{"n": 1, "m": 2}', "inputs are m, n, not n"), (b"{}", "inputs are none, not n"),
])
def test_a_step_checks_its_inputs(raw, message):
    with pytest.raises(ValueError, match=message):
        check_inputs(raw, ["n"])
    assert check_inputs(b"{}", []) == {}


def test_deeply_nested_recorded_values_are_refused_not_a_crash(tmp_path):
    path = tmp_path / "record.json"
    path.write_text("[" * 20000 + "]" * 20000)
    with pytest.raises(ValueError, match="nested too deeply|not JSON"):
        read_record(str(path))


def _row(step, status, ename=None):
    return {"step": step, "status": status, "ename": ename}


@pytest.mark.parametrize("rows, error", [
    ([_row("a", "failed", "ContainerLost"), _row("b", "stopped", "RunStopped")], ApplicationError),
    ([_row("a", "failed", "NotAllocated"), _row("b", "cancelled")], ApplicationError),
    ([_row("a", "failed", "NotAllocated"), _row("b", "failed", "ValueError")], NotebookFailed),
    ([_row("a", "timed_out", "Timeout")], NotebookFailed),
])
def test_a_flow_is_an_infrastructure_failure_only_when_its_failed_steps_lacked_a_container(rows, error):
    summary = {"status": "failed", "output": "hdfs:///out", "counts": {}}
    outcome = RunOutcome("application_1_0001", "flow", "FINISHED", "FAILED", summary, rows)
    assert type(outcome_error(outcome)) is error


def test_a_bad_flow_is_refused_before_its_output_directory_is_made(tmp_path):
    write_notebook(tmp_path / "untagged.ipynb", ["x = 1"])
    output = tmp_path / "out"
    path = tmp_path / "flow.yaml"
    path.write_text(yaml.safe_dump({"kind": "flow", "environment": "env.tar.gz", "flow": {
        "output": f"file://{output}", "steps": {"a": {"notebook": "untagged.ipynb", "parameters": {"x": 2}}}}}))
    (tmp_path / "env.tar.gz").write_bytes(b"")
    recipe = load_recipe(path, environ={}, config_path=tmp_path / "none.yaml")[0]
    with pytest.raises(UsageError, match="no cell tagged 'parameters'"):
        early_flow_checks(recipe, None)
    assert not output.exists()


def test_parallel_of_a_flow_recipe_is_its_steps_at_a_time_and_max_attempts_is_refused(tmp_path, monkeypatch):
    from skein_jupyter.cli.run import run_recipe

    write_notebook(tmp_path / "nb.ipynb", [("x = 1", ["parameters"])])
    (tmp_path / "env.tar.gz").write_bytes(b"")
    steps = {"a": {"notebook": "nb.ipynb"}}
    (tmp_path / "flow.yaml").write_text(yaml.safe_dump({"kind": "flow", "environment": "env.tar.gz",
                                                        "flow": {"steps": steps}}))
    (tmp_path / "again.yaml").write_text(yaml.safe_dump({"kind": "flow", "environment": "env.tar.gz",
                                                         "max_attempts": 2, "flow": {"steps": steps}}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SKEIN_JUPYTER_CONFIG", str(tmp_path / "none.yaml"))
    assert run_recipe("flow.yaml", parallel=3).flow.parallel == 3
    with pytest.raises(UsageError, match="max_attempts .*a flow runs once"):
        run_recipe("again.yaml")
