"""The install declares what the client imports: every module imports from it.

Run from the virtualenv `.ci/run` makes with the README's commands, so a
package installed by hand on the machine cannot hide a missing declaration.
"""
import ast
import importlib
import pkgutil
import sys
from importlib import metadata
from pathlib import Path

import pytest

import skein_jupyter

PACKAGE_DIR = Path(skein_jupyter.__file__).resolve().parent
#: Import names of declared distributions (import name -> distribution name).
IMPORT_NAMES = {"yaml": "pyyaml", "venv_pack": "venv-pack", "conda_pack": "conda-pack"}


def client_modules():
    # The runtime is shipped to the container as its own zip and runs there
    # from the packed environment; everything else runs on the edge node.
    return sorted(info.name for info in pkgutil.walk_packages([str(PACKAGE_DIR)], "skein_jupyter.")
                  if not info.name.startswith("skein_jupyter.runtime."))


@pytest.mark.parametrize("module", client_modules())
def test_client_module_imports(module):
    importlib.import_module(module)


def _third_party_imports():
    found = set()
    for path in PACKAGE_DIR.rglob("*.py"):
        if {"runtime", "jupyter_scheduler"} & set(path.relative_to(PACKAGE_DIR).parts):
            continue  # the container's own, and the optional extra `scheduler` (jupyter-scheduler, traitlets)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {name for name in found if name not in sys.stdlib_module_names and name != "skein_jupyter"}


def test_every_imported_package_is_declared():
    requires = metadata.requires("skein-jupyter") or []
    declared = {req.split(";")[0].split("[")[0].split("=")[0].split(">")[0].split("<")[0].split("!")[0].strip().lower()
                for req in requires if "extra ==" not in req}
    missing = sorted(name for name in _third_party_imports()
                     if IMPORT_NAMES.get(name, name).lower().replace("_", "-") not in declared)
    assert not missing, f"imported by the client but not in setup.cfg's install_requires: {missing}"


def test_packers_import():
    # `env pack` needs both: the README's first command packs a virtualenv.
    import conda_pack
    import venv_pack

    assert venv_pack.__version__ and conda_pack.__version__
