"""The JupyterLab scheduling backend's pure logic: statuses and the admin's resource profiles (no cluster)."""
import pytest

from skein_jupyter.exceptions import UsageError
from skein_jupyter.jupyter_scheduler import profiles


def test_yarn_states_map_onto_job_statuses():
    backend = pytest.importorskip("skein_jupyter.jupyter_scheduler.backend")
    cases = {("ACCEPTED", "UNDEFINED"): "QUEUED", ("RUNNING", "UNDEFINED"): "IN_PROGRESS",
             ("FINISHED", "SUCCEEDED"): "COMPLETED", ("FINISHED", "FAILED"): "FAILED",
             ("FAILED", "FAILED"): "FAILED", ("KILLED", "KILLED"): "STOPPED"}
    assert {case: str(backend.job_status(*case)) for case in cases} == cases


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
