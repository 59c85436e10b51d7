"""The JupyterLab scheduling backend's pure logic: statuses and the admin's resource profiles (no cluster)."""
import pytest

from skein_jupyter.exceptions import UsageError
from skein_jupyter.jupyter_scheduler import profiles


def test_yarn_states_map_onto_job_statuses():
    backend = pytest.importorskip("skein_jupyter.jupyter_scheduler.backend")
    cases = {("ACCEPTED", "UNDEFINED"): "QUEUED", ("RUNNING", "UNDEFINED"): "IN_PROGRESS",
             ("FINISHED", "SUCCEEDED"): "COMPLETED", ("FINISHED", "FAILED"): "FAILED",
             ("FAILED", "FAILED"): "FAILED", ("KILLED", "KILLED"): "STOPPED",
             ("FINISHED", "KILLED"): "STOPPED"}  # a stopped run saves its output, then ends FINISHED/KILLED
    assert {case: str(backend.job_status(*case)) for case in cases} == cases
    saved = {"succeeded": "COMPLETED", "stopped": "STOPPED", "failed": "FAILED", "timed_out": "FAILED", None: "FAILED"}
    assert {status: str(backend.saved_status(status)) for status in saved} == saved


def test_a_definition_edit_changes_only_what_differs():
    backend = pytest.importorskip("skein_jupyter.jupyter_scheduler.backend")
    record = {"name": "daily", "input_filename": "report.ipynb", "schedule": "0 6 * * *", "timezone": None,
              "parameters": {"alpha": "1"}, "active": True}
    # what JupyterLab's edit form sends on every Save, nothing changed
    ui = {"schedule": "0 6 * * *", "timezone": "UTC", "input_uri": "reports/report.ipynb", "url": None}
    assert backend.definition_changes(record, ui) == {}
    assert backend.definition_changes(record, {**ui, "schedule": "0 7 * * *", "active": False}) == {
        "schedule": "0 7 * * *", "active": False}
    assert backend.definition_changes(record, {"input_uri": "other.ipynb", "parameters": {"alpha": "2"}}) == {
        "input_uri": "other.ipynb", "parameters": {"alpha": "2"}}


def _scheduler(root):
    backend = pytest.importorskip("skein_jupyter.jupyter_scheduler.backend")
    from skein_jupyter.jupyter_scheduler.environments import YarnEnvironments

    return backend.YarnScheduler(root_dir=str(root), environments_manager=YarnEnvironments(), warm_up=False)


def test_notebooks_outside_the_server_root_are_refused(tmp_path):
    from jupyter_scheduler.exceptions import InputUriError, SchedulerError

    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.ipynb").write_text("{}")
    (tmp_path / "secret.ipynb").write_text("{}")
    scheduler = _scheduler(root)
    assert scheduler._input_path("sub/a.ipynb") == str((root / "sub" / "a.ipynb").resolve())
    for uri in ("../secret.ipynb", str(tmp_path / "secret.ipynb"), "sub/../../secret.ipynb"):
        with pytest.raises(InputUriError, match="is outside the server's root directory"):
            scheduler._input_path(uri)
    with pytest.raises(SchedulerError, match="missing.ipynb does not exist under the server's root"):
        scheduler._input_path("missing.ipynb")  # a SchedulerError too: an edit's refusal says why (not a 500)


def test_jobs_are_listed_page_by_page(tmp_path):
    import asyncio

    from jupyter_scheduler.models import DescribeJob, ListJobsQuery

    scheduler = _scheduler(tmp_path)
    jobs = [DescribeJob(name=f"j{i}", input_filename="a.ipynb", runtime_environment_name="e", job_id=f"yarn-{i}",
                        url="", create_time=i, update_time=i, output_formats=[]) for i in range(30)]
    scheduler._jobs = lambda: list(jobs)
    scheduler.add_job_files = lambda job: None
    first = asyncio.run(scheduler.list_jobs(ListJobsQuery(max_items=25)))
    assert (len(first.jobs), first.total_count, first.next_token) == (25, 30, "25")
    rest = asyncio.run(scheduler.list_jobs(ListJobsQuery(max_items=25, next_token=first.next_token)))
    newest_first = [f"j{i}" for i in range(29, -1, -1)]  # the default order: create_time, descending
    assert [j.name for j in first.jobs + rest.jobs] == newest_first and (rest.total_count, rest.next_token) == (30, None)


def test_the_first_job_record_makes_its_directory_even_after_an_empty_listing(tmp_path, monkeypatch):
    """The UI lists jobs before the first is created: an empty read must not skip the mkdir."""
    from skein_jupyter.jupyter_scheduler import store

    class Directories:  # only what Store calls, recording it: the directory logic, no cluster
        def __init__(self):
            self.made, self.written = [], []

        def cat(self, *patterns):
            return ""

        def mkdir(self, path):
            self.made.append(path)

        def put(self, sources, target):
            assert target.rstrip("/") in self.made, "put before its directory was made"
            self.written.append(target)

    monkeypatch.setenv(store.DIR_VARIABLE, "/base")
    fs = Directories()
    records = store.Store(fs)  # type: ignore[arg-type]
    assert records.job_records() == {}
    records.put_job({"app_id": "application_1_0001"})
    records.put_job({"app_id": "application_1_0002"})
    assert fs.made == ["/base/jobs"] and len(fs.written) == 2


def test_profiles_file_sets_recipe_fields_and_bad_files_are_refused(tmp_path, monkeypatch):
    path = tmp_path / "profiles.yaml"
    path.write_text("default: big\nprofiles:\n  small: {memory: 1 GiB}\n  big: {memory: 8 GiB, vcores: 4, "
                    "queue: batch, timeout: 2h}\n")
    monkeypatch.setenv(profiles.PROFILES_VARIABLE, str(path))
    assert profiles.profile_flags(None) == {"resources.memory": "8 GiB", "resources.vcores": 4, "queue": "batch",
                                            "run.timeout": "2h"}
    assert profiles.profile_flags("small") == {"resources.memory": "1 GiB"}
    with pytest.raises(UsageError, match="no resource profile 'huge'"):
        profiles.profile_flags("huge")
    for text, message in (("profiles: {a: {cpus: 2}}\n", "a profile sets"), ("default: x\nprofiles: {a: {}}\n",
                                                                             "not one of its profiles"),
                          ("profiles: []\n", "no profiles")):
        path.write_text(text)
        with pytest.raises(UsageError, match=message):
            profiles.load_profiles()
    monkeypatch.delenv(profiles.PROFILES_VARIABLE)
    monkeypatch.setattr(profiles, "DEFAULT_FILE", str(tmp_path / "absent.yaml"))
    assert profiles.load_profiles() == (profiles.BUILTIN["profiles"], "small")


def test_a_damaged_record_hides_only_itself():
    import json

    from skein_jupyter.jupyter_scheduler.store import _objects

    job = json.dumps({"app_id": "application_1_1"}) + "\n"
    definition = json.dumps({"name": "js-1", "nested": {"a": 1}}, indent=1) + "\n"
    assert _objects(job + '{"app_id": "applica\n' + definition) == [json.loads(job), json.loads(definition)]
    assert _objects(job + "not json\n" + job) == [json.loads(job)] * 2
    assert _objects("") == []
