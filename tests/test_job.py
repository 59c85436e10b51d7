"""The job contract: built from an allow-list of recipe fields, one encoder/decoder, typed on decode. No cluster."""
import dataclasses
import json
import os
import stat
from pathlib import Path

import pytest

from skein_jupyter.config import load_recipe
from skein_jupyter.exceptions import UsageError
from skein_jupyter.recipe import build
from skein_jupyter.runtime.job import Job, JobError, NotebookJob, RunJob, from_json, read_job, to_json
from skein_jupyter.spec import JOB_FILE, SpecContext, build_spec, discard_job_file, job_from_recipe

ROOT = Path(__file__).resolve().parent.parent
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))
NOTEBOOK = str(ROOT / "recipes" / "notebooks" / "report.ipynb")


def recipe(**raw):
    return build({"environment": "hdfs:///envs/a.tar.gz", **raw})


@pytest.mark.parametrize("recipe_path", RECIPES, ids=[p.stem for p in RECIPES])
def test_every_example_job_round_trips(recipe_path, tmp_path):
    loaded, _ = load_recipe(recipe_path, environ={}, config_path=tmp_path / "none.yaml")
    job = job_from_recipe(loaded, "alice")
    assert from_json(to_json(job)) == job


def test_a_sweep_ships_every_set_and_the_run_fields_the_runtime_reads():
    job = job_from_recipe(recipe(kind="sweep", run={"notebook": NOTEBOOK, "parameters": {"label": "x"},
                                                    "checkpoint_interval": 0, "retry_failed_cells": True},
                                 sweep={"grid": {"a": [1, 2], "b": ["u", "v", "w"]}}), "bob")
    assert job.kind == "sweep" and job.user == "bob" and job.n_sets == 6
    assert job.run.notebook == "report.ipynb" and job.run.input == "input.ipynb"
    assert job.run.checkpoint_interval == 0 and job.run.retry_failed_cells and job.run.share == "private"
    assert job.parameters(5) == {"label": "x", "a": 2, "b": "w"}
    assert job.notebook is None and not job.run.reuse_kernel  # a fresh kernel per set unless asked


def test_reuse_kernel_is_a_sweep_s_opt_in():
    swept = job_from_recipe(recipe(kind="sweep", run={"notebook": NOTEBOOK},
                                   sweep={"parameters": [{"a": 1}], "reuse_kernel": True}), "bob")
    assert swept.run.reuse_kernel and from_json(to_json(swept)) == swept
    with pytest.raises(UsageError, match="sweep.reuse_kernel"):
        recipe(kind="sweep", run={"notebook": NOTEBOOK}, sweep={"parameters": [{"a": 1}], "reuse_kernel": "often"})
    with pytest.raises(UsageError, match=r"sweep.reuse_kernel \(.*\): not with run.papermill_options "
                                         r"request_save_on_cell_execute_x, "):
        recipe(kind="sweep", run={"notebook": NOTEBOOK, "papermill_options": {"request_save_on_cell_execute_x": 1}},
               sweep={"parameters": [{"a": 1}], "reuse_kernel": True})
    recipe(kind="sweep", run={"notebook": NOTEBOOK, "engine": "nbclient"},  # papermill's default, by name
           sweep={"parameters": [{"a": 1}], "reuse_kernel": True})
    with pytest.raises(UsageError, match="not with run.engine custom"):
        recipe(kind="sweep", run={"notebook": NOTEBOOK, "engine": "custom"},
               sweep={"parameters": [{"a": 1}], "reuse_kernel": True})


def test_a_sweep_file_may_be_a_sweep_section_with_reuse_kernel(tmp_path):
    from skein_jupyter.cli.run import sweep_settings

    path = tmp_path / "sets.yaml"
    path.write_text("parameters: [{a: 1}]\nreuse_kernel: true\n")
    assert sweep_settings(str(path)) == {"sweep.parameters": [{"a": 1}], "sweep.reuse_kernel": True}
    path.write_text("sweep:\n  grid: {a: [1, 2]}\n")  # a recipe's section, key and all
    assert sweep_settings(str(path)) == {"sweep.grid": {"a": [1, 2]}}
    path.write_text("parameters: [{a: 1}]\nparalel: 2\n")
    with pytest.raises(UsageError, match=r"'paralel' \(did you mean 'parallel'\?\) not a key of a sweep: section"):
        sweep_settings(str(path))
    path.write_text("kind: run\nrun: {notebook: nb.ipynb}\nsweep: {grid: {a: [1]}}\n")
    with pytest.raises(UsageError, match="is a whole recipe; run it with `skein-jupyter run "):
        sweep_settings(str(path))
    with pytest.raises(UsageError, match=r"sweep.grid \(.*\): 'b' is not given a non-empty list of values; write "
                                         r"`b: \[value, value\]`"):
        recipe(kind="sweep", run={"notebook": NOTEBOOK}, sweep={"grid": {"a": [1], "b": []}})


def test_only_allow_listed_fields_ship():
    """Queue, ACLs, files, Kerberos, tags, resources: the client's business, not in the job."""
    job = job_from_recipe(recipe(kind="notebook", queue="q", tags=["t"], acls={"view_users": ["eve"]},
                                 kerberos={"keytab": "/k", "principal": "p@R"}), "alice")
    data = json.loads(to_json(job))
    assert set(data) == {"kind", "name", "user", "env", "notebook", "run", "notify", "flow", "kernel",
                         "format"}
    assert set(data["notebook"]) == {f.name for f in dataclasses.fields(NotebookJob)}
    text = to_json(job)
    for leaked in ("eve", "/k", "p@R", '"q"'):
        assert leaked not in text


def test_env_values_ship_exactly_as_written():
    value = 'a "quoted" $HOME `id` \\back\nnew line \'single\''
    job = Job(kind="notebook", name="n", user="u", env={"TRICKY": value}, notebook=NotebookJob())
    assert from_json(to_json(job)).env["TRICKY"] == value


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(kind="dag"), "kind: 'dag' is not one of"),
    (lambda d: d.update(format=2), "format: 2 is not 1"),
    (lambda d: d.update(surprise=1), "surprise: not a field"),
    (lambda d: d["run"].update(timeout="1h"), "run.timeout: str is not int"),
    (lambda d: d["run"].update(html=1), "run.html: int is not bool"),
    (lambda d: d["run"].update(retries=True), "run.retries: bool is not int"),
    (lambda d: d["run"].update(sets={}), "run.sets: dict is not a list"),
    (lambda d: d["run"].update(sets=[1]), "run.sets[0]: int is not an object"),
    (lambda d: d["run"].update(sets=[]), "run.sets: no parameter sets"),
    (lambda d: d["run"].pop("notebook"), "run.notebook: missing"),
    (lambda d: d["run"].update(share="world"), "run.share: 'world' is not one of"),
    (lambda d: d.update(env={"SECRET": 42}), "env.SECRET: int is not str"),
    (lambda d: d.update(run=None), "run: missing for a run job"),
])
def test_decode_refuses_a_wrong_job_naming_the_field(change, message):
    data = json.loads(to_json(Job(kind="run", name="n", user="u", run=RunJob(notebook="nb.ipynb"))))
    change(data)
    with pytest.raises(JobError, match=message.replace("[", r"\[").replace("]", r"\]")):
        from_json(json.dumps(data))


def test_decode_errors_never_show_a_value():
    data = json.loads(to_json(Job(kind="notebook", name="n", user="u", notebook=NotebookJob())))
    data["env"] = {"TOKEN": ["s3cr3t-value"]}
    with pytest.raises(JobError) as info:
        from_json(json.dumps(data))
    assert "s3cr3t" not in str(info.value)


def test_build_spec_ships_the_job_as_a_private_file_and_discard_removes_it(tmp_path):
    spec = build_spec(recipe(kind="run", env={"PASSWORD": "hunter2"},
                             run={"notebook": NOTEBOOK, "parameters": {"api_key": "sk-123"}}),
                      SpecContext.example())
    service = spec.services["papermill"]
    path = service.files[JOB_FILE].source[len("file://"):]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert read_job(path).run.parameters == {"api_key": "sk-123"} and read_job(path).env == {"PASSWORD": "hunter2"}
    text = json.dumps(spec.to_dict())
    assert "sk-123" not in text and "hunter2" not in text and set(service.env) == {"PYTHONPATH"}
    discard_job_file(spec)
    assert not os.path.exists(path)


def test_a_refused_recipe_leaves_no_job_file(tmp_path, monkeypatch):
    import tempfile

    from skein_jupyter.exceptions import UsageError

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    no_environment = build({"kind": "run", "run": {"notebook": NOTEBOOK}})
    with pytest.raises(UsageError, match="environment: missing"):
        build_spec(no_environment, SpecContext(user="u", runtime="r.zip"))
    assert list(tmp_path.iterdir()) == []


def test_job_size_of_1_1000_and_10000_sets(capsys):
    """The measure the issue asks for; also ``python -m bench.job_size``."""
    import sys

    sys.path.insert(0, str(ROOT))
    from bench.job_size import sizes

    rows = sizes()
    with capsys.disabled():
        print("\njob.json size: " + ", ".join(f"{n} sets {size / 1024:.1f} KiB" for n, size, _, _ in rows))
    assert rows[-1][1] < 1024 * 1024  # 10,000 sets: well under a MiB, in a file, not an environment variable
