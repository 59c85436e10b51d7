"""The recipe model, its configuration layers and its errors. No cluster."""
import textwrap
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from skein_jupyter.cli import cli
from skein_jupyter.config import load_recipe
from skein_jupyter.environment import EnvironmentKind, EnvironmentRef
from skein_jupyter.exceptions import UsageError
from skein_jupyter.parameters import infer_type, parameters_from_flags
from skein_jupyter.units import format_duration, parse_duration_s, parse_memory_mb

REPORT = Path(__file__).resolve().parent.parent / "recipes" / "notebooks" / "report.ipynb"


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No user config file and no SKEIN_JUPYTER_* variables from the developer's shell."""
    import os

    for name in list(os.environ):
        if name.startswith("SKEIN_JUPYTER_") and not name.startswith("SKEIN_JUPYTER_SANDBOX"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SKEIN_JUPYTER_CONFIG", str(tmp_path / "no-config.yaml"))
    return tmp_path


def write(tmp_path, text, name="recipe.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def spec_error(args):
    result = CliRunner().invoke(cli, ["spec", *map(str, args)])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0][len("Error: "):]


# ----- units

@pytest.mark.parametrize("text, mb", [("2 GiB", 2048), ("512", 512), (512, 512), ("1.5g", 1536),
                                      ("512M", 512), ("1 TiB", 2**20), ("100k", 1)])
def test_memory_sizes(text, mb):
    assert parse_memory_mb(text) == mb


@pytest.mark.parametrize("text", ["lots", "0", 0, -5, "2 GB GB", True, "-1g"])
def test_bad_memory_sizes(text):
    with pytest.raises(ValueError):
        parse_memory_mb(text)


@pytest.mark.parametrize("text", ["soon", "0s", "1h 30", "-5m", False, "5 parsecs"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration_s(text)


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("15m", 900), ("2h", 7200), (30, 30), ("1d", 86400),
                                           ("1h30m", 5400), ("1m 30s", 90)])
def test_durations(text, seconds):
    assert parse_duration_s(text) == seconds
    assert parse_duration_s(format_duration(seconds)) == seconds


# ----- environments

@pytest.mark.parametrize("text, kind", [
    ("analytics", EnvironmentKind.NAME),
    ("hdfs:///apps/envs/a.tar.gz", EnvironmentKind.HDFS),
    ("viewfs://cluster/envs/a.tgz", EnvironmentKind.HDFS),
    ("envs/a.tar.gz", EnvironmentKind.LOCAL),
    ("a.zip", EnvironmentKind.LOCAL),
])
def test_environment_references(text, kind):
    assert EnvironmentRef.parse(text).kind is kind


@pytest.mark.parametrize("text, fragment", [
    ("s3://bucket/a.tar.gz", "unsupported scheme s3://"),
    ("hdfs:///apps/envs/a", "is not an environment archive"),
    ("envs/analytics", "is not an environment archive"),
    ("bad name!", "is not a valid environment name"),
])
def test_malformed_environment_references(text, fragment):
    with pytest.raises(ValueError, match=fragment):
        EnvironmentRef.parse(text)


# ----- papermill parameter flags

def test_parameter_flags_follow_papermill(tmp_path):
    params = write(tmp_path, "alpha: 1\nbeta: from-file\n", "params.yaml")
    merged = parameters_from_flags(files=[params], yamls=["beta: from-yaml\ngamma: [1, 2]"],
                                   typed=[("alpha", "0.5"), ("flag", "True"), ("none", "None")],
                                   raw=[("code", "007")])
    assert merged == {"alpha": 0.5, "beta": "from-yaml", "gamma": [1, 2], "flag": True, "none": None,
                      "code": "007"}
    assert infer_type("12") == 12 and infer_type("x1") == "x1"


@pytest.mark.parametrize("kwargs, fragment", [
    ({"yamls": ["a: [1"]}, "is not valid YAML"),
    ({"yamls": ["- 1\n- 2"]}, "is not a mapping of parameters"),
    ({"files": ["/nonexistent/params.yaml"]}, "parameters file /nonexistent/params.yaml does not exist"),
])
def test_bad_parameter_flags(kwargs, fragment):
    with pytest.raises(UsageError, match=fragment):
        parameters_from_flags(**kwargs)


# ----- layers

def test_layers_in_order_with_sources(isolated, monkeypatch):
    config = write(isolated, """\
        queue: from-config
        resources: {memory: 1 GiB, vcores: 2}
        env: {A: config, B: config}
        notebook: {idle_timeout: 2h}
        run: {kernel: python3}       # for runs only: ignored by a notebook job
        """, "config.yaml")
    monkeypatch.setenv("SKEIN_JUPYTER_CONFIG", str(config))
    monkeypatch.setenv("SKEIN_JUPYTER_RESOURCES_VCORES", "3")
    monkeypatch.setenv("SKEIN_JUPYTER_QUEUE", "from-env")
    recipe_file = write(isolated, """\
        kind: notebook
        queue: from-recipe
        env: {B: recipe}
        """)
    recipe, sources = load_recipe(recipe_file, flags={"resources.memory": "3g", "env": {"C": "flag"}})
    assert recipe.queue == "from-recipe" and sources["queue"] == str(recipe_file)
    assert recipe.resources.memory == 3072 and sources["resources.memory"] == "command line"
    assert recipe.resources.vcores == 3 and sources["resources.vcores"] == "SKEIN_JUPYTER_RESOURCES_VCORES"
    assert recipe.notebook.idle_timeout == 7200 and sources["notebook.idle_timeout"] == str(config)
    assert recipe.env == {"A": "config", "B": "recipe", "C": "flag"}  # mappings merge key by key
    assert "run.kernel" not in sources


def test_config_show_lists_every_field_with_its_source(isolated, monkeypatch):
    monkeypatch.setenv("SKEIN_JUPYTER_QUEUE", "etl")
    result = CliRunner().invoke(cli, ["config", "show", "--kind", "sweep", "--json", "--memory", "3g",
                                      "--set", f"run.notebook={REPORT}", "--set", "sweep.grid={a: [1, 2]}"])
    assert result.exit_code == 0, result.output
    settings = {s["field"]: s for s in yaml.safe_load(result.output)["settings"]}
    assert settings["queue"]["value"] == "etl" and settings["queue"]["source"] == "SKEIN_JUPYTER_QUEUE"
    assert settings["resources.memory"] == {"field": "resources.memory", "value": 3072,
                                            "source": "command line",
                                            "env_var": "SKEIN_JUPYTER_RESOURCES_MEMORY"}
    assert settings["sweep.parallel"]["source"] == "default"
    assert "notebook.frontend" not in settings  # not a field of sweeps


def test_relative_paths_are_from_the_recipe_directory(isolated):
    (isolated / "nb").mkdir()
    (isolated / "nb" / "x.ipynb").write_text(REPORT.read_text())
    recipe, _ = load_recipe(write(isolated, "kind: run\nrun: {notebook: nb/x.ipynb}\n"))
    assert recipe.run.notebook == str(isolated / "nb" / "x.ipynb")


def test_sweep_grid_expands_to_every_combination(isolated):
    recipe, _ = load_recipe(kind="sweep", flags={"run.notebook": str(REPORT),
                                                 "sweep.grid": {"a": [1, 2], "b": ["x", "y", "z"]}})
    assert len(recipe.sweep.sets()) == 6
    assert {"a": 2, "b": "z"} in recipe.sweep.sets()


# ----- bad recipes: one line, exit 2, the field and the fix

BAD_RECIPES = [
    ("kind: notebook\nresources: {memroy: 2g}\n",
     "resources.memroy (from {f}): unknown key (did you mean 'memory'?); known keys here: memory, vcores, gpus"),
    ("kind: notebook\nqueue: [a, b]\n", "queue (from {f}): ['a', 'b'] is not text; quote it"),
    ("kind: notebook\nresources: {memory: 0}\n", "resources.memory (from {f}): 0 is not a positive memory size"),
    ("kind: notebook\nresources: {vcores: -2}\n", "resources.vcores (from {f}): -2 is below 1; use 1 or more"),
    ("kind: notebook\nresources: {vcores: two}\n", "resources.vcores (from {f}): 'two' is not a whole number"),
    ("kind: notebook\nresources: {memory: lots}\n",
     "resources.memory (from {f}): 'lots' is not a memory size; use e.g. 2 GiB, 512 MiB, or a number of MiB"),
    ("kind: notebook\nnotebook: {frontend: jupyterlab}\n",
     "notebook.frontend (from {f}): 'jupyterlab' is not one of lab, notebook, server"),
    ("kind: notebook\nnotebook: {frontend: labb}\n", "is not one of lab, notebook, server (did you mean 'lab'?)"),
    ("kind: notbook\n",
     "kind (from {f}): 'notbook' is not one of notebook, run, sweep, flow, kernel (did you mean 'notebook'?)"),
    ("queue: x\n", "kind: missing; set kind: in the recipe to one of notebook, run, sweep"),
    ("kind: run\nrun: {notebook: missing.ipynb}\n",
     "run.notebook (from {f}): {d}/missing.ipynb does not exist; check the path"),
    ("kind: run\nrun: {notebook: recipe.yaml}\n", "run.notebook (from {f}): {d}/recipe.yaml is not a notebook"),
    ("kind: run\n", "run.notebook: missing; give the input notebook"),
    ("kind: run\nrun: {notebook: hdfs:///n.ipynb, kernel: 'py 3'}\n", "run.kernel (from {f}): 'py 3' is not a kernel name"),
    ("kind: sweep\nrun: {notebook: hdfs:///n.ipynb}\n", "sweep (default): no parameter sets; give sweep.parameters"),
    ("kind: sweep\nrun: {notebook: hdfs:///n.ipynb}\nsweep: {parameters: [], grid: {}}\n", "no parameter sets"),
    ("kind: sweep\nrun: {notebook: hdfs:///n.ipynb}\nsweep: {parameters: [{a: 1}], grid: {a: [1]}}\n",
     "sweep (from {f}): give sweep.parameters (a list of sets) or sweep.grid (every combination), not both"),
    ("kind: sweep\nrun: {notebook: hdfs:///n.ipynb}\nsweep: {grid: {a: []}}\n",
     "sweep.grid (from {f}): 'a' is not given a non-empty list of values; write `a: [value, value]`"),
    ("kind: notebook\nrun: {kernel: python3}\n",
     "run (from {f}): a notebook recipe has no run: section; remove it, or set kind: run"),
    ("kind: notebook\nenvironment: s3://b/e.tar.gz\n", "environment (from {f}): 's3://b/e.tar.gz' has an unsupported"),
    ("kind: notebook\nkerberos: {keytab: /etc/alice.keytab}\n",
     "kerberos.keytab (from {f}): a keytab needs a principal; set kerberos.principal"),
    ("kind: notebook\nnotebook: {idle_timeout: soon}\n",
     "notebook.idle_timeout (from {f}): 'soon' is not a duration; use e.g. 90s, 15m, 2h"),
    ("kind: notebook\nenv: {A: [1]}\n", "env (from {f}): 'A': [1] is not a NAME: text pair"),
    ("- kind: notebook\n", "recipe {f} must be a mapping of `key: value` lines, not a list"),
    ("kind: notebook\nqueue: [unclosed\n", "recipe {f} is not valid YAML at line 3: expected ',' or ']'"),
]


@pytest.mark.parametrize("text, message", BAD_RECIPES, ids=[m[:40] for _, m in BAD_RECIPES])
def test_bad_recipe_is_one_line_naming_the_field_exit_2(isolated, text, message):
    path = write(isolated, text)
    error = spec_error([path, "--env", "hdfs:///e.tar.gz"] if "environment" not in text else [path])
    assert message.format(f=path, d=isolated) in error


@pytest.mark.parametrize("args, message", [
    (["--memory", "-1g"], "resources.memory (from command line): '-1g' is not a memory size"),
    (["--vcores", "0"], "resources.vcores (from command line): 0 is below 1"),
    (["--set", "resources.memory=1g", "--memory", "2g"],
     "resources.memory is given twice on the command line (--set resources.memory and its own flag); give it once"),
    (["--set", "notebook.idletimeout=1h"], "unknown field (did you mean notebook.idle_timeout?)"),
    (["--env", "bad name"], "environment (from command line): 'bad name' is not a valid environment name"),
])
def test_bad_flags_exit_2(isolated, args, message):
    path = write(isolated, "kind: notebook\nenvironment: hdfs:///e.tar.gz\n")
    assert message in spec_error([path, *args])


def test_missing_recipe_and_missing_environment(isolated):
    assert spec_error([isolated / "nope.yaml"]) == f"recipe {isolated / 'nope.yaml'} does not exist; check the path"
    path = write(isolated, "kind: notebook\n")
    assert spec_error([path]).startswith("environment: missing; give --env")


def test_spec_prints_a_spec_without_secrets(isolated):
    path = write(isolated, "kind: notebook\nenvironment: hdfs:///apps/skein-jupyter/environments/a.tar.gz\n")
    result = CliRunner().invoke(cli, ["spec", str(path), "--memory", "3g", "--tag", "x"])
    assert result.exit_code == 0, result.output
    spec = yaml.safe_load(result.output)
    service = spec["services"]["jupyter"]
    assert service["resources"]["memory"] == 3072
    assert service["files"]["environment"]["source"] == "hdfs:///apps/skein-jupyter/environments/a.tar.gz"
    kept = sorted(t for t in spec["tags"] if not t.startswith(("skein-jupyter-workspace-", "skein-jupyter-inside-")))
    assert kept == ["skein-jupyter", "skein-jupyter-notebook", "x"]
    assert "token" not in result.output.lower()


def test_notebook_start_dry_run_prints_the_spec_and_submits_nothing(isolated, monkeypatch):
    import tempfile

    temporary = isolated / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    monkeypatch.chdir(isolated)
    result = CliRunner().invoke(cli, ["notebook", "start", "--env", "hdfs:///envs/a.tar.gz", "--notebook7",
                                      "--idle-timeout", "30m", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("# job.json (the job: parameters, environment values) is written only by")
    spec = yaml.safe_load(result.output)
    service = spec["services"]["jupyter"]
    assert service["files"]["environment"] == {"source": "hdfs:///envs/a.tar.gz", "type": "ARCHIVE",
                                               "visibility": "PRIVATE", "size": 0, "timestamp": 0}
    runtime = service["files"]["skein_jupyter_runtime.zip"]["source"]
    assert runtime.startswith("file://") and Path(runtime[len("file://"):]).is_file()
    # The job is a file a launch writes: shown as job.json, never written by a dry run.
    assert service["files"]["job.json"]["source"] == "job.json" and "SKEIN_JUPYTER_JOB" not in service["env"]
    assert list(temporary.iterdir()) == [] and not (isolated / "job.json").exists()


def test_notebook_start_conflicting_flags(isolated):
    result = CliRunner().invoke(cli, ["notebook", "start", "--env", "a.tar.gz", "--lab",
                                      "--set", "notebook.frontend=server", "--dry-run"])
    assert result.exit_code == 2
    assert result.output.strip() == "Error: notebook.frontend is given twice on the command line; give it once"
