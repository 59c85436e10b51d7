"""Lint (ruff) and type checks (mypy) of the project, as part of the fast tier.

Both tools come with the ``test`` extra; their settings are in pyproject.toml
(``[tool.ruff]``) and setup.cfg (``[mypy]``). The public API (every ``__all__``)
must be annotated, so that mypy checks it and its callers.
"""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args):
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_finds_nothing():
    result = _run("ruff", "check", "--output-format", "concise", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_nothing():
    result = _run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def _public_modules():
    import importlib
    import pkgutil

    import skein_jupyter

    yield skein_jupyter
    for info in pkgutil.walk_packages(skein_jupyter.__path__, "skein_jupyter."):
        if info.name.rsplit(".", 1)[-1] != "__main__":
            yield importlib.import_module(info.name)


def _public_callables(module):
    """``(qualified name, function)`` for each function in the module's ``__all__``,
    and each public method (and a constructor written in the class) of a class
    in it. A dataclass's generated ``__init__`` is annotated through its fields."""
    import inspect

    for name in getattr(module, "__all__", ()):
        obj = getattr(module, name)
        if inspect.isfunction(obj):
            yield f"{module.__name__}.{name}", obj
        elif inspect.isclass(obj):
            for attr, value in vars(obj).items():
                if attr.startswith("_") and attr != "__init__":
                    continue
                if isinstance(value, (staticmethod, classmethod)):
                    value = value.__func__
                elif isinstance(value, property):
                    value = value.fget
                if inspect.isfunction(value):
                    yield f"{module.__name__}.{name}.{attr}", value


def test_public_api_is_annotated():
    """Every function (and public method) named in an ``__all__`` under
    skein_jupyter has annotations on all its parameters and its return."""
    import inspect

    missing = []
    for module in _public_modules():
        for qualname, function in _public_callables(module):
            signature = inspect.signature(function)
            unannotated = [p.name for p in signature.parameters.values()
                           if p.name not in ("self", "cls") and p.annotation is inspect.Parameter.empty]
            if signature.return_annotation is inspect.Signature.empty:
                unannotated.append("return")
            if unannotated:
                missing.append(f"{qualname}: {', '.join(unannotated)}")
    assert not missing, "unannotated public API:\n" + "\n".join(sorted(set(missing)))
