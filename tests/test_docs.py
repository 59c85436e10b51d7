"""The docs build with warnings as errors, and the generated reference covers every command and field."""
import subprocess
import sys
from pathlib import Path

import click
import pytest

from skein_jupyter.cli import cli
from skein_jupyter.config import env_var_name
from skein_jupyter.recipe import field_paths

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("docs")
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                           str(ROOT / "docs"), str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def _commands(group, prefix=("skein-jupyter",)):
    for name, command in group.commands.items():
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))


def test_every_command_and_option_is_in_the_cli_reference(built):
    page = (built / "reference" / "cli.html").read_text()
    for path, command in _commands(cli):
        assert " ".join(path) in page, f"{' '.join(path)} is missing from the CLI reference"
        for param in command.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("--"):
                    assert opt in page, f"{' '.join(path)} {opt} is missing from the CLI reference"


def test_every_recipe_field_is_in_the_schema_reference(built):
    page = (built / "reference" / "recipes.html").read_text()
    for path, _ in field_paths():
        assert path in page and env_var_name(path) in page, path


def test_the_exit_codes_in_the_readme_and_docs_are_the_libraries(built):
    from skein_jupyter.exceptions import EXIT_CODES

    readme = " ".join((ROOT / "README.rst").read_text().split())
    page = " ".join((built / "reference" / "exit-codes.html").read_text().split())
    for code, text in EXIT_CODES.items():
        assert f"{code} {text}" in readme, f"exit code {code} differs in README.rst"
        assert text.replace("(", "").split(";")[0].split(",")[0] in page.replace("(", ""), code


def test_key_value_keys_are_documented(built):
    page = (built / "reference" / "kv-keys.html").read_text()
    from skein_jupyter.runtime import keys

    names = [name for name in vars(keys) if name.isupper() and not name.endswith("PREFIX")]
    assert len(names) >= 12
    for name in names:
        key = getattr(keys, name)
        shown = [key + "&lt;set&gt;", key + "&lt;step&gt;"] if key.endswith(".") else [key]
        assert any(text in page for text in shown), name


def _example_command_lines():
    """Every ``skein-jupyter ...`` command shown in the README and the docs, as argument lists."""
    import re
    import shlex

    files = [ROOT / "README.rst", *sorted((ROOT / "docs").rglob("*.rst"))]
    for path in files:
        if "_generated" in path.parts:
            continue
        for line in path.read_text().splitlines():
            for part in re.split(r"&&|\|\||;|\$\(|\)", line):
                part = part.split(" # ", 1)[0].strip().strip('"')
                if part.startswith("skein-jupyter "):
                    yield path.name, shlex.split(part)[1:]


def test_every_example_command_in_the_docs_parses():
    """Commands and options in the guides exist: each example is parsed by the CLI (with --help, so
    nothing runs); a renamed command or option fails here."""
    from click.testing import CliRunner

    examples = list(_example_command_lines())
    assert len(examples) > 30
    for name, args in examples:
        result = CliRunner().invoke(cli, [*args, "--help"])
        assert result.exit_code == 0, f"{name}: skein-jupyter {' '.join(args)}\n{result.output}"


def test_the_api_page_covers_the_public_api_of_the_library():
    """Every public name of the modules a caller uses is on the API page (docs/reference/api.rst)."""
    import importlib

    page = (ROOT / "docs" / "reference" / "api.rst").read_text()
    covered = {"skein_jupyter.notebook": ["start", "info", "list_servers", "stop", "tunnel"],
               "skein_jupyter.runs": ["start", "start_and_follow", "follow", "status", "kill", "fetch"],
               "skein_jupyter.outcome": None, "skein_jupyter.preflight": None, "skein_jupyter.runtime.job": None,
               "skein_jupyter.identity": ["hadoop_user"], "skein_jupyter.exceptions": None}
    for module, names in covered.items():
        assert f".. automodule:: {module}\n" in page, module
        section = page.split(f".. automodule:: {module}\n", 1)[1].split(".. automodule::", 1)[0]
        if ":members:\n" in section:
            continue  # every member
        for name in names or [n for n in importlib.import_module(module).__all__ if not n.isupper() or n in
                              ("OUTPUT_PLACEHOLDERS",)]:
            assert name in section, f"{module}.{name} is not on the API page"
