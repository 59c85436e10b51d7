"""Private by default on HDFS, for real on the sandbox: what a run writes and what `env upload` puts
there is 600/700 whatever the cluster's umask, `run.share: group` makes it 640/750, and a public
upload is 644 and refuses a directory above it that YARN's public cache could not traverse."""
import json
import os
import subprocess
import uuid

import pytest
from click.testing import CliRunner

from conftest import wait_until, write_notebook
from skein_jupyter.applications import wait_for_final_state
from skein_jupyter.cli import cli
from skein_jupyter.config import load_recipe
from skein_jupyter.envstore import check_public_ancestors, upload
from skein_jupyter.exceptions import UsageError
from skein_jupyter.hdfs import HadoopFS, HdfsError, ancestors, is_own, share_modes
from skein_jupyter.identity import hadoop_user
from skein_jupyter.packing import METADATA_FORMAT, metadata_path, sha256_file
from skein_jupyter.runs import follow, start
from skein_jupyter.runtime import keys

yarn = pytest.mark.yarn
RUNS_INDEX = "/user/{user}/.skein-jupyter/runs"


# ----------------------------------------------------------------- the wrapper's logic (no cluster)

def test_shares():
    private = share_modes(None)
    assert (private.umask, private.dir_mode, private.file_mode) == ("077", "700", "600")
    assert (share_modes("group").dir_mode, share_modes("group").file_mode) == ("750", "640")
    assert (share_modes("public").dir_mode, share_modes("public").file_mode) == ("755", "644")
    with pytest.raises(ValueError, match="'world' is not a share; use one of private, group, public"):
        share_modes("world")


def test_own_directories_and_ancestors():
    assert is_own("hdfs:///user/alice/.skein-jupyter/runs") and is_own("/user/alice/.skein-jupyter")
    assert not is_own("/user/alice/skein-jupyter/runs/application_1_0001")
    assert ancestors("hdfs:///apps/envs/a.tar.gz") == ["hdfs:///", "hdfs:///apps", "hdfs:///apps/envs"]
    assert ancestors("/a") == ["/"]


@pytest.fixture
def recording_hdfs(tmp_path):
    """An ``hdfs`` that records its arguments (one per line), fails on ``/denied`` and on chmod of carol's index."""
    log = tmp_path / "calls"
    script = tmp_path / "hdfs"
    script.write_text("#!/bin/sh\n"
                      f'for a in "$@"; do echo "$a" >> {log}; done; echo --- >> {log}\n'
                      'for a in "$@"; do if [ "$a" = /denied ]; then '
                      """echo "mkdir: Permission denied: user=bob, access=WRITE, inode=/denied" >&2; """
                      "exit 1; fi; done\n"
                      'if [ "$2" = -chmod ] && [ "$4" = /user/carol/.skein-jupyter/runs ]; then exit 1; fi\n')
    script.chmod(0o755)

    def calls():
        return [call.strip().split("\n") for call in log.read_text().split("---\n") if call.strip()]
    return HadoopFS(str(script)), calls


def test_every_write_carries_the_umask_right_after_dfs(recording_hdfs, tmp_path):
    fs, calls = recording_hdfs
    fs.put([tmp_path / "a.ipynb"], "/out/")
    fs.put([tmp_path / "a.ipynb"], "/out/", share="group")
    fs.mkdir("/out/run", "/user/bob/.skein-jupyter/runs")
    fs.exists("/out")
    assert calls() == [
        ["dfs", "-D", "fs.permissions.umask-mode=077", "-put", "-f", str(tmp_path / "a.ipynb"), "/out/"],
        ["dfs", "-D", "fs.permissions.umask-mode=027", "-put", "-f", str(tmp_path / "a.ipynb"), "/out/"],
        ["dfs", "-D", "fs.permissions.umask-mode=077", "-mkdir", "-p", "/out/run", "/user/bob/.skein-jupyter/runs"],
        # Only skein-jupyter's own directory is set explicitly: it may date from a version that wrote 755.
        ["dfs", "-chmod", "700", "/user/bob/.skein-jupyter/runs"],
        ["dfs", "-test", "-e", "/out"],
    ]


def test_a_permission_problem_is_a_usage_error(recording_hdfs):
    fs, _ = recording_hdfs
    with pytest.raises(UsageError, match="Permission denied.*choose a directory you can write to"):
        fs.mkdir("/denied")
    with pytest.raises(UsageError, match="Permission denied.*it is private to its owner"):
        fs.cat("/denied")  # reading another user's private output: no hint to write elsewhere
    # Tightening an own directory that is another user's (a proxy user's) is best effort.
    fs.mkdir("/user/carol/.skein-jupyter/runs")
    assert HdfsError.exit_code == 3  # anything else from HDFS: the cluster's problem, a retry may help


class _Modes:
    """The one answer :func:`check_public_ancestors` needs from the filesystem: modes of existing paths."""

    def __init__(self, found):
        self.found, self.asked = found, None

    def modes(self, *paths):
        self.asked = paths
        return {p: self.found[p] for p in paths if p in self.found}


def test_public_ancestor_check_names_the_first_closed_directory():
    fs = _Modes({"hdfs:///": 0o755, "hdfs:///apps": 0o750, "hdfs:///apps/team": 0o700})
    with pytest.raises(UsageError, match=r"^--public: hdfs:///apps is not world-executable \(750\).*"
                                         r"`hdfs dfs -chmod o\+x hdfs:///apps`"):
        check_public_ancestors("hdfs:///apps/team/envs", fs)
    assert fs.asked == ("hdfs:///", "hdfs:///apps", "hdfs:///apps/team")  # the directory itself is ours to open
    check_public_ancestors("/apps/new/envs", _Modes({"/": 0o755, "/apps": 0o711}))  # /apps/new: made 755


# ----------------------------------------------------------------- on the sandbox

def hdfs(*args, check=True):
    proc = subprocess.run(["hdfs", "dfs", *args], capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def modes(*paths):
    """Octal permission text of each path, as `hdfs dfs -stat %a` prints it (independent of our wrapper)."""
    lines = hdfs("-stat", "%a", *paths).stdout.split()
    assert len(lines) == len(paths)
    return dict(zip(paths, lines))


@pytest.fixture(scope="module")
def scratch(sandbox):
    """A directory of this module on the sandbox's HDFS, removed at the end."""
    path = f"/tmp/privacy-{uuid.uuid4().hex[:8]}"
    hdfs("-mkdir", "-p", path)
    hdfs("-chmod", "755", path)
    yield path
    hdfs("-rm", "-r", "-f", "-skipTrash", path, check=False)


@pytest.fixture(scope="module")
def runs(uploaded_venv, skein_client, tmp_path_factory):
    """One private run and one `share: group` run, submitted together and followed to the end."""
    user = hadoop_user()
    index = RUNS_INDEX.format(user=user)
    # An index directory from a version that wrote 755 is made private again by the next run.
    hdfs("-mkdir", "-p", index)
    hdfs("-chmod", "755", index)
    notebook = write_notebook(tmp_path_factory.mktemp("privacy") / "secret.ipynb", [
        ("token = 'x'", ["parameters"]), "print('the output holds', token)"])
    submitted = {}
    for share in ("private", "group"):
        recipe, _ = load_recipe(kind="run", environ={}, flags={
            "environment": uploaded_venv.url, "resources.memory": "512 MiB", "run.notebook": str(notebook),
            "run.share": share, "run.checkpoint_interval": 0})
        submitted[share] = start(recipe, skein_client).app_id
    outcomes = {share: follow(skein_client, app_id, timeout=600) for share, app_id in submitted.items()}
    return user, submitted, outcomes


def _written(user, app_id, outcome):
    assert outcome.status == "succeeded", outcome
    output = outcome.results[0]["output"]
    directory = output.rsplit("/", 1)[0]
    index = RUNS_INDEX.format(user=user)
    return {"notebook": output, "summary": directory + "/result.json", "output dir": directory,
            "index entry": f"{index}/{app_id}.json", "index dir": index}


@yarn
def test_a_run_writes_600_and_700_by_default(runs):
    user, submitted, outcomes = runs
    paths = _written(user, submitted["private"], outcomes["private"])
    found = modes(*paths.values())
    assert {name: found[path] for name, path in paths.items()} == {
        "notebook": "600", "summary": "600", "output dir": "700", "index entry": "600", "index dir": "700"}
    # What the index entry says is what `status`/`fetch` read: it points at the private summary.
    entry = json.loads(hdfs("-cat", paths["index entry"]).stdout)
    assert entry["summary"] == paths["summary"]


@yarn
def test_share_group_writes_640_and_750(runs):
    user, submitted, outcomes = runs
    paths = _written(user, submitted["group"], outcomes["group"])
    found = modes(*paths.values())
    # The index directory lists every run: it stays private even for a group-shared one.
    assert {name: found[path] for name, path in paths.items()} == {
        "notebook": "640", "summary": "640", "output dir": "750", "index entry": "640", "index dir": "700"}


@yarn
def test_a_checkpoint_is_private_while_the_run_goes(uploaded_venv, skein_client, tmp_path):
    notebook = write_notebook(tmp_path / "slow.ipynb", [
        ("seconds = 600", ["parameters"]), "print('partial', flush=True)", "import time\ntime.sleep(seconds)"])
    recipe, _ = load_recipe(kind="run", environ={}, flags={
        "environment": uploaded_venv.url, "resources.memory": "512 MiB", "run.notebook": str(notebook),
        "run.checkpoint_interval": "2s"})
    app_id = start(recipe, skein_client).app_id
    try:
        app = skein_client.connect(app_id, wait=True)
        output = wait_until(lambda: app.kv.get(keys.RUN_OUTPUT), 300, "the output directory").decode()
        checkpoint = output + "/slow.ipynb"
        wait_until(lambda: hdfs("-test", "-e", checkpoint, check=False).returncode == 0, 300,
                   "a checkpoint of the output notebook", poll=2)
        assert str(skein_client.application_report(app_id).state) == "RUNNING"  # a checkpoint, not the end
        assert modes(checkpoint, output) == {checkpoint: "600", output: "700"}
    finally:
        skein_client.kill_application(app_id)
        wait_for_final_state(skein_client, app_id, 120)


@pytest.fixture
def small_env(tmp_path):
    """A packed-environment record around a small archive: what `env upload` reads, quick to upload."""
    archive = tmp_path / f"tiny-{uuid.uuid4().hex[:6]}.tar.gz"
    archive.write_bytes(os.urandom(4096))
    stat = archive.stat()
    metadata_path(archive).write_text(json.dumps({
        "format": METADATA_FORMAT, "name": "tiny", "sha256": sha256_file(archive), "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns, "archive": archive.name}))
    return archive


@yarn
def test_a_private_upload_is_600_in_a_700_directory(scratch, small_env):
    result = upload(small_env, to=f"hdfs://{scratch}/private/envs")
    directory = f"{scratch}/private/envs"
    name = result.url.rsplit("/", 1)[1]
    assert modes(f"{directory}/{name}", f"{directory}/{name}.json", directory, f"{scratch}/private") == {
        f"{directory}/{name}": "600", f"{directory}/{name}.json": "600", directory: "700",
        f"{scratch}/private": "700"}


@yarn
def test_a_public_upload_is_644_in_a_755_directory(scratch, small_env):
    directory = f"{scratch}/public/envs"
    result = CliRunner().invoke(cli, ["env", "upload", str(small_env), "--to", f"hdfs://{directory}",
                                      "--public", "--json"])
    assert result.exit_code == 0, result.output
    url = json.loads(result.stdout)["url"]
    name = url.rsplit("/", 1)[1]
    assert modes(f"{directory}/{name}", f"{directory}/{name}.json", directory, f"{scratch}/public") == {
        f"{directory}/{name}": "644", f"{directory}/{name}.json": "644", directory: "755",
        f"{scratch}/public": "755"}


@yarn
def test_a_public_upload_refuses_a_closed_ancestor_before_uploading(scratch, small_env):
    closed = f"{scratch}/closed"
    hdfs("-mkdir", "-p", closed)
    hdfs("-chmod", "700", closed)
    result = CliRunner().invoke(cli, ["env", "upload", str(small_env), "--to", f"{closed}/team/envs", "--public"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[-1].startswith(f"Error: --public: {closed} is not world-executable")
    assert f"hdfs dfs -chmod o+x {closed}" in lines[-1]
    assert hdfs("-test", "-e", f"{closed}/team", check=False).returncode != 0  # nothing uploaded, nothing made
    # The library says the same.
    with pytest.raises(UsageError, match=f"{closed} is not world-executable"):
        upload(small_env, to=f"{closed}/envs", public=True)


@yarn
def test_env_list_of_a_missing_directory_is_a_usage_error(scratch):
    result = CliRunner().invoke(cli, ["env", "list", f"hdfs://{scratch}/nowhere"])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines()[-1].startswith(f"Error: hdfs://{scratch}/nowhere does not exist")


@yarn
def test_a_proxy_users_run_is_prepared_written_and_read_as_that_user(packed_venv, skein_client, tmp_path):
    """With ``proxy_user``, the environment goes to that user's cache as that user, the run's private
    outputs belong to that user, and `status` of the run reads them (the sandbox lets its user proxy)."""
    from skein_jupyter.runs import status

    proxy = f"proxy{uuid.uuid4().hex[:6]}"
    hdfs("-mkdir", "-p", f"/user/{proxy}")
    hdfs("-chown", proxy, f"/user/{proxy}")  # as an admin makes a new user's home
    notebook = write_notebook(tmp_path / "who.ipynb", [("x = 1", ["parameters"]), "print('ran', x)"])
    recipe, _ = load_recipe(kind="run", environ={}, flags={
        "environment": str(packed_venv), "resources.memory": "512 MiB", "run.notebook": str(notebook),
        "proxy_user": proxy, "run.checkpoint_interval": 0})
    submission = start(recipe, skein_client)
    assert submission.environment.url.startswith(f"hdfs:///user/{proxy}/.skein-jupyter/environments/")
    outcome = follow(skein_client, submission.app_id, timeout=600)
    assert outcome.status == "succeeded", outcome
    assert skein_client.application_report(submission.app_id).user == proxy
    output = outcome.results[0]["output"]
    assert output.startswith(f"/user/{proxy}/skein-jupyter/runs/")
    owners = hdfs("-stat", "%u %a", submission.environment.url, output,
                  f"{RUNS_INDEX.format(user=proxy)}/{submission.app_id}.json").stdout.split("\n")
    assert [line for line in owners if line] == [f"{proxy} 600"] * 3
    later, _ = status(skein_client, submission.app_id)  # after the end: from the saved, private summary
    assert later.summary is not None and later.status == "succeeded"
