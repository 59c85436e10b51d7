"""Packing environments for YARN, and publishing them on the sandbox's HDFS, for real."""
import json
import shlex
import shutil
import tarfile
import textwrap
import uuid

import pytest
import skein
from click.testing import CliRunner

from conftest import make_small_venv
from skein_jupyter.applications import application_logs, wait_for_final_state
from skein_jupyter.cli import cli
from skein_jupyter.envstore import list_environments, upload
from skein_jupyter.hdfs import HadoopFS
from skein_jupyter.packing import pack

KERNEL_JSON = "share/jupyter/kernels/{}/kernel.json"


def _members(archive):
    with tarfile.open(archive) as tar:
        return tar.getnames()


def _kernel(archive, name):
    with tarfile.open(archive) as tar:
        return json.load(tar.extractfile(KERNEL_JSON.format(name)))


def _error(result, code=2):
    lines = result.output.strip().splitlines()
    assert result.exit_code == code, result.output
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0][len("Error: "):]


# ----- packing (no cluster): small real environments, packed for real by venv-pack and conda-pack

def test_pack_patches_every_kernelspec_once_and_leaves_the_source_alone(small_venv, packed_small_venv):
    packed_venv = packed_small_venv
    members = _members(packed_venv)
    for name in ("python3", "analytics"):
        assert members.count(KERNEL_JSON.format(name)) == 1
        assert _kernel(packed_venv, name)["argv"][0] == "python"
        source = json.loads((small_venv / KERNEL_JSON.format(name)).read_text())
        assert source["argv"][0] == str(small_venv / "bin" / "python")  # untouched
    site = next(small_venv.glob("lib/python3*/site-packages")).relative_to(small_venv)
    assert f"{site}/analytics_helpers/__init__.py" in members and "bin/analytics-helpers" in members
    # The patched files come after every file of the environment (only the packer's own
    # activation scripts and pyvenv.cfg follow): appended, nothing re-packed.
    env_files = [m for m in members if m not in ("pyvenv.cfg", "bin/activate", "bin/deactivate")
                 and not m.startswith("bin/activate.")]
    assert set(env_files[-2:]) == {KERNEL_JSON.format("python3"), KERNEL_JSON.format("analytics")}


def test_pack_writes_a_metadata_record(packed_small_venv):
    from skein_jupyter.packing import sha256_file

    packed_venv = packed_small_venv

    meta = json.loads(packed_venv.with_name(packed_venv.name + ".json").read_text())
    assert meta["sha256"] == sha256_file(packed_venv)
    assert meta["size"] == packed_venv.stat().st_size
    assert meta["kind"] == "venv" and meta["packer"].startswith("venv-pack ")
    assert meta["python"].startswith("3.") and meta["platform"].startswith("linux")
    assert {"skein", "ipykernel", "jupyter-server", "papermill"} <= set(meta["packages"])
    assert meta["kernels"] == {"analytics": "python", "python3": "python"}


def test_conda_pack_path_on_a_conda_layout_prefix(small_conda_envs, tmp_path):
    result = pack(tmp_path / "conda.tar.gz", prefix=str(small_conda_envs / "analytics"), n_threads=2)
    assert result.metadata["kind"] == "conda" and result.metadata["packer"].startswith("conda-pack ")
    members = _members(result.archive)
    assert members.count(KERNEL_JSON.format("python3")) == 1
    assert _kernel(result.archive, "python3")["argv"][0] == "python"
    assert "bin/activate" in members  # conda-pack's activation script, no conda-unpack needed
    assert [p.name for p in result.patched_kernels] == ["analytics", "python3"]


# ----- bad input: one line, exit 2, nothing half-written

def test_nonexistent_conda_env_and_prefix(tmp_path):
    out = tmp_path / "e.tar.gz"
    assert _error(CliRunner().invoke(cli, ["env", "pack", "--conda", "nosuchenv", "-o", str(out)])) \
        .startswith("no conda environment named 'nosuchenv' (looked in ")
    assert _error(CliRunner().invoke(cli, ["env", "pack", "--prefix", str(tmp_path / "nope"), "-o", str(out)])) \
        == f"environment prefix {tmp_path / 'nope'} does not exist; check the path"
    assert list(tmp_path.iterdir()) == []


def test_prefix_that_is_neither_conda_nor_venv(tmp_path):
    (tmp_path / "plain").mkdir()
    message = _error(CliRunner().invoke(cli, ["env", "pack", "--prefix", str(tmp_path / "plain"),
                                              "-o", str(tmp_path / "e.tar.gz")]))
    assert message == (f"{tmp_path / 'plain'} is neither a conda environment (no conda-meta/) nor a "
                       "virtualenv (no pyvenv.cfg); give the environment's root directory")


@pytest.mark.parametrize("output, fragment", [
    ("missing-dir/e.tar.gz", "output directory {t}/missing-dir does not exist; create it or choose another -o"),
    ("/proc/1/e.tar.gz", "output directory /proc/1 is not writable; choose another -o"),
    ("e.zip.txt", "must end in .tar.gz, .tgz, .zip, .tar"),
])
def test_bad_output_paths(small_venv, tmp_path, output, fragment):
    out = output if output.startswith("/") else str(tmp_path / output)
    message = _error(CliRunner().invoke(cli, ["env", "pack", "--venv", str(small_venv), "-o", out]))
    assert fragment.format(t=tmp_path) in message


def test_existing_output_needs_force(small_venv, tmp_path):
    out = tmp_path / "e.tar.gz"
    out.write_bytes(b"precious")
    message = _error(CliRunner().invoke(cli, ["env", "pack", "--venv", str(small_venv), "-o", str(out)]))
    assert message == f"{out} already exists; pass --force to replace it"
    assert out.read_bytes() == b"precious"


def test_missing_packages_are_listed_with_the_fix(tmp_path):
    bare = make_small_venv(tmp_path / "bare", packages=(), kernels=())  # python -m venv --without-pip
    runner = CliRunner()
    message = _error(runner.invoke(cli, ["env", "pack", "--venv", str(bare), "-o", str(tmp_path / "e.tar.gz"),
                                         "--for", "run"]))
    assert message == ("the environment lacks skein, papermill, ipykernel, needed for papermill runs: "
                       "install them (pip install skein papermill ipykernel)")
    message = _error(runner.invoke(cli, ["env", "pack", "--venv", str(bare), "-o", str(tmp_path / "e.tar.gz"),
                                         "--for", "kernel"]))
    assert message == ("the environment lacks skein, ipykernel, needed for YARN kernels: "
                       "install them (pip install skein ipykernel)")
    assert not list(tmp_path.glob("*.tar.gz*")) and not list(tmp_path.glob(".*partial*"))


def test_editable_install_is_our_error_not_a_packer_traceback(small_venv, tmp_path):
    env = tmp_path / "editable"
    shutil.copytree(small_venv, env, symlinks=True)
    project = tmp_path / "proj"
    (project / "src" / "myproj").mkdir(parents=True)
    (project / "src" / "myproj" / "__init__.py").write_text("")
    site = next(env.glob("lib/python3*/site-packages"))
    # What `pip install -e` leaves: a .pth file pointing outside the environment.
    (site / "__editable__.myproj-0.1.pth").write_text(str(project / "src") + "\n")
    result = CliRunner().invoke(cli, ["env", "pack", "--venv", str(env), "-o", str(tmp_path / "e.tar.gz")])
    message = _error(result)
    assert message.startswith(f"cannot pack {env}: Cannot pack an environment with editable packages")
    assert message.endswith("reinstall editable packages without -e (pip install PATH)")
    assert "Traceback" not in result.output
    assert not list(tmp_path.glob("*.tar.gz*")) and not list(tmp_path.glob(".*partial*"))


def test_upload_of_something_that_is_not_a_packed_environment(tmp_path):
    fake = tmp_path / "fake.tar.gz"
    fake.write_bytes(b"not an environment")
    assert _error(CliRunner().invoke(cli, ["env", "upload", str(fake)])) == (
        f"{fake} is not a packed environment (no valid metadata record fake.tar.gz.json beside it); "
        "pack one with `skein-jupyter env pack`")


# ----- on the cluster



@pytest.mark.yarn
def test_second_upload_transfers_nothing(packed_venv, sandbox):
    directory = f"hdfs:///tmp/envs-{uuid.uuid4().hex[:8]}"
    first = upload(packed_venv, to=directory)
    assert first.uploaded and first.url.startswith(directory + "/analytics-")
    fs = HadoopFS()
    before = fs.stat(first.url, "%b %Y")
    result = CliRunner().invoke(cli, ["env", "upload", str(packed_venv), "--to", directory])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"Already uploaded: {first.url} (same content); nothing transferred"
    assert fs.stat(first.url, "%b %Y") == before  # same size, same modification time
    assert before.split()[0] == str(packed_venv.stat().st_size)
    listed = list_environments(directory)
    assert [(r["name"], r["url"], r["public"]) for r in listed] == [("analytics", first.url, False)]


@pytest.mark.yarn
def test_public_upload_is_world_readable_and_listed(packed_venv, sandbox):
    directory = f"hdfs:///tmp/published-{uuid.uuid4().hex[:8]}"
    result = CliRunner().invoke(cli, ["env", "upload", str(packed_venv), "--to", directory, "--public"])
    assert result.exit_code == 0, result.output
    url = result.output.split()[1]
    fs = HadoopFS()
    assert fs.stat(url, "%a") == "644" and fs.stat(directory, "%a") == "755"
    listing = CliRunner().invoke(cli, ["env", "list", directory, "--json"])
    (record,) = json.loads(listing.output)
    assert record["public"] is True and record["python"].startswith("3.")


@pytest.mark.yarn
def test_upload_to_a_directory_you_cannot_write(packed_venv, sandbox, monkeypatch):
    # The sandbox's superuser may write anywhere; act as another HDFS user (simple auth).
    monkeypatch.setenv("HADOOP_USER_NAME", "nobody")
    message = _error(CliRunner().invoke(cli, ["env", "upload", str(packed_venv), "--to", "hdfs:///user/root/x"]))
    assert "Permission denied" in message
    assert message.endswith("choose a directory you can write to, or ask your Hadoop admin")


CHECK_ENV = textwrap.dedent("""\
    import json, os, stat, subprocess, sys
    import jupyter_client
    env_dir = os.path.realpath("environment")
    kernels = json.loads(subprocess.check_output(["jupyter", "kernelspec", "list", "--json"]))["kernelspecs"]
    km = jupyter_client.KernelManager(kernel_name="analytics")
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=120)
    outputs = []
    kc.execute_interactive("print(1 + 1)", timeout=120,
                           output_hook=lambda m: outputs.append(m["content"].get("text", "")))
    kc.stop_channels()
    km.shutdown_kernel(now=True)
    print("RESULT " + json.dumps({
        "prefix": sys.prefix, "prefix_real": os.path.realpath(sys.prefix), "env_dir": env_dir,
        "kernel_json_mode": oct(stat.S_IMODE(os.stat(os.path.join(
            kernels["analytics"]["resource_dir"], "kernel.json")).st_mode)),
        "argv0": kernels["analytics"]["spec"]["argv"][0],
        "kernel_dir": kernels["analytics"]["resource_dir"], "output": "".join(outputs)}))
    """)


@pytest.mark.yarn
def test_yarn_service_runs_the_packed_env_and_its_kernel(uploaded_venv, skein_client, submit, tmp_path):
    check = tmp_path / "check_env.py"
    check.write_text(CHECK_ENV)
    script = "\n".join([
        "source environment/bin/activate",
        shlex.join(["export", f"JUPYTER_RUNTIME_DIR={'$PWD'}/jupyter-runtime"]).replace("'", ""),
        "python check_env.py",
    ])
    service = skein.Service(
        resources=skein.Resources(memory="512 MiB", vcores=1),
        files={"environment": skein.File(uploaded_venv.url, type="archive"),
               "check_env.py": skein.File(str(check), type="file")},
        script=script)
    app_id = submit(skein.ApplicationSpec(name="env-check", queue="default", services={"check": service},
                                          master=skein.Master(resources=skein.Resources(memory="256 MiB", vcores=1))))
    report = wait_for_final_state(skein_client, app_id, 300)
    logs = application_logs(app_id, timeout=120)
    assert str(report.final_status) == "SUCCEEDED", logs[-3000:]
    line = next(text for text in logs.splitlines() if text.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    assert "/filecache/" in result["env_dir"] or "/usercache/" in result["env_dir"]  # YARN's localized copy
    assert result["prefix_real"] == result["env_dir"]
    assert int(result["kernel_json_mode"], 8) & 0o222 == 0  # YARN localizes files read-only
    assert result["argv0"] == "python"
    assert result["kernel_dir"].startswith(result["prefix"])
    assert result["output"].strip() == "2"


@pytest.mark.yarn
def test_prepare_uploads_a_local_archive_once_then_reuses_it_by_hash(packed_venv, sandbox, skein_client, tmp_path):
    from skein_jupyter.environment import EnvironmentRef
    from skein_jupyter.envstore import prepare
    from skein_jupyter.exceptions import UsageError

    copy = tmp_path / "mine.tar.gz"  # its own name, so its own upload
    shutil.copy2(packed_venv, copy)
    record = json.loads(packed_venv.with_name(packed_venv.name + ".json").read_text())
    record.update(name="mine", archive=copy.name, mtime_ns=copy.stat().st_mtime_ns)
    copy.with_name(copy.name + ".json").write_text(json.dumps(record))

    first = prepare(EnvironmentRef.parse(str(copy)))
    second = prepare(EnvironmentRef.parse(str(copy)))
    assert first.uploaded and not second.uploaded
    assert first.url == second.url and "/mine-" in first.url
    by_name = prepare(EnvironmentRef.parse("mine"))
    assert by_name.url == first.url and by_name.metadata["sha256"] == record["sha256"]
    by_url = prepare(EnvironmentRef.parse(first.url))
    assert by_url.url == first.url and not by_url.uploaded
    with pytest.raises(UsageError, match="no environment named 'nosuchenv' in hdfs:///user/"):
        prepare(EnvironmentRef.parse("nosuchenv"))
    from skein_jupyter.config import load_recipe
    from skein_jupyter.launch import submit as submit_recipe

    recipe, _ = load_recipe(kind="notebook", environ={}, flags={"environment": "hdfs:///nowhere/e.tar.gz",
                                                                "resources.memory": "1 GiB"})
    with pytest.raises(UsageError, match=r"^hdfs:/nowhere/e.tar.gz does not exist on the cluster; check the "
                                         r"environment, input notebook and files of the job"):
        submit_recipe(recipe, skein_client)
