"""Parsers of recipe values: each takes the raw value and returns the typed one, or raises ValueError
whose message says what is wrong and what to write instead (the recipe adds the field and its source).
"""
import dataclasses
import difflib
import os
import re

from .environment import EnvironmentRef
from .units import parse_duration_s, parse_memory_mb
from .validation import (check_app_name, check_cluster_path, check_env_name, check_file_name, check_output_location,
                         check_parameter_names)

_KERNEL_NAME = re.compile(r"^[A-Za-z0-9._-]+$")

# Each takes the raw value and returns the typed one or raises ValueError
# whose message says what is wrong and what to write instead.

def _text(value):
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not text; quote it")
    return value


def _optional_text(value):
    return None if value is None else _text(value)


def _int(minimum):
    def parse(value):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{value!r} is not a whole number")
        if value < minimum:
            raise ValueError(f"{value!r} is below {minimum}; use {minimum} or more")
        return value
    return parse


def _memory(value):
    try:
        return parse_memory_mb(value)
    except ValueError as exc:
        raise ValueError(f"{exc}; use e.g. 2 GiB, 512 MiB, or a number of MiB") from None


def _duration(value):
    if value is None:
        return None
    try:
        return parse_duration_s(value)
    except ValueError as exc:
        raise ValueError(f"{exc}; use e.g. 90s, 15m, 2h, or a number of seconds") from None


def _duration_or_zero(value):
    """A duration where ``0`` means "never" (e.g. no checkpoints)."""
    if value == 0 and not isinstance(value, bool):
        return 0
    return _duration(value)


def _bool(value):
    if not isinstance(value, bool):
        raise ValueError(f"{value!r} is not true or false")
    return value


def _choice(options):
    def parse(value):
        if value not in options:
            raise ValueError(f"{value!r} is not one of {', '.join(options)}{_did_you_mean(value, options)}")
        return value
    return parse


def _text_list(value):
    if isinstance(value, str):  # from an environment variable or a flag: comma-separated
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{value!r} is not a list of names")
    return tuple(value)


def _text_map(value):
    if not isinstance(value, dict):
        raise ValueError(f"{value!r} is not a mapping of NAME: value")
    out = {}
    for key, item in value.items():
        if not isinstance(key, str) or isinstance(item, (dict, list)) or item is None:
            raise ValueError(f"{key!r}: {item!r} is not a NAME: text pair")
        out[key] = item if isinstance(item, str) else str(item).lower() if isinstance(item, bool) else str(item)
    return out


def _mapping(value):
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise ValueError(f"{value!r} is not a mapping of names to values")
    return dict(value)


def _parameters(value):
    value = _mapping(value)
    check_parameter_names(value)
    return value


def _named_texts(value, check_name):
    """A mapping of names to texts whose every name passes ``check_name``."""
    value = _text_map(value)
    for name in value:
        check_name(name)
    return value


def _env(value):
    return _named_texts(value, check_env_name)  # values go to the process as written: no shell reads them


def _interval(value):
    seconds = _duration(value)
    if seconds is None:
        raise ValueError("null is not an interval; use e.g. 30s or 5m")
    return seconds


def _workspace(value):
    from .workspaces import check_workspace_value

    return check_workspace_value(_text(value))


def _app_name(value):
    if value is None:
        return None
    value = _text(value)
    check_app_name(value)
    return value


def _files(value):
    from .spec import RESERVED_FILES

    return _named_texts(value, lambda name: check_file_name(name, RESERVED_FILES))


def _notebook(value):
    if value is None:
        return None
    value = _text(value)
    # A local notebook is shipped under a name of its own; only its file name travels on.
    check_cluster_path(value if "://" in value else os.path.basename(value))
    return value


def _output(value):
    if value is None:
        return None
    check_output_location(_text(value))
    return value


def _environment(value):
    return None if value is None else EnvironmentRef.parse(value)


def _kernel(value):
    if value is None:
        return None
    if not isinstance(value, str) or not _KERNEL_NAME.match(value):
        raise ValueError(f"{value!r} is not a kernel name; kernel names use letters, digits, '.', '_' "
                         "and '-' (see `jupyter kernelspec list` in the environment)")
    return value


def _param_sets(value):
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValueError("is not a list of parameter mappings; write one `- name: value` block per set")
    # Sets are numbered from 0 here as in the status table and the outputs' names.
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            kind = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
                    type(None): "empty"}.get(type(item), "not a mapping")
            raise ValueError(f"set {index} (numbered from 0) is {kind}, not a mapping of parameter names to "
                             "values; write one `- name: value` block per set")
        try:
            check_parameter_names(item)
        except ValueError as exc:
            raise ValueError(f"set {index} (numbered from 0): {exc}") from None
    return tuple(dict(item) for item in value)


def _grid(value):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError("is not a mapping of parameter names to non-empty lists of values; write "
                         "`name: [value, value]` lines")
    for name, values in value.items():
        if not (isinstance(values, list) and values):
            raise ValueError(f"{str(name)[:60]!r} is not given a non-empty list of values; write "
                             f"`{str(name)[:60]}: [value, value]`")
    check_parameter_names(value)
    return dict(value)


def _events(value):
    from .notifications import parse_events

    return parse_events(value)


def _checked_list(check):
    def parse(value):
        items = _text_list(value)
        for item in items:
            check(item)
        return items
    return parse


def _emails(value):
    from .notifications import check_address

    return _checked_list(check_address)(value)


def _webhook_names(value):
    from .notifications import check_channel_name

    return _checked_list(check_channel_name)(value)
def _step_map(value):
    """``flow.steps``: a mapping of step names to mappings (each built into a step by the recipe)."""
    from .runtime.dag import check_step_name

    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError("is not a mapping of step names to steps; write one `name:` block per step")
    for name, step in value.items():
        check_step_name(name)
        if not isinstance(step, dict):
            raise ValueError(f"step {name}: {step!r} is not a mapping; give the step's notebook: and other fields")
    return dict(value)


def _inputs(value):
    """A step's ``inputs``: parameter names to ``step.value`` (a value an upstream step records)."""
    value = _mapping(value)
    check_parameter_names(value)
    for name, source in value.items():
        step, dot, key = source.partition(".") if isinstance(source, str) else ("", "", "")
        if not dot or not step or not key:
            raise ValueError(f"{name}: {source!r} is not STEP.VALUE; write the upstream step's name, a dot and "
                             "the name of the value it records (e.g. prepare.rows)")
    return value


def _did_you_mean(word, options):
    close = difflib.get_close_matches(str(word), list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _field(default, parse, doc, **extra):
    """A leaf field; ``dict`` or ``tuple`` as default means an empty one."""
    kwargs = {"default_factory": default} if default in (dict, tuple) else {"default": default}
    return dataclasses.field(metadata={"parse": parse, "doc": doc, **extra}, **kwargs)
