"""The shell examples of the README and the docs, run against the sandbox.

Every line of every ``.. code-block:: bash`` block in README.rst and docs/ runs
here, as a user would type it, in a *stage*: a fresh directory per page holding
what the examples assume (``report.ipynb``, the repository's ``recipes/``, the
YAML files the page shows with a ``:caption:``), with the session's sandbox, its
published "analytics" environment and a conda environment named "analytics".
Each line must exit 0. ``APP_ID`` stands for the application id the page's
previous commands printed last; the few other stand-ins are in ``PLACES``. Lines
that cannot run here are in ``NOT_RUN``, each with the reason, and a
``.. code-block:: text`` with ``:class: output`` must match what the command
before it printed. Airflow's example (Python) runs its ``bash_command``.

Commands the docs only mention in prose are checked by test_docs.py (they
parse); the README's two named commands are what ``.ci/run`` runs.
"""
import ast
import getpass
import os
import re
import shutil
import subprocess
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import ACTIVE_STATES, submitted_here

ROOT = Path(__file__).resolve().parent.parent

#: Every page: README.rst and docs/ (the generated reference aside).
PAGES = sorted(str(path.relative_to(ROOT)) for path in [ROOT / "README.rst", *(ROOT / "docs").rglob("*.rst")]
               if "_generated" not in path.parts)

#: Pages with shell examples, in the order they run: the admin's guide uploads a new "analytics" last.
RUN_ORDER = ["docs/quickstart.rst", "docs/guides/notebook-users.rst", "docs/guides/batch-users.rst",
             "docs/guides/schedules.rst", "docs/guides/kernels.rst",
             "README.rst", "docs/guides/admins.rst"]

#: Pages run by test_guides_batch.py, in the other xdist worker while this module runs the rest
#: (the longest page; the two modules take about as long).
BATCH_PAGES = ["docs/guides/batch-users.rst"]

#: Pages that upload an environment named "analytics" (published): they run under the exclusive
#: "analytics" lock, held until :func:`uploads_restored` removed the uploads again, while
#: test_guides_batch.py, which resolves the name, holds it shared. (The quickstart's upload into the
#: user's cache is the same test virtualenv, removed only at this module's end, under that lock too.)
REPLACES_ANALYTICS = ["README.rst", "docs/guides/admins.rst"]

#: Lines that do not run here, and why (each must still be in the docs).
NOT_RUN = {
    "pip install -e .": "the project is installed already (.ci/run installs it with the README's commands)",
    "python -m venv ~/venvs/analytics": "the stage's ~/venvs/analytics is the session's test virtualenv "
                                        "(tests/conftest.py make_venv), made the same way",
    "~/venvs/analytics/bin/pip install skein ipykernel jupyterlab papermill": "see the line above",
    "ssh -N -L 8888:worker-17.example.com:41234 alice@edge.example.com": "an SSH tunnel from a laptop "
                                                                          "to a fictional edge node",
    "skein-jupyter sandbox down        # stop everything, containers included":
        "would stop the session's cluster; test_sandbox.py brings a second sandbox up and down",
}

#: Named blocks run elsewhere.
RUN_ELSEWHERE = {"main-command": ".ci/run", "test-command": ".ci/run"}

#: A cron entry's schedule (five fields) before its command.
CRON = re.compile(r"^(?:[\d*/,-]+\s+){5}")
APP_ID = re.compile(r"application_\d+_\d+")


@dataclass
class Block:
    page: str
    line: int
    language: str
    options: dict
    text: str

    @property
    def where(self):
        return f"{self.page}:{self.line}"


def code_blocks(page):
    """The ``.. code-block::`` directives of an rst page, in order."""
    lines = (ROOT / page).read_text().splitlines()
    blocks, index = [], 0
    while index < len(lines):
        match = re.match(r"^(\s*)\.\. code-block:: *(\S+)\s*$", lines[index])
        index += 1
        if not match:
            continue
        indent, language, options, body = len(match.group(1)), match.group(2), {}, []
        start = index
        while index < len(lines) and re.match(r"^\s+:(\w+):\s*(.*)$", lines[index]):
            key, value = re.match(r"^\s+:(\w+):\s*(.*)$", lines[index]).groups()
            options[key] = value
            index += 1
        while index < len(lines) and (not lines[index].strip()
                                      or len(lines[index]) - len(lines[index].lstrip()) > indent):
            body.append(lines[index])
            index += 1
        text = "\n".join(body).strip("\n")
        width = min((len(line) - len(line.lstrip()) for line in text.splitlines() if line.strip()), default=0)
        text = "\n".join(line[width:] for line in text.splitlines())
        blocks.append(Block(page, start, language, options, text))
    return blocks


def literal_blocks(page):
    """Text of the plain ``::`` literal blocks of a page (which the runner does not run)."""
    text = (ROOT / page).read_text()
    return re.findall(r"(?<!\.\. )\w[^\n]*::\n\n((?:[ \t]+.*\n|\n)+)", text)


def commands(block):
    """The commands of a bash block: continuation lines joined, blank and comment lines dropped."""
    found, parts = [], []
    for line in block.text.splitlines():
        stripped = line.strip()
        parts.append(stripped.rstrip("\\").strip())
        if not stripped.endswith("\\"):
            command = " ".join(part for part in parts if part)
            parts = []
            if command and not command.startswith("#"):
                found.append(command)
    return found


def airflow_command(block):
    """The ``bash_command`` of a BashOperator example, with Airflow's ``{{ ds }}`` rendered."""
    for node in ast.walk(ast.parse(block.text)):
        if isinstance(node, ast.keyword) and node.arg == "bash_command":
            return ast.literal_eval(node.value).replace("{{ ds }}", "2026-11-22")
    return None


def _normalized(text):
    text = APP_ID.sub("APP_ID", text)
    text = re.sub(r"/user/[^/\s]+/", "/user/USER/", text)
    text = re.sub(r"\b\d+(\.\d+)?s\b", "Ns", text)
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


@dataclass
class Stage:
    """A page's working directory and shell environment, and what its commands printed."""
    directory: Path
    env: dict
    places: dict
    app_id: str = None
    last_output: str = ""
    ran: list = field(default_factory=list)

    def run(self, command, where):
        for placeholder, value in self.places.items():
            command = command.replace(placeholder, value)
        command = CRON.sub("", command)
        if "APP_ID" in command:
            assert self.app_id, f"{where}: {command!r} uses APP_ID before any command printed one"
            command = command.replace("APP_ID", self.app_id)
        script = f"set -eo pipefail\n{command}"
        if command.startswith("eval "):  # keep what it exports for the page's later lines
            script += "\nenv -0 > .stage-env"
        proc = subprocess.run(["bash", "-c", script], cwd=self.directory, env=self.env,
                              capture_output=True, text=True, timeout=900)
        self.ran.append(command)
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, f"{where}: `{command}` exited {proc.returncode}\n{output}"
        assert "Traceback" not in output, f"{where}: `{command}` printed a traceback\n{output}"
        if command.startswith("eval "):
            pairs = (self.directory / ".stage-env").read_text().split("\0")
            self.env = dict(pair.split("=", 1) for pair in pairs if "=" in pair)
        found = APP_ID.findall(output)
        if found:
            self.app_id = found[-1]
        self.last_output = proc.stdout


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """What every stage holds: report.ipynb, recipes/, and the YAML files the pages show."""
    directory = tmp_path_factory.mktemp("stage-inputs")
    shutil.copy(ROOT / "recipes" / "notebooks" / "report.ipynb", directory / "report.ipynb")
    shutil.copytree(ROOT / "recipes", directory / "recipes")
    shutil.copy(ROOT / "recipes" / "notebooks" / "report.ipynb", directory / "recipes" / "report.ipynb")
    for page in RUN_ORDER:
        for block in code_blocks(page):
            if block.language == "yaml" and "caption" in block.options:
                (directory / block.options["caption"].split()[0]).write_text(block.text + "\n")
    return directory


def analytics_lock(tmp_path_factory, shared):
    """The session's lock on what the name "analytics" means (see :data:`REPLACES_ANALYTICS`)."""
    from conftest import file_lock, session_dir

    # Held for a whole module (the other's pages take up to about 20 minutes): a deadline, never a hang.
    return file_lock(session_dir(tmp_path_factory) / "guides-analytics.lock", shared=shared, timeout=2400)


class _Exclusive:
    """Takes the exclusive "analytics" lock on first use and holds it until the module's end."""

    def __init__(self, tmp_path_factory):
        self.tmp_path_factory, self.held = tmp_path_factory, None

    def __call__(self):
        if self.held is None:
            self.held = analytics_lock(self.tmp_path_factory, shared=False)
            self.held.__enter__()

    def release(self):
        if self.held is not None:
            self.held.__exit__(None, None, None)


@pytest.fixture(scope="module")
def replacing_analytics(tmp_path_factory):
    """Call it before a page that uploads "analytics": released after :func:`uploads_restored` removed them."""
    exclusive = _Exclusive(tmp_path_factory)
    yield exclusive
    exclusive.release()


@pytest.fixture(scope="module")
def uploads_restored(replacing_analytics, published, uploaded_venv, sandbox):
    """The pages upload environments named "analytics" (to the published directory and the
    user's cache); afterwards they are removed, so the name means the session's again.

    Only what the pages packed is removed (the names of the archives in their stages, see
    :data:`STAGES`): other workers' tests upload to the same directories meanwhile. While the pages
    run, "analytics" is not the session's environment: tests that resolve that name, or use the
    workspaces the pages use ("default", "lab"), belong in this module (or in test_guides_batch.py,
    which holds the "analytics" lock shared), not beside it."""
    from skein_jupyter.envstore import PUBLISHED_DIR, default_upload_dir, read_local_metadata, remote_name
    from skein_jupyter.exceptions import UsageError

    directories = [default_upload_dir(), PUBLISHED_DIR]

    def listing():
        proc = subprocess.run(["hdfs", "dfs", "-ls", "-C", *directories], capture_output=True, text=True,
                              timeout=120)
        return set(proc.stdout.split())

    before = listing()
    yield
    replacing_analytics()  # removing the quickstart's upload changes "analytics" too: under the exclusive lock
    names = set()
    for stage in STAGES:
        for record in stage.glob("*.json"):
            try:
                name = remote_name(read_local_metadata(record.with_suffix("")))
            except UsageError:
                continue  # not a packed environment's record
            names |= {name, f"{name}.json"}
    ours = sorted(path for path in listing() - before if path.rsplit("/", 1)[-1] in names)
    if ours:
        subprocess.run(["hdfs", "dfs", "-rm", "-skipTrash", *ours], check=True, capture_output=True,
                       timeout=120)
    assert not {path for path in listing() - before if path.rsplit("/", 1)[-1] in names}


#: The stage directories of the pages run so far (their packed archives are removed from HDFS at the end).
STAGES = []


@pytest.mark.yarn
@pytest.mark.parametrize("name, frontend, page", [("notebook-server", "lab", "lab"),
                                                  ("team-notebook", "notebook", "tree")])
def test_example_notebook_recipes_run(name, frontend, page, published, skein_client):
    """The repository's example server recipes name the published "analytics" and the workspaces
    "lab" and "default", as the pages do: so they run here, before the pages (one worker runs a module)."""
    import yaml
    from click.testing import CliRunner

    from skein_jupyter.cli import cli
    from skein_jupyter.config import load_recipe
    from skein_jupyter.notebook import start, stop

    def status(path):
        url = f"{server.protocol}://{server.host}:{server.port}{server.base_url}{path}"
        request = urllib.request.Request(url, headers={"Authorization": f"token {server.token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status

    recipe_path = ROOT / "recipes" / f"{name}.yaml"
    printed = CliRunner().invoke(cli, ["spec", str(recipe_path)])
    assert printed.exit_code == 0, printed.output
    env_file = yaml.safe_load(printed.output)["services"]["jupyter"]["files"]["environment"]
    assert (env_file["source"], env_file["visibility"]) == (published.url, "PUBLIC")
    recipe, _ = load_recipe(recipe_path, environ={})
    server = start(recipe, skein_client, timeout=600)
    try:
        assert server.frontend == frontend
        assert status(page) == 200
    finally:
        report = stop(skein_client, server.app_id)
    assert (str(report.state), str(report.final_status)) == ("FINISHED", "SUCCEEDED")


@pytest.mark.yarn
def test_dry_run_prints_the_spec_and_submits_nothing(uploaded_venv, published, skein_client):
    """The example sweep recipe names the published "analytics": here, before the pages upload another."""
    import yaml
    from click.testing import CliRunner

    from skein_jupyter.cli import cli

    before = submitted_here()
    recipe = ROOT / "recipes" / "sweep.yaml"
    printed = CliRunner().invoke(cli, ["run", str(recipe), "--dry-run", "--parallel", "2"])
    assert printed.exit_code == 0, printed.output
    spec = yaml.safe_load(printed.output)
    service = spec["services"]["papermill"]
    assert service["instances"] == 2 and service["files"]["environment"]["source"] == published.url
    assert service["files"]["input.ipynb"]["source"].endswith("recipes/notebooks/report.ipynb")
    assert "skein-jupyter-sweep" in spec["tags"]
    assert submitted_here() == before


@pytest.mark.yarn
@pytest.mark.parametrize("page", [page for page in RUN_ORDER if page not in BATCH_PAGES])
def test_the_shell_examples_of_the_page_run(page, inputs, test_venv, conda_envs, uploads_restored,
                                            replacing_analytics, skein_client, tmp_path):
    if page in REPLACES_ANALYTICS:
        replacing_analytics()
    run_page(page, inputs, test_venv, conda_envs, skein_client, tmp_path)


def run_page(page, inputs, test_venv, conda_envs, skein_client, tmp_path):
    """Run every shell example of ``page`` in a new stage; check the outputs the page shows."""
    blocks = code_blocks(page)
    stage_dir = tmp_path / "stage"
    shutil.copytree(inputs, stage_dir)
    STAGES.append(stage_dir)
    (stage_dir / "log").mkdir()
    env = dict(os.environ, CONDA_ENVS_PATH=str(conda_envs), USER=os.environ.get("USER") or getpass.getuser())
    # The page's schedules in a directory of its own: beside other tests and the user's own schedules.
    schedules = f"/tmp/skein-jupyter-guide-schedules-{uuid.uuid4().hex[:8]}"
    env["SKEIN_JUPYTER_SCHEDULES_DIR"] = schedules
    env["JUPYTER_DATA_DIR"] = str(stage_dir / "jupyter-data")  # the page's kernelspecs: not the user's own
    places = {
        "~/venvs/analytics": str(test_venv),             # a user's virtualenv
        "/opt/venvs/analytics": str(test_venv),          # an admin's virtualenv
        "/opt/reports/": f"{stage_dir}/recipes/",        # a scheduler's copy of the report and its recipe
        "/var/log/": f"{stage_dir}/log/",                # cron's log
        "${system.biz.date}": "2026-11-22",              # DolphinScheduler fills it in
    }
    stage = Stage(stage_dir, env, places)
    before = submitted_here()
    previous = None
    try:
        for block in blocks:
            if block.language == "bash" and block.options.get("name") not in RUN_ELSEWHERE:
                for command in commands(block):
                    if command not in NOT_RUN:
                        stage.run(command, block.where)
            elif block.language == "python" and "BashOperator" in block.text:
                command = airflow_command(block)
                assert command and command.startswith("skein-jupyter "), block.where
                stage.run(command, block.where)
            elif block.options.get("class") == "output":
                assert previous is not None and previous.language == "bash", \
                    f"{block.where}: an output block must follow a bash block"
                shown, printed = _normalized(block.text), _normalized(stage.last_output)
                assert shown == printed[-len(shown):], \
                    f"{block.where}: the docs show\n{block.text}\nbut the command printed\n{stage.last_output}"
            previous = block
    finally:
        if "schedule" in "".join(block.text for block in blocks):  # its scheduler, then its schedules
            subprocess.run(["skein-jupyter", "scheduler", "stop"], env=env, cwd=stage_dir, capture_output=True,
                           timeout=300)
            subprocess.run(["hdfs", "dfs", "-rm", "-r", "-f", "-skipTrash", schedules], env=env, capture_output=True,
                           timeout=300)
        for app_id in submitted_here() - before:  # servers the page started and left running
            if str(skein_client.application_report(app_id).state) in ACTIVE_STATES:
                skein_client.kill_application(app_id)
    shown = [command for block in blocks if block.language == "bash"
             and block.options.get("name") not in RUN_ELSEWHERE for command in commands(block)]
    airflow = sum(block.language == "python" and "BashOperator" in block.text for block in blocks)
    assert len(stage.ran) == len([c for c in shown if c not in NOT_RUN]) + airflow > 0


def test_every_shell_example_is_in_a_block_that_runs():
    """Commands in plain ``::`` blocks would not run here: the docs put them in bash blocks."""
    with_examples = {page for page in PAGES if any(block.language in ("bash", "python")
                                                   for block in code_blocks(page))}
    assert with_examples == set(RUN_ORDER), "a page with shell examples: add it to RUN_ORDER"
    assert set(BATCH_PAGES) <= set(RUN_ORDER) and not set(BATCH_PAGES) & set(REPLACES_ANALYTICS)
    uploading = {page for page in RUN_ORDER for block in code_blocks(page) if block.language == "bash"
                 for command in commands(block) if re.search(r"skein-jupyter env upload|--env \S+\.tar\.gz", command)
                 and "analytics" in command}
    assert uploading - {"docs/quickstart.rst"} == set(REPLACES_ANALYTICS), \
        f"pages that upload an environment named analytics: {sorted(uploading)}; list them in REPLACES_ANALYTICS"
    for page in PAGES:
        for text in literal_blocks(page):
            for line in text.splitlines():
                assert not re.match(r"\s*(skein-jupyter|hdfs|yarn|python|pip) ", line), \
                    f"{page}: `{line.strip()}` is in a plain literal block; use `.. code-block:: bash`"
    every_line = {command for page in PAGES for block in code_blocks(page) if block.language == "bash"
                  for command in commands(block)}
    assert set(NOT_RUN) <= every_line, f"NOT_RUN names lines the docs no longer have: {set(NOT_RUN) - every_line}"
    assert set(RUN_ELSEWHERE) <= {block.options.get("name") for page in PAGES for block in code_blocks(page)}


def test_the_runner_reads_blocks_as_written():
    """The block reader itself: options, dedent, continuations, comments, the cron schedule, Airflow."""
    blocks = code_blocks("docs/guides/batch-users.rst")
    yaml_files = {b.options["caption"].split()[0]: b.text for b in blocks if b.language == "yaml" and "caption" in b.options}
    assert yaml_files == {"sets.yaml": "- {alpha: 0.1, n: 10}\n- {alpha: 0.5, n: 100}",
                          "grid.yaml": "alpha: [0.1, 0.5, 1.0]\nn: [10, 100]"}
    cron = next(c for b in blocks if b.language == "bash" for c in commands(b) if c.startswith("0 2"))
    assert CRON.sub("", cron).startswith("skein-jupyter run /opt/reports/nightly-report.yaml -q >>")
    airflow = airflow_command(next(b for b in blocks if b.language == "python"))
    assert airflow == ("skein-jupyter run /opt/reports/report.ipynb --env analytics -q -p run_date 2026-11-22 "
                       "--output hdfs:///reports/nightly/2026-11-22 --html")
    assert commands(Block("x", 1, "bash", {}, "a \\\n  b\n# c\n\nd  # e")) == ["a b", "d  # e"]
    assert _normalized("Run application_1_2 succeeded in 4.5s\n  at /user/bob/x") == \
        ["Run APP_ID succeeded in Ns", "at /user/USER/x"]
