"""Resource profiles an admin defines for JupyterLab jobs ("Compute type" in the Create Job form).

The profiles file is YAML, read from ``$SKEIN_JUPYTER_PROFILES`` or else
``/etc/skein-jupyter/profiles.yaml``::

    default: small
    profiles:
      small: {memory: 2 GiB, vcores: 1}
      large: {memory: 16 GiB, vcores: 4, queue: batch, timeout: 6h}
      gpu:   {memory: 32 GiB, vcores: 8, gpus: 1, node_label: gpu}

Keys of a profile: ``memory``, ``vcores``, ``gpus``, ``queue``, ``node_label``,
``timeout`` (the whole run's). Each sets the recipe field of that name, so the
values are checked as ``run`` checks its flags. Without a file, the profiles
are :data:`BUILTIN`.
"""
from __future__ import annotations

import os
from typing import Any

from ..exceptions import UsageError

__all__ = ["PROFILES_VARIABLE", "DEFAULT_FILE", "BUILTIN", "load_profiles", "profile_flags"]

PROFILES_VARIABLE = "SKEIN_JUPYTER_PROFILES"
DEFAULT_FILE = "/etc/skein-jupyter/profiles.yaml"
BUILTIN: dict[str, Any] = {"default": "small",
                           "profiles": {"small": {"memory": "2 GiB", "vcores": 1},
                                        "medium": {"memory": "4 GiB", "vcores": 2},
                                        "large": {"memory": "8 GiB", "vcores": 4}}}
_FIELDS = {"memory": "resources.memory", "vcores": "resources.vcores", "gpus": "resources.gpus",
           "queue": "queue", "node_label": "node_label", "timeout": "run.timeout"}


def load_profiles(path: str | None = None) -> tuple[dict[str, dict], str]:
    """``({name: {key: value}}, default name)`` from the profiles file (or :data:`BUILTIN`)."""
    from ..config import read_yaml_mapping

    path = path or os.environ.get(PROFILES_VARIABLE) or (DEFAULT_FILE if os.path.exists(DEFAULT_FILE) else None)
    data = read_yaml_mapping(path, "profiles file") if path else BUILTIN
    profiles = data.get("profiles")
    if not isinstance(profiles, dict) or not profiles:
        raise UsageError(f"profiles file {path}: no profiles: mapping; write profiles: {{small: {{memory: 2 GiB}}}}")
    for name, profile in profiles.items():
        unknown = set(profile or {}) - set(_FIELDS) if isinstance(profile, dict) else {"(not a mapping)"}
        if unknown:
            raise UsageError(f"profiles file {path}: profile {name} has {', '.join(sorted(map(str, unknown)))}; "
                             f"a profile sets {', '.join(_FIELDS)}")
    default = str(data.get("default") or next(iter(profiles)))
    if default not in profiles:
        raise UsageError(f"profiles file {path}: default: {default} is not one of its profiles")
    return {str(name): dict(profile or {}) for name, profile in profiles.items()}, default


def profile_flags(name: str | None) -> dict[str, Any]:
    """The recipe fields (``{dotted path: value}``) of profile ``name`` (the default profile if None)."""
    profiles, default = load_profiles()
    chosen = name or default
    if chosen not in profiles:
        raise UsageError(f"no resource profile {chosen!r}; choose one of {', '.join(profiles)}")
    return {_FIELDS[key]: value for key, value in profiles[chosen].items() if value is not None}
