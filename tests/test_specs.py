"""The example recipes render to the specs in specs/, and those specs load in Skein. No cluster."""
import json
import os
from pathlib import Path

import pytest
import skein

from skein_jupyter.config import load_recipe
from skein_jupyter.runtime.job import from_json
from skein_jupyter.spec import JOB_FILE, SpecContext, build_spec, spec_to_yaml

ROOT = Path(__file__).resolve().parent.parent
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))
SPECS = ROOT / "specs"


def render(recipe_path, tmp_path):
    """The spec YAML and the job JSON of a recipe; the spec names the job file beside it in specs/."""
    # Isolated from the developer's own config file and SKEIN_JUPYTER_* variables.
    recipe, _ = load_recipe(recipe_path, environ={}, config_path=tmp_path / "none.yaml")
    job_path = tmp_path / JOB_FILE
    spec = build_spec(recipe, SpecContext.example(recipe), job_path=str(job_path))
    for service in spec.services.values():  # a flow's services all read the one job
        service.files[JOB_FILE] = skein.File(str(SPECS / f"{recipe_path.stem}.job.json"), type="file",
                                             visibility="application")
    job = json.dumps(json.loads(job_path.read_text()), indent=2, sort_keys=True) + "\n"
    return spec_to_yaml(spec, relative_to=SPECS), job


def test_there_are_example_recipes_of_every_kind():
    kinds = {load_recipe(path, environ={})[0].kind for path in RECIPES}
    assert kinds == {"notebook", "run", "sweep", "flow"}


@pytest.mark.parametrize("recipe_path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_renders_to_its_checked_in_spec(recipe_path, tmp_path):
    expected = SPECS / f"{recipe_path.stem}.yaml"
    expected_job = SPECS / f"{recipe_path.stem}.job.json"
    rendered, job = render(recipe_path, tmp_path)
    if os.environ.get("SKEIN_JUPYTER_REGENERATE_SPECS"):
        expected.write_text(rendered)
        expected_job.write_text(job)
    assert expected.is_file(), f"no {expected}; regenerate: see specs/README.rst"
    assert expected.read_text() == rendered, f"{expected} is stale; regenerate: see specs/README.rst"
    assert expected_job.read_text() == job, f"{expected_job} is stale; regenerate: see specs/README.rst"


def test_an_environment_name_is_never_guessed_into_a_url(tmp_path):
    from skein_jupyter.exceptions import UsageError

    recipe, _ = load_recipe(RECIPES[0], environ={}, config_path=tmp_path / "none.yaml")
    assert recipe.environment.kind.name == "NAME"
    with pytest.raises(UsageError, match="is a name, not yet resolved"):
        build_spec(recipe, SpecContext.example(), job_path=str(tmp_path / JOB_FILE))
    assert not (tmp_path / JOB_FILE).exists()


def test_every_spec_has_a_recipe():
    assert sorted(p.stem for p in SPECS.glob("*.yaml")) == [p.stem for p in RECIPES]
    assert sorted(p.name[:-len(".job.json")] for p in SPECS.glob("*.job.json")) == [p.stem for p in RECIPES]


@pytest.mark.parametrize("recipe_path", RECIPES, ids=[p.stem for p in RECIPES])
def test_checked_in_spec_loads_in_skein_with_local_files_found(recipe_path):
    spec = skein.ApplicationSpec.from_file(str(SPECS / f"{recipe_path.stem}.yaml"))
    for service in spec.services.values():
        for name, file in service.files.items():
            if file.source.startswith("file://"):
                assert Path(file.source[len("file://"):]).is_file(), f"{name}: {file.source} is missing"
        job = from_json(Path(service.files[JOB_FILE].source[len("file://"):]).read_text())
        assert job.kind in ("notebook", "run", "sweep", "flow") and job.user == "alice"
        assert set(service.env) == {"PYTHONPATH"}  # the job, parameters and env values travel in job.json only
    assert "token" not in json.dumps(spec.to_dict()).lower()
