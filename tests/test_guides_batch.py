"""The batch users' guide and the example run recipes, run as test_guides.py runs its pages.

A module of its own so that pytest-xdist (``--dist loadfile``) runs it in
one worker while the other runs test_guides.py: the two take about as long.
Both resolve the name "analytics", so this module holds the session's
"analytics" lock shared while test_guides.py's pages that upload an
"analytics" of their own hold it exclusively (see
:data:`test_guides.REPLACES_ANALYTICS`). The example run recipes are here
with the batch guide because both write ``recipes/nightly-report.yaml``'s
fixed output directory.
"""
import json

import pytest

from test_guides import BATCH_PAGES, ROOT, analytics_lock, inputs, run_page  # noqa: F401 (inputs: a fixture)


@pytest.fixture(scope="module", autouse=True)
def analytics_shared(tmp_path_factory):
    with analytics_lock(tmp_path_factory, shared=True):
        yield


@pytest.mark.yarn
@pytest.mark.parametrize("name", ["nightly-report", "sweep"])
def test_example_run_recipes_run(name, published, skein_client):
    """The example run recipes name the published "analytics", as the pages do."""
    from skein_jupyter.config import load_recipe
    from skein_jupyter.hdfs import HadoopFS
    from skein_jupyter.runs import start_and_follow

    recipe, _ = load_recipe(ROOT / "recipes" / f"{name}.yaml", environ={})
    submission, outcome = start_and_follow(recipe, skein_client)
    failed = [(r["set"], r["status"], r["ename"], r["evalue"], r["duration"]) for r in outcome.results
              if r["status"] != "succeeded"]
    assert outcome.status == "succeeded", (outcome.app_id, outcome.diagnostics, failed)
    assert outcome.summary["output"] == recipe.run.output
    expected = 6 if name == "sweep" else 1
    assert len(outcome.results) == expected
    for r in outcome.results:
        assert "total=" in json.dumps(json.loads(HadoopFS().cat(r["output"])))
    if name == "nightly-report":
        assert outcome.results[0]["html"] and HadoopFS().exists(outcome.results[0]["html"])


@pytest.mark.yarn
@pytest.mark.parametrize("page", BATCH_PAGES)
def test_the_shell_examples_of_the_page_run(page, inputs, test_venv, conda_envs, published, uploaded_venv,  # noqa: F811
                                            skein_client, tmp_path):
    run_page(page, inputs, test_venv, conda_envs, skein_client, tmp_path)
