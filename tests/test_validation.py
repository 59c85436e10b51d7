"""Validation at the edge: bad names and locations are refused before anything is submitted.

Unit tests of the checks (no cluster), then command-line tests: exit 2, one
``Error:`` line naming the field and the fix, nothing submitted (``yarn`` is
not even on PATH, so a submission would have exited 3), no file left behind.
"""
import datetime
import os
import subprocess
import sys

import pytest

from conftest import SESSION_GPUS, SESSION_VCORES, submitted_here
from click.testing import CliRunner

from skein_jupyter.cli import cli
from skein_jupyter.config import load_recipe
from skein_jupyter.exceptions import EXIT_CODES, UsageError
from skein_jupyter.parameters import parameters_from_flags
from skein_jupyter.scheduler import Allocation, allocation_from_scheduler, rm_web_url
from skein_jupyter.spec import RESERVED_FILES, check_allocation
from skein_jupyter.validation import (check_cluster_path, check_env_name, check_file_name,
                                      check_filesystem_url, check_output_location, check_parameter_name)

NOTEBOOK = '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'


# ----- the checks themselves

@pytest.mark.parametrize("name", ["alpha", "_x", "a1", "match", "case", "type", "_"])
def test_parameter_names_that_are_identifiers(name):
    check_parameter_name(name)  # soft keywords (match, case, type, _) are harmless as names


@pytest.mark.parametrize("name, fragment", [
    ('print("pwned");x', "is not a parameter name; use a Python identifier"),
    ("1x", "is not a parameter name"), ("a-b", "is not a parameter name"), ("", "is not a parameter name"),
    (3, "is not a parameter name"),
    ("class", "'class' is a Python keyword, not a parameter name; rename the parameter (e.g. class_)"),
    ("None", "is a Python keyword"), ("lambda", "is a Python keyword"),
])
def test_bad_parameter_names(name, fragment):
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        check_parameter_name(name)


@pytest.mark.parametrize("name, ok", [("PATH", True), ("_A1", True), ("a_b", True), ("1A", False),
                                      ("A-B", False), ("A B", False), ("A=B", False), ("", False)])
def test_env_names(name, ok):
    if ok:
        check_env_name(name)
    else:
        with pytest.raises(ValueError, match="is not an environment variable name"):
            check_env_name(name)


@pytest.mark.parametrize("name", ["data.csv", "a_b-c.1", "lookup"])
def test_safe_file_names(name):
    check_file_name(name, RESERVED_FILES)


@pytest.mark.parametrize("name", ["a/b", "..", "a..b", ".hidden", "x y", "", "a:b", "../etc"])
def test_unsafe_file_names(name):
    with pytest.raises(ValueError, match="is not a safe file name"):
        check_file_name(name, RESERVED_FILES)


@pytest.mark.parametrize("name", sorted(RESERVED_FILES))
def test_reserved_file_names(name):
    with pytest.raises(ValueError, match="is a name the job uses itself; choose another name"):
        check_file_name(name, RESERVED_FILES)


@pytest.mark.parametrize("path", ["hdfs://nn:8020/data/a.ipynb", "hdfs:///a/b.ipynb", "/x/y z.ipynb",
                                  "viewfs://cluster/x.ipynb"])
def test_cluster_paths_hdfs_takes(path):
    check_cluster_path(path)


@pytest.mark.parametrize("path, chars", [("/a/b:c.ipynb", ":"), ("hdfs://nn:1/a:b", ":"), ("/a/[x].ipynb", "[ ]"),
                                         ("/a/*.ipynb", "*"), ("/a/?.ipynb", "?"), ("/a/{x}.ipynb", "{ }")])
def test_cluster_paths_hdfs_refuses_or_globs(path, chars):
    with pytest.raises(ValueError) as info:
        check_cluster_path(path)
    assert f"has '{chars}' which HDFS refuses in a path or `hdfs dfs` reads as a glob; rename it" in str(info.value)


@pytest.mark.parametrize("template", ["/data/{user}/{name}-{date}/{app_id}", "hdfs://nn:8020/r/{user}", "/plain"])
def test_output_templates_with_known_placeholders(template):
    check_output_location(template)


@pytest.mark.parametrize("template, fragment", [
    ("/data/{team}", "{team} is not a placeholder of an output location; use only {user}, {app_id}, {name}, {date}"),
    ("/data/{user!r}", "is not a placeholder"), ("/data/{date:%Y}", "is not a placeholder"),
    ("/data/{", "is not a valid output location"), ("/data/{{x}}", "has '{ }' which HDFS refuses"),
    ("/data/a*/{user}", "has '*' which"), ("/data/x:y/{user}", "has ':' which"),
])
def test_bad_output_templates(template, fragment):
    with pytest.raises(ValueError) as info:
        check_output_location(template)
    assert fragment in str(info.value)


@pytest.mark.parametrize("url", ["hdfs:///apps/envs", "viewfs://c/envs", "file:///tmp/envs", "s3a://b/envs",
                                 "abfs://c@a.dfs.core.windows.net/e", "abfss://c@a/e", "gs://b/e", "o3fs://b.v/e",
                                 "ofs://om/v/b/e", "/user/alice/envs"])
def test_filesystem_urls(url):
    check_filesystem_url(url)


@pytest.mark.parametrize("url", ["http://example.com/envs", "https://x/y", "ftp://x/y", "s3://b/e"])
def test_urls_that_are_not_filesystems(url):
    with pytest.raises(ValueError, match="is not on a Hadoop filesystem"):
        check_filesystem_url(url)


# ----- where the checks are applied: recipes and parameter flags

def _recipe(**flags):
    return load_recipe(kind=flags.pop("kind", "run"), flags={"environment": "hdfs:///e.tar.gz",
                                                             "run.notebook": "hdfs:///n.ipynb", **flags},
                       environ={})[0]


@pytest.mark.parametrize("flags, fragment", [
    ({"run.output": "/data/{team}"}, "run.output (from command line): {team} is not a placeholder"),
    ({"run.output": "/data/a[1]"}, "run.output (from command line): '/data/a[1]' has '[ ]'"),
    ({"run.notebook": "hdfs:///n/a:b.ipynb"}, "run.notebook (from command line): 'hdfs:///n/a:b.ipynb' has ':'"),
    ({"run.parameters": {"class": 1}}, "run.parameters (from command line): 'class' is a Python keyword"),
    ({"kind": "sweep", "sweep.parameters": [{"a": 1}, {"x y": 2}]},
     "sweep.parameters (from command line): set 1 (numbered from 0): 'x y' is not a parameter name"),
    ({"kind": "sweep", "sweep.parameters": [{"a": 1}, 5]},
     "sweep.parameters (from command line): set 1 (numbered from 0) is a number, not a mapping of parameter names"),
    ({"kind": "sweep", "sweep.grid": {"for": [1, 2]}}, "sweep.grid (from command line): 'for' is a Python keyword"),
    ({"env": {"A-B": "1"}}, "env (from command line): 'A-B' is not an environment variable name"),
    ({"files": {"../x": "hdfs:///x"}}, "files (from command line): '../x' is not a safe file name"),
    ({"files": {"environment": "hdfs:///x"}}, "files (from command line): 'environment' is a name the job uses"),
    ({"env": {"SKEIN_CONTAINER_ID": "x"}}, "env (from command line): 'SKEIN_CONTAINER_ID' is set by YARN or Skein"),
    ({"name": "a:b*c", "run.output": "/data/{name}/out"}, "name (from command line): 'a:b*c' is not an application"),
    ({"name": "{user}"}, "name (from command line): '{user}' is not an application name"),
    ({"name": "x/../../etc"}, "name (from command line): 'x/../../etc' is not an application name"),
])
def test_recipes_refuse_bad_names(flags, fragment):
    with pytest.raises(UsageError) as info:
        _recipe(**flags)
    assert fragment in str(info.value)
    assert info.value.exit_code == 2


def test_a_local_notebook_is_checked_by_its_file_name(tmp_path):
    directory = tmp_path / "dir:with:colons"
    directory.mkdir()
    (directory / "ok.ipynb").write_text(NOTEBOOK)
    (directory / "a[1].ipynb").write_text(NOTEBOOK)
    _recipe(**{"run.notebook": str(directory / "ok.ipynb")})  # the edge node's directory stays here
    with pytest.raises(UsageError, match=r"run.notebook \(from command line\): 'a\[1\].ipynb' has '\[ \]'"):
        _recipe(**{"run.notebook": str(directory / "a[1].ipynb")})


def test_env_values_are_accepted_as_written():
    value = 'say "hi" $HOME `id` \\n \'q\'\nnext line'
    assert _recipe(env={"GREETING": value}).env == {"GREETING": value}


@pytest.mark.parametrize("kwargs, fragment", [
    ({"typed": [('print("pwned");x', "1")]}, "-p: 'print(\"pwned\");x' is not a parameter name"),
    ({"raw": [("class", "x")]}, "-r: 'class' is a Python keyword"),
    ({"yamls": ["{'a b': 1}"]}, "-y \"{'a b': 1}\": 'a b' is not a parameter name"),
])
def test_parameter_flags_refuse_bad_names(kwargs, fragment):
    with pytest.raises(UsageError) as info:
        parameters_from_flags(**kwargs)
    assert fragment in str(info.value)


def test_parameter_files_refuse_bad_names(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("ok: 1\nimport: 2\n")
    with pytest.raises(UsageError, match=f"-f {path}: 'import' is a Python keyword"):
        parameters_from_flags(files=[path])


# ----- what the scheduler allows one container

SCHEDULER = {"scheduler": {"schedulerInfo": {
    "type": "capacityScheduler", "maximumAllocation": {"memory": 16384, "vCores": 16},
    "queues": {"queue": [
        {"queueName": "etl", "queuePath": "root.etl", "maximumAllocation": {"memory": 4096, "vCores": 2}},
        {"queueName": "ml", "queuePath": "root.ml", "queues": {"queue": [
            {"queueName": "gpu", "queuePath": "root.ml.gpu", "maximumAllocation": {
                "memory": 65536, "vCores": 32, "resourceInformations": {"resourceInformation": [
                    {"name": "memory-mb", "value": 65536}, {"name": "yarn.io/gpu", "value": 4}]}}}]}},
    ]}}}}


@pytest.mark.parametrize("queue, expected", [
    ("etl", (4096, 2, None)), ("gpu", (65536, 32, 4)), ("root.ml.gpu", (65536, 32, 4)),
    ("default", (16384, 16, None)), (None, (16384, 16, None)),
])
def test_the_queues_maximum_allocation_else_the_schedulers(queue, expected):
    allocation = allocation_from_scheduler(SCHEDULER, queue)
    assert (allocation.memory_mb, allocation.vcores, allocation.gpus) == expected


def test_a_scheduler_answer_without_a_maximum_allocation():
    assert allocation_from_scheduler({"scheduler": {"schedulerInfo": {"type": "fifoScheduler"}}}) is None


@pytest.mark.parametrize("props, url", [
    ({"yarn.resourcemanager.webapp.address": "rm.example.com:8088"}, "http://rm.example.com:8088"),
    ({"yarn.resourcemanager.hostname": "rm"}, "http://rm:8088"),
    ({"yarn.resourcemanager.hostname": "rm", "yarn.http.policy": "HTTPS_ONLY"}, "https://rm:8090"),
    ({"yarn.resourcemanager.ha.rm-ids": "rm1,rm2", "yarn.resourcemanager.webapp.address.rm1": "a:8088"},
     "http://a:8088"),
    ({"yarn.resourcemanager.webapp.address": "0.0.0.0:8088"}, "http://localhost:8088"),
    ({}, None),
])
def test_the_resourcemanagers_web_address_from_yarn_site(props, url):
    assert rm_web_url(props) == url


@pytest.mark.parametrize("resources, allocation, fragment", [
    ({"resources.memory": "5 GiB"}, Allocation(4096, 2), "resources.memory: 5120 MiB is above the cluster maximum "
     "of 4096 MiB per container (the scheduler's maximum allocation); ask for at most 4096 MiB"),
    ({"resources.vcores": 3}, Allocation(4096, 2), "resources.vcores: 3 is above the cluster maximum of 2"),
    ({"resources.gpus": 1}, Allocation(4096, 2), "resources.gpus: 1 asked for, but this cluster has no GPUs "
     "(no yarn.io/gpu resource); drop --gpus"),
    ({"resources.gpus": 5}, Allocation(4096, 2, 4), "resources.gpus: 5 is above the cluster maximum of 4"),
])
def test_requests_above_the_allocation_are_refused(resources, allocation, fragment):
    with pytest.raises(UsageError) as info:
        check_allocation(_recipe(**resources).resources, allocation)
    assert fragment in str(info.value)


def test_requests_within_the_allocation_pass():
    check_allocation(_recipe(**{"resources.memory": "4 GiB", "resources.vcores": 2, "resources.gpus": 4}).resources,
                     Allocation(4096, 2, 4))


# ----- on the command line: exit 2, one line, nothing submitted, no file left behind

def _cli(args, tmp_path):
    """The command as a user runs it, with no `yarn` or `hdfs` on PATH: reaching the cluster would exit 3."""
    bin_dir = os.path.dirname(sys.executable)
    env = {"HOME": str(tmp_path / "home"), "PATH": f"{bin_dir}:/usr/bin:/bin", "SKEIN_CONFIG": str(tmp_path / "skein")}
    return subprocess.run([sys.executable, "-m", "skein_jupyter", *args], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "home").mkdir()
    (tmp_path / "report.ipynb").write_text(NOTEBOOK)
    (tmp_path / "p.yaml").write_text("alpha: 1\nclass: 2\n")
    return tmp_path


CLI_CASES = [
    (["run", "report.ipynb"],
     "Error: environment: missing; give --env (a packed archive, an hdfs:// archive, or a name from "
     "`skein-jupyter env list`) or set environment: in the recipe"),
    (["run", "report.ipynb", "--env", "hdfs:///e.tar.gz", "--output", "/data/{team}"],
     "Error: run.output (from command line): {team} is not a placeholder of an output location; use only "
     "{user}, {app_id}, {name}, {date}"),
    (["run", "report.ipynb", "--env", "hdfs:///e.tar.gz", "--output", "hdfs:///data/*"],
     "Error: run.output (from command line): 'hdfs:///data/*' has '*' which HDFS refuses in a path or `hdfs dfs` "
     "reads as a glob; rename it without *"),
    (["run", "report.ipynb", "--env", "hdfs:///e.tar.gz", "-p", 'print("pwned");x', "1"],
     "Error: -p: 'print(\"pwned\");x' is not a parameter name; use a Python identifier (letters, digits and '_', "
     "not starting with a digit), as the notebook's parameters cell assigns it"),
    (["run", "report.ipynb", "--env", "hdfs:///e.tar.gz", "-f", "p.yaml"],
     "Error: -f p.yaml: 'class' is a Python keyword, not a parameter name; rename the parameter (e.g. class_)"),
    (["run", "report.ipynb", "--env", "hdfs:///e.tar.gz", "--set", "env={A-B: 1}"],
     "Error: env (from command line): 'A-B' is not an environment variable name; use letters, digits and '_', "
     "not starting with a digit"),
    (["run", "report.ipynb", "--env", "hdfs:///e.tar.gz", "--set", "files={job.json: p.yaml}"],
     "Error: files (from command line): 'job.json' is a name the job uses itself; choose another name"),
    (["run", "a[1].ipynb", "--env", "hdfs:///e.tar.gz"],
     "Error: run.notebook (from command line): 'a[1].ipynb' has '[ ]' which HDFS refuses in a path or"),
    (["run", "hdfs://nn:8020/n/a:b.ipynb", "--env", "hdfs:///e.tar.gz"],
     "Error: run.notebook (from command line): 'hdfs://nn:8020/n/a:b.ipynb' has ':' which HDFS refuses"),
    (["notebook", "start", "--env", "hdfs:///e.tar.gz", "--lab", "--server"],
     "Error: --lab and --server conflict (a server has one frontend); give one of them"),
    (["notebook", "start", "--env", "hdfs:///e.tar.gz", "--workspace", "../team"],
     "Error: notebook.workspace (from command line): '../team' is not a workspace name (letters, digits, '.', "
     "'_', '-'; up to 100) or an hdfs:// URL"),
    (["notebook", "start", "--env", "hdfs:///e.tar.gz", "--workspace", "hdfs:///user/x/../y"],
     "Error: notebook.workspace (from command line): 'hdfs:///user/x/../y' is not an hdfs:// URL of a directory"),
    (["notebook", "start", "--env", "hdfs:///e.tar.gz", "--sync-interval", "0"],
     "Error: notebook.sync_interval (from command line): '0' is not a positive duration; use e.g. 90s"),
    (["env", "upload", "e.tar.gz", "--to", "http://example.com/envs"],
     "Error: --to: 'http://example.com/envs' is not on a Hadoop filesystem (http:// is not one); use hdfs://"),
    (["env", "list", "https://example.com/envs"], "Error: DIR: 'https://example.com/envs' is not on a Hadoop"),
    (["env", "pack", "-o", "analytics.tar.gz", "--name", "my env"],
     "Error: --name: 'my env' is not a valid environment name; names use letters, digits, '.', '_' and '-'"),
    (["env", "pack", "-o", "my env.tar.gz"],
     "Error: -o my env.tar.gz (its name is the environment's): 'my env' is not a valid environment name"),
]


@pytest.mark.parametrize("args, error", CLI_CASES, ids=[" ".join(a[:2]) + " " + e[7:40] for a, e in CLI_CASES])
def test_bad_input_exits_2_with_one_line_and_leaves_nothing(workdir, args, error):
    before = sorted(p.name for p in workdir.rglob("*"))
    proc = _cli(args, workdir)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith(error), proc.stderr
    assert proc.stdout == ""
    assert sorted(p.name for p in workdir.rglob("*")) == before  # no archive, job file or partial file


def test_the_exit_codes_are_in_the_help():
    result = CliRunner().invoke(cli, ["--help"])
    assert "Exit codes:" in result.output
    for code, text in EXIT_CODES.items():
        assert f"  {code}  {text.split()[0]}" in result.output


# ----- against the sandbox: the cluster's own limits and answers

@pytest.mark.yarn
@pytest.mark.parametrize("args, error", [
    (["--memory", "100GiB"], "Error: resources.memory: 102400 MiB is above the cluster maximum of"),
    (["--vcores", "64"], f"Error: resources.vcores: 64 is above the cluster maximum of {SESSION_VCORES} per container"),
    # The session's sandbox declares SESSION_GPUS GPUs; a cluster without any: tests/test_gpus.py.
    (["--gpus", str(SESSION_GPUS + 1)],
     f"Error: resources.gpus: {SESSION_GPUS + 1} is above the cluster maximum of {SESSION_GPUS} per container"),
])
def test_requests_above_what_the_scheduler_allows_submit_nothing(sandbox, skein_client, args, error):
    before = submitted_here()
    result = CliRunner().invoke(cli, ["notebook", "start", "--env", "hdfs:///nowhere/e.tar.gz", *args])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(error) and len(result.output.strip().splitlines()) == 1, result.output
    assert submitted_here() == before


@pytest.mark.yarn
def test_env_list_of_a_missing_directory_is_a_usage_error(sandbox):
    result = CliRunner().invoke(cli, ["env", "list", "hdfs:///no/such/dir"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: hdfs:///no/such/dir does not exist on the cluster; check the directory, or upload an "
        "environment there first with `skein-jupyter env upload`"]


@pytest.mark.yarn
def test_an_unknown_application_is_one_line(sandbox, skein_client):
    result = CliRunner().invoke(cli, ["status", "application_1_9999"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: no application application_1_9999 on this cluster; see `yarn application -list -appStates ALL`"]


@pytest.mark.yarn
def test_a_skein_failure_becomes_one_line_exit_3(sandbox, skein_client):
    from skein_jupyter.cli import infrastructure_error

    with pytest.raises(Exception) as info:  # a real error from Skein's driver
        skein_client.connect("application_1_9999", wait=False)
    error = infrastructure_error(info.value)
    assert error.exit_code == 3
    assert str(error) == ("Skein: Unknown ApplicationId 'application_1_9999'; check the cluster "
                          "(`yarn node -list`) and try again")


def test_a_failed_hadoop_command_becomes_one_line_exit_3():
    from skein_jupyter.cli import infrastructure_error

    with pytest.raises(subprocess.CalledProcessError) as info:
        subprocess.run(["sh", "-c", "echo 'WARN noise' >&2; echo 'ls: Connection refused' >&2; exit 1"],
                       check=True, capture_output=True, text=True)
    error = infrastructure_error(info.value)
    assert error.exit_code == 3
    assert str(error) == "`sh -c` failed: ls: Connection refused; check that the cluster is up and try again"
    assert infrastructure_error(KeyError("a bug")) is None  # bugs keep their traceback


@pytest.mark.parametrize("output, base", [
    (None, "/user/alice/skein-jupyter/runs"),
    ("/data/{name}/{date}", "/data/nightly/" + datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")),
    ("/data/{user}/{app_id}/x", "/data/alice"),
    ("/data/{name}-{app_id}", "/data"),
])
def test_the_output_base_comes_from_the_runtimes_own_expander(output, base):
    from skein_jupyter.preflight import output_base

    flags = {"name": "nightly", **({"run.output": output} if output else {})}
    assert output_base(_recipe(**flags), "alice") == base


def test_a_job_built_by_hand_is_checked_again():
    """The container trusts only a job that passes the same checks: no code through a parameter name."""
    import dataclasses

    from skein_jupyter.runtime.job import JobError
    from skein_jupyter.spec import job_from_recipe

    job = job_from_recipe(_recipe(), "alice")
    with pytest.raises(JobError, match="is not a parameter name"):
        dataclasses.replace(job, run=dataclasses.replace(job.run, parameters={'print("pwned");x': 1}))
    with pytest.raises(JobError, match="is set by YARN or Skein"):
        dataclasses.replace(job, env={"SKEIN_APPLICATION_ID": "x"})
    with pytest.raises(JobError, match="is not a placeholder"):
        dataclasses.replace(job, run=dataclasses.replace(job.run, output="/data/{team}"))


def test_a_sweep_file_is_named_in_its_errors_and_parallel_on_the_command_line_wins(tmp_path, monkeypatch):
    from skein_jupyter.cli.run import run_recipe

    (tmp_path / "nb.ipynb").write_text(NOTEBOOK)
    monkeypatch.setenv("SKEIN_JUPYTER_CONFIG", str(tmp_path / "none.yaml"))
    sets = tmp_path / "sets.yaml"
    sets.write_text("parallel: 2\nparameters:\n  - {x: 1}\n  - {x: 2}\n")
    common = {"environment": "hdfs:///e.tar.gz"}
    assert run_recipe(str(tmp_path / "nb.ipynb"), sweep_file=str(sets), **common).sweep.parallel == 2
    assert run_recipe(str(tmp_path / "nb.ipynb"), sweep_file=str(sets), parallel=5, **common).sweep.parallel == 5
    sets.write_text("- {x: 1}\n- {2x: 2}\n")
    with pytest.raises(UsageError, match=rf"sweep.parameters \(from {sets}\): set 1 \(numbered from 0\): '2x'"):
        run_recipe(str(tmp_path / "nb.ipynb"), sweep_file=str(sets), **common)


def test_parameters_the_parameters_cell_does_not_assign_are_warned_about(tmp_path):
    import warnings

    from skein_jupyter.exceptions import SkeinJupyterWarning
    from skein_jupyter.preflight import check_notebook, parameter_names

    nb = {"cells": [{"cell_type": "code", "metadata": {"tags": ["parameters"]}, "outputs": [],
                     "source": ["alpha = 0.5\n", "n: int = 10\n", "a, (b, c) = 1, (2, 3)\n", "print(alpha)\n"]}],
          "metadata": {"kernelspec": {"name": "python3", "language": "python"}}, "nbformat": 4, "nbformat_minor": 5}
    assert parameter_names(nb) == {"alpha", "n", "a", "b", "c"}
    with pytest.warns(SkeinJupyterWarning, match=r"sweep.parameters: aplha \(set 1, numbered from 0; did you mean "
                                                 r"'alpha'\?\) is not assigned in the parameters cell of n.ipynb "
                                                 r"\(it assigns a, alpha, b, c, n\); papermill sets it after"):
        check_notebook(_recipe(kind="sweep", **{"sweep.parameters": [{"alpha": 1}, {"aplha": 2}]}), nb)
    with pytest.warns(SkeinJupyterWarning, match=r"run.parameters \(-p, -r, -y, -f\): nn \(did you mean 'n'\?\) is not "
                                                 r"assigned") as seen:
        check_notebook(_recipe(**{"run.parameters": {"n": 1, "nn": 29871}}), nb)
    assert "29871" not in str(seen[0].message)  # names, never values
    with pytest.warns(SkeinJupyterWarning, match=r"sweep.grid: zz is not assigned") as seen:
        check_notebook(_recipe(kind="sweep", **{"sweep.grid": {"zz": [31337]}}), nb)
    assert "31337" not in str(seen[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_notebook(_recipe(kind="sweep", **{"sweep.grid": {"alpha": [1, 2], "n": [3]}}), nb)
        nb["cells"][0]["source"] = "%config x = 1\nalpha = 2"  # not plain Python: nothing to compare with
        check_notebook(_recipe(**{"run.parameters": {"other": 1}}), nb)


def test_parameter_names_are_what_the_parameters_cell_binds_outside_functions():
    from skein_jupyter.preflight import parameter_names

    source = ("import numpy as np, os.path\nfrom math import pi as PI\nif True:\n    alpha = 1\nelse:\n    alpha = 2\n"
              "try:\n    beta = 3\nexcept Exception:\n    pass\ncfg = {}\ncfg['k'] = 1\nfor i in range(2):\n    pass\n"
              "def f(inner=1):\n    hidden = 2\nwith open('x') as handle:\n    pass\n(n := 4)\nlabel: str = 'x'\n"
              "squares = [k * k for k in range(3)]\nys = [(y := v) for v in range(2)]\n"
              "match cfg:\n    case {'m': mode, **others}:\n        pass\n")
    nb = {"cells": [{"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": source}],
          "metadata": {}, "nbformat": 4}
    assert parameter_names(nb) == {"np", "os", "PI", "alpha", "beta", "cfg", "i", "f", "handle", "n", "label",
                                   "squares", "ys", "y", "mode", "others"}
    nb["cells"][0]["source"] = "from settings import *\nalpha = 1"
    assert parameter_names(nb) is None  # anything may be bound: no warning
    nb["metadata"] = {"kernelspec": {"language": "R"}}
    assert parameter_names(nb) is None


def test_a_remote_notebook_s_warning_is_said_once_though_its_checks_are_asked_twice():
    import concurrent.futures
    import warnings

    from skein_jupyter.exceptions import SkeinJupyterWarning
    from skein_jupyter.preflight import Preflight

    def done(value):
        future = concurrent.futures.Future()
        future.set_result(value)
        return future

    nb = {"cells": [{"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "alpha = 1"}],
          "metadata": {}, "nbformat": 4}
    preflight = object.__new__(Preflight)  # its checks on the cluster, already answered
    preflight.recipe = _recipe(**{"run.parameters": {"aplha": 2}})
    preflight.output, preflight.notify, preflight.remote_nb = done(None), done(None), done(nb)
    preflight._checked_early = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        preflight.check_early()  # before the environment is uploaded
        preflight.check_early()  # again, as check() does first
    assert [str(w.message)[:35] for w in caught if w.category is SkeinJupyterWarning] == \
        ["run.parameters (-p, -r, -y, -f): ap"]
