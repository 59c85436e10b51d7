"""Notebook parameters from the command line, with papermill's flag semantics.

Applied in papermill's order: ``-f`` files, then ``-y`` YAML strings, then
``-p`` (value types inferred) and ``-r`` (values kept as text).
"""
from collections.abc import Iterable

import yaml

from .config import read_yaml_mapping
from .exceptions import UsageError
from .validation import check_parameter_name

__all__ = ["infer_type", "parameters_from_flags"]


def infer_type(text: str) -> bool | int | float | str | None:
    """``-p`` values: ``True``/``False``, ``None``, integers and floats become those; the rest stays text."""
    if text in ("True", "False"):
        return text == "True"
    if text == "None":
        return None
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def parameters_from_flags(files: Iterable[str] = (), yamls: Iterable[str] = (),
                          typed: Iterable[tuple[str, str]] = (), raw: Iterable[tuple[str, str]] = ()) -> dict:
    """Merge parameter flags into one mapping; every name must be a Python identifier, not a keyword.

    Parameters
    ----------
    files : list of str
        ``-f`` YAML files of parameters.
    yamls : list of str
        ``-y`` YAML mappings given inline.
    typed, raw : list of (name, value)
        ``-p NAME VALUE`` and ``-r NAME VALUE`` pairs.
    """
    params = {}

    def add(flag: str, mapping: dict) -> None:
        for name in mapping:
            try:
                check_parameter_name(name)
            except ValueError as exc:
                raise UsageError(f"{flag}: {exc}") from None
        params.update(mapping)

    for path in files:
        add(f"-f {path}", read_yaml_mapping(path, "parameters file"))
    for text in yamls:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise UsageError(f"-y {text!r} is not valid YAML: {getattr(exc, 'problem', None) or exc}; "
                             "write a mapping such as 'alpha: 0.5'") from None
        if data is None:
            continue
        if not isinstance(data, dict):
            raise UsageError(f"-y {text!r} is not a mapping of parameters; write e.g. 'alpha: 0.5'")
        add(f"-y {text!r}", data)
    for name, value in typed:
        add("-p", {name: infer_type(value)})
    for name, value in raw:
        add("-r", {name: value})
    return params
