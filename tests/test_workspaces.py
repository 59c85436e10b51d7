"""Where workspaces are and which overlap (pure logic; the sandbox tests are in test_workspace.py)."""
import pytest

from skein_jupyter.exceptions import UsageError
from skein_jupyter.workspaces import overlapping_tags, tags, workspace_path


@pytest.mark.parametrize("value, path", [
    ("default", "/user/ann/skein-jupyter/workspaces/default"),
    ("hdfs:///data/team//churn/", "/data/team/churn"),
    ("hdfs:///user/ann/projects/x", "/user/ann/projects/x"),
])
def test_workspace_paths(value, path):
    assert workspace_path(value, "ann") == path


@pytest.mark.parametrize("value, fragment", [
    ("hdfs:///user/ann", "holds more than one project"),
    ("hdfs:///user/ann/skein-jupyter", "holds more than one project"),
    ("hdfs:///user/ann/skein-jupyter/workspaces", "holds more than one project"),
    ("hdfs:///user/ann/skein-jupyter/workspaces/study/sub", "give its name (--workspace study)"),
    ("hdfs:///user/ann/.skein", "is a hidden directory"),
])
def test_workspaces_that_hold_or_hide_others_are_refused(value, fragment):
    with pytest.raises(UsageError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        workspace_path(value, "ann")


@pytest.mark.parametrize("live, new, overlap", [
    ("/data/team/churn", "/data/team/churn", True),
    ("/data/team", "/data/team/churn", True),        # the live server's workspace holds the new one
    ("/data/team/churn/sub", "/data/team/churn", True),  # the new one holds the live one's
    ("/data/team/churn", "/data/team/churn2", False),
    ("/data/a", "/data/b", False),
])
def test_overlapping_workspaces_are_found_by_their_tags(live, new, overlap):
    assert bool(overlapping_tags(new) & tags(live)) is overlap
    assert all(len(t) <= 100 and t == t.lower() for t in tags(live))  # what YARN keeps of a tag
