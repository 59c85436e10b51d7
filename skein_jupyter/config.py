"""Configuration layers and where each value came from.

Lowest first: packaged defaults (the recipe dataclasses' defaults), the
user config file, ``SKEIN_JUPYTER_*`` environment variables, the recipe file,
then command-line flags. Mapping-valued fields (``env``, ``files``,
``run.parameters``, ``run.papermill_options``) merge key by key across layers;
everything else is replaced by the higher layer.

The user config file has the shape of a recipe without ``kind``; its
``notebook:``, ``run:`` and ``sweep:`` sections apply to jobs of that kind only.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .exceptions import UsageError
from .recipe import KIND_SECTIONS, _section_kinds, build, field_paths

if TYPE_CHECKING:
    from .recipe import Recipe

__all__ = ["Layers", "user_config_path", "env_var_name", "load_recipe", "read_yaml_mapping", "explain"]

DEFAULT = "default"
_MERGED_MAPPINGS = {"env", "files", "run.parameters", "run.papermill_options"}
_PATHS = dict(field_paths())


def user_config_path() -> Path:
    """``$SKEIN_JUPYTER_CONFIG``, else ``$XDG_CONFIG_HOME/skein-jupyter/config.yaml``."""
    if os.environ.get("SKEIN_JUPYTER_CONFIG"):
        return Path(os.environ["SKEIN_JUPYTER_CONFIG"]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "skein-jupyter" / "config.yaml"


def env_var_name(path: str) -> str:
    """``resources.memory`` -> ``SKEIN_JUPYTER_RESOURCES_MEMORY``."""
    return "SKEIN_JUPYTER_" + path.upper().replace(".", "_")


def read_yaml_mapping(path: str | os.PathLike[str], what: str) -> dict:
    """A YAML file that must hold a mapping; errors name the file and the fix."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{what} {path} does not exist; check the path")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise UsageError(f"{what} {path} is not valid YAML{where}: {problem}; fix the syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"{what} {path} must be a mapping of `key: value` lines, not a {type(data).__name__}")
    return data


def _flatten(data, prefix=""):
    """Nested raw values -> {dotted path: value}, stopping at schema leaves."""
    flat = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and path not in _PATHS and isinstance(key, str):
            flat.update(_flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def _nest(flat):
    nested = {}
    for path, value in flat.items():
        *parents, leaf = path.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break  # a section given as a scalar: the model reports it
        else:
            node[leaf] = value
    return nested


@dataclasses.dataclass
class Layers:
    """Raw values from each configuration layer, merged on demand for one kind of job."""

    layers: list = dataclasses.field(default_factory=list)  # (source, {path: value}, kind-filtered?)

    def add(self, source: str, data: Mapping[str, Any] | None, filter_kinds: bool = True) -> Layers:
        """Add a layer. ``filter_kinds``: drop sections that do not apply to the job's kind."""
        if data:
            self.layers.append((source, _flatten(data), filter_kinds))
        return self

    def add_user_config(self, path: str | os.PathLike[str] | None = None) -> Layers:
        path = Path(path) if path else user_config_path()
        if path.is_file():
            data = read_yaml_mapping(path, "config file")
            if "kind" in data:
                raise UsageError(f"config file {path}: kind belongs in a recipe, not in the config file; "
                                 "remove it")
            self.add(str(path), data)
        return self

    def add_environment(self, environ: Mapping[str, str] | None = None) -> Layers:
        """One layer per ``SKEIN_JUPYTER_<FIELD>`` variable set; values are read as YAML."""
        environ = os.environ if environ is None else environ
        for path in _PATHS:
            name = env_var_name(path)
            if path == "kind" or name not in environ:
                continue
            try:
                value = yaml.safe_load(environ[name])
            except yaml.YAMLError:
                value = environ[name]
            self.layers.append((name, {path: value}, True))
        return self

    def merged(self, kind: str) -> tuple[dict, dict[str, str]]:
        """``(raw nested values, {path: source})`` for a job of ``kind``."""
        values: dict = {}
        sources: dict[str, str] = {}
        for source, flat, filter_kinds in self.layers:
            for path, value in flat.items():
                section = path.split(".", 1)[0]
                if filter_kinds and section in KIND_SECTIONS and kind not in _section_kinds(section):
                    continue
                if path in _MERGED_MAPPINGS and isinstance(value, dict) and isinstance(values.get(path), dict):
                    value = {**values[path], **value}
                values[path] = value
                sources[path] = source
        return _nest(values), sources

    def build(self, kind: str, base_dir: str | None = None) -> tuple[Recipe, dict[str, str]]:
        """Merge for ``kind`` and validate into a :class:`~skein_jupyter.recipe.Recipe`; also return sources."""
        raw, sources = self.merged(kind)
        raw.setdefault("kind", kind)
        sources.setdefault("kind", DEFAULT)

        def source_of(path):
            parts = path.split(".")
            for end in range(len(parts), 0, -1):  # the field, or the mapping field holding it
                if ".".join(parts[:end]) in sources:
                    return "from " + sources[".".join(parts[:end])]
            inner = sorted({s for p, s in sources.items() if p.startswith(path + ".")})
            return "from " + ", ".join(inner) if inner else "default"

        return build(raw, source_of, base_dir), sources


def load_recipe(recipe_path: str | os.PathLike[str] | None = None, kind: str | None = None,
                flags: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None,
                config_path: str | os.PathLike[str] | None = None,
                files: Mapping[str, Mapping[str, Any]] | None = None) -> tuple[Recipe, dict[str, str]]:
    """The one way to a :class:`~skein_jupyter.recipe.Recipe`: layers, then validation.

    Parameters
    ----------
    recipe_path : str, optional
        A recipe YAML file; its ``kind`` decides the kind of job.
    kind : str, optional
        The kind when there is no recipe file (e.g. ``notebook start`` without one);
        ``sweep`` also turns a ``run`` recipe into a sweep over parameter sets.
    flags : dict, optional
        ``{dotted path: value}`` from the command line, the highest layer.
    files : dict, optional
        ``{file name: {dotted path: value}}`` read from files the command line
        names (``run --sweep FILE``): above the recipe, below ``flags``; errors
        name the file.

    Returns
    -------
    (Recipe, dict)
        The recipe, and the source of every value that was not a default.
    """
    layers = Layers().add_user_config(config_path).add_environment(environ)
    base_dir = None
    if recipe_path is not None:
        data = read_yaml_mapping(recipe_path, "recipe")
        recipe_kind = data.get("kind")
        if kind == "sweep" and recipe_kind == "run":  # a run recipe swept over parameter sets
            data = {key: value for key, value in data.items() if key != "kind"}
            recipe_kind = None
        if kind and recipe_kind and recipe_kind != kind:
            command = {"notebook": "skein-jupyter notebook start", "run": "skein-jupyter run",
                       "sweep": "skein-jupyter run", "flow": "skein-jupyter run",
                       "kernel": "skein-jupyter kernel install --env ENV"}.get(recipe_kind, "skein-jupyter --help")
            raise UsageError(f"recipe {recipe_path} is a {recipe_kind} recipe, not a {kind} one; use "
                             f"`{command}` or change kind:")
        kind = recipe_kind or kind
        layers.add(str(recipe_path), data, filter_kinds=False)
        base_dir = str(Path(recipe_path).absolute().parent)
    for source, values in (files or {}).items():
        layers.add(source, {path: value for path, value in values.items() if value is not None}, filter_kinds=False)
    if flags:
        layers.add("command line", {path: value for path, value in flags.items() if value is not None},
                   filter_kinds=False)
    if kind is None:
        raise UsageError("kind: missing; set kind: in the recipe to one of notebook, run, sweep")
    return layers.build(kind, base_dir=base_dir)


def explain(recipe: Recipe, sources: Mapping[str, str]) -> list[tuple[str, Any, str]]:
    """``[(dotted path, value, source)]`` for every field that applies to the recipe's kind."""
    data = recipe.to_dict()
    rows = []
    for path, _ in field_paths():
        node = data
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                break
            node = node[part]
        else:
            rows.append((path, node, sources.get(path, DEFAULT)))
    return rows
