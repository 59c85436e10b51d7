"""Flows without a cluster: the graph logic, the recipe's validation (exit 2, nothing written), the job, the spec."""
import json

import pytest
import yaml
from click.testing import CliRunner

from conftest import write_notebook
from skein_jupyter.cli import cli
from skein_jupyter.config import load_recipe
from skein_jupyter.exceptions import UsageError
from skein_jupyter.runtime import dag
from skein_jupyter.runtime.job import JobError, from_json, to_json
from skein_jupyter.runtime.step import MAX_RECORD_BYTES, read_record
from skein_jupyter.spec import JOB_FILE, SpecContext, build_spec

DIAMOND = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}


def test_order_ready_and_downstream_of_a_diamond():
    assert dag.topological_order({"d": ["b", "c"], "c": ["a"], "b": ["a"], "a": []}) == ["a", "c", "b", "d"]
    states = {"a": "pending", "b": "pending", "c": "pending", "d": "pending"}
    assert dag.ready(DIAMOND, states) == ["a"]
    assert dag.ready(DIAMOND, {**states, "a": "succeeded"}) == ["b", "c"]
    assert dag.ready(DIAMOND, {**states, "a": "succeeded", "b": "succeeded", "c": "failed"}) == []
    assert dag.downstream(DIAMOND, ["b"]) == {"d"}
    assert dag.downstream(DIAMOND, ["a"]) == {"b", "c", "d"}
    assert dag.upstream(DIAMOND, "d") == {"a", "b", "c"}


@pytest.mark.parametrize("graph, message", [
    ({"a": ["c"], "b": ["a"], "c": ["b"]}, "a cycle: a -> b -> c -> a"),
    ({"a": ["b"], "b": ["a"], "x": []}, "a cycle: "),
    ({"a": ["a"]}, "step a depends on itself"),
    ({"a": ["ghost"]}, "depends on 'ghost', which is not a step"),
])
def test_bad_graphs_are_named(graph, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        dag.check_graph(graph)


def test_a_two_step_cycle_names_both_steps():
    with pytest.raises(ValueError) as info:
        dag.check_graph({"x": [], "a": ["b"], "b": ["a"]})
    assert "a -> b -> a" in str(info.value) or "b -> a -> b" in str(info.value)


@pytest.fixture
def flow_dir(tmp_path):
    write_notebook(tmp_path / "nb.ipynb", [("x = 1", ["parameters"]), "print(x)"])
    (tmp_path / "env.tar.gz").write_bytes(b"")
    return tmp_path


def _write(flow_dir, steps, **top):
    path = flow_dir / "flow.yaml"
    path.write_text(yaml.safe_dump({"kind": "flow", "environment": "env.tar.gz", "flow": {"steps": steps}, **top}))
    return path


def _load(flow_dir, steps, **top):
    return load_recipe(_write(flow_dir, steps, **top), environ={}, config_path=flow_dir / "none.yaml")[0]


@pytest.mark.parametrize("steps, message", [
    ({"a": {"notebook": "nb.ipynb", "depends_on": ["c"]}, "b": {"notebook": "nb.ipynb", "depends_on": ["a"]},
      "c": {"notebook": "nb.ipynb", "depends_on": ["b"]}}, "cycle: a -> b -> c -> a"),
    ({"a": {"notebook": "nb.ipynb", "depends_on": ["zz"]}}, "depends on 'zz', which is not a step"),
    ({"a": {"notebook": "nb.ipynb"}, "b": {"notebook": "nb.ipynb", "inputs": {"x": "a.rows"}}},
     "'a' is not upstream of step b"),
    ({"a.b": {"notebook": "nb.ipynb"}}, "'a.b' is not a step name"),
    ({"a": {"notebook": "missing.ipynb"}}, "missing.ipynb does not exist"),
    ({"a": {"parameters": {"x": 1}}}, "flow.steps.a.notebook: missing"),
    ({"a": {"notebook": "nb.ipynb", "inputs": {"x": "rows"}}}, "is not STEP.VALUE"),
    ({"a": {"notebook": "nb.ipynb", "on_failure": "retry"}}, "is not one of stop, continue"),
    ({"a": {"notebook": "nb.ipynb", "retry_interval": "soon"}}, "flow.steps.a.retry_interval"),
    ({"a": {"notebook": "nb.ipynb", "colour": "red"}}, "flow.steps.a.colour .*unknown key"),
    ({}, "no steps"),
    ({"a": {"notebook": "nb.ipynb"}, "b": {"notebook": "nb.ipynb", "depends_on": ["a"], "parameters": {"x": 1},
                                             "inputs": {"x": "a.rows"}}}, "x in both parameters and inputs"),
])
def test_bad_flows_exit_2_with_one_error_line_and_write_nothing(flow_dir, steps, message):
    with pytest.raises(UsageError, match=message):
        _load(flow_dir, steps)
    before = sorted(p.name for p in flow_dir.iterdir())
    result = CliRunner().invoke(cli, ["spec", str(flow_dir / "flow.yaml")])
    assert result.exit_code == 2, result.output
    assert result.output.count("Error: ") == 1
    assert sorted(p.name for p in flow_dir.iterdir()) == before


def test_step_fields_default_to_the_recipe_and_the_job_round_trips(flow_dir):
    recipe = _load(flow_dir, {
        "a": {"notebook": "nb.ipynb", "parameters": {"x": 2}},
        "b": {"notebook": "nb.ipynb", "depends_on": ["a"], "inputs": {"x": "a.rows"}, "retries": 2,
              "retry_interval": "5s", "on_failure": "continue", "resources": {"memory": "1 GiB"}, "timeout": "1h"},
    }, resources={"vcores": 2}, env={"TEAM": "data"}, name="nightly")
    spec = build_spec(recipe, SpecContext(user="alice", runtime="/tmp/rt.zip"), job_path=str(flow_dir / JOB_FILE))
    assert sorted(spec.services) == ["flow", "step-a", "step-b"]
    flow, a, b = spec.services["flow"], spec.services["step-a"], spec.services["step-b"]
    assert (flow.instances, a.instances, b.instances) == (1, 0, 0)
    assert (a.allow_failures, flow.allow_failures) == (True, False)
    assert (a.resources.memory, a.resources.vcores, b.resources.memory, b.resources.vcores) == (2048, 2, 1024, 2)
    assert flow.resources.memory == 512 and "input.ipynb" not in flow.files and "input.ipynb" in b.files
    assert {s.files[JOB_FILE].source for s in spec.services.values()} == {f"file://{flow_dir / JOB_FILE}"}
    assert all(set(s.env) == {"PYTHONPATH"} for s in spec.services.values())   # the job travels in job.json only
    job = from_json((flow_dir / JOB_FILE).read_text())
    assert job.kind == "flow" and job.env == {"TEAM": "data"} and job.flow.parallel == 2
    step = job.step("b")
    assert (step.service, step.depends_on, step.inputs, step.retries, step.retry_interval, step.on_failure) == \
        ("step-b", ["a"], {"x": "a.rows"}, 2, 5, "continue")
    assert step.run.timeout == 3600 and job.step("a").run.parameters == {"x": 2}
    assert from_json(to_json(job)) == job


def test_the_job_refuses_a_hand_made_cycle_or_an_input_from_downstream(flow_dir):
    recipe = _load(flow_dir, {"a": {"notebook": "nb.ipynb"}, "b": {"notebook": "nb.ipynb", "depends_on": ["a"]}})
    from skein_jupyter.flows import flow_job

    data = json.loads(to_json(flow_job(recipe, "alice")))
    data["flow"]["steps"][0]["depends_on"] = ["b"]
    with pytest.raises(JobError, match="cycle"):
        from_json(json.dumps(data))
    data["flow"]["steps"][0]["depends_on"] = []
    data["flow"]["steps"][0]["inputs"] = {"x": "b.rows"}
    with pytest.raises(JobError, match="not a value of an upstream step"):
        from_json(json.dumps(data))
    good = json.loads(to_json(flow_job(recipe, "alice")))
    for change, message in [(lambda b: b.update(service="step-x"), "'step-x' is not 'step-b'"),
                            (lambda b: b["run"].update(sets=[{}, {}]), "one parameter set"),
                            (lambda b: b.update(inputs={"x": "a"}), "is not 'step.value'"),
                            (lambda b: b.update(inputs={"x": "a.rows"}, run={**b["run"], "parameters": {"x": 1}}),
                             "x in both parameters and inputs")]:
        data = json.loads(json.dumps(good))
        change(data["flow"]["steps"][1])
        with pytest.raises(JobError, match=message):
            from_json(json.dumps(data))


def test_recorded_values_are_a_small_json_object(tmp_path):
    path = tmp_path / "recorded.json"
    assert read_record(str(path)) == {}
    path.write_text(json.dumps({"rows": 3, "names": ["a"], "nested": {"ok": True}}))
    assert read_record(str(path))["rows"] == 3
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="not an object"):
        read_record(str(path))
    path.write_text("{nope")
    with pytest.raises(ValueError, match="not JSON"):
        read_record(str(path))
    path.write_text(json.dumps({"big": "x" * MAX_RECORD_BYTES}))
    with pytest.raises(ValueError, match="above the limit"):
        read_record(str(path))
