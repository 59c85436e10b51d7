"""Validation at the edge: bad names and locations are refused before anything is submitted.

Unit tests of the checks (no cluster), then command-line tests: exit 2, one
``Error:`` line naming the field and the fix, nothing submitted (``yarn`` is
not even on PATH, so a submission would have exited 3), no file left behind.
"""
import os
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from skein_jupyter.cli import cli
from skein_jupyter.config import load_recipe
from skein_jupyter.exceptions import UsageError
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
     "sweep.parameters (from command line): set 2: 'x y' is not a parameter name"),
    ({"kind": "sweep", "sweep.grid": {"for": [1, 2]}}, "sweep.grid (from command line): 'for' is a Python keyword"),
    ({"env": {"A-B": "1"}}, "env (from command line): 'A-B' is not an environment variable name"),
    ({"files": {"../x": "hdfs:///x"}}, "files (from command line): '../x' is not a safe file name"),
    ({"files": {"environment": "hdfs:///x"}}, "files (from command line): 'environment' is a name the job uses"),
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
