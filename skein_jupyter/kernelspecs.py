"""Patch Jupyter kernelspecs so they work from YARN's localized copy of an environment.

A ``kernel.json`` written by ``ipykernel install --sys-prefix`` or by conda
names its interpreter by absolute path inside the environment (conda: a
placeholder prefix rewritten at install). In a container the environment is
unpacked elsewhere, read-only, and nothing runs ``conda-unpack``, so such a
path is wrong there. Naming the executable alone (``python``) resolves it on
the ``PATH`` of the activated environment.
"""
import dataclasses
import json
import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["KernelPatch", "find_kernelspecs", "patch_argv", "plan_patches", "KERNELS_DIR"]

KERNELS_DIR = "share/jupyter/kernels"
#: conda-build's placeholder for the install prefix.
CONDA_PLACEHOLDER = "/opt/anaconda1anaconda2anaconda3"


@dataclasses.dataclass(frozen=True)
class KernelPatch:
    """One kernelspec: where it is in the archive and what its ``kernel.json`` becomes."""

    name: str
    target: str          # path inside the archive, e.g. share/jupyter/kernels/python3/kernel.json
    original: str        # argv[0] as found
    patched: str         # argv[0] as written (same as original when nothing needed changing)
    content: bytes       # the kernel.json to put in the archive

    @property
    def changed(self) -> bool:
        return self.original != self.patched


def find_kernelspecs(prefix: str | os.PathLike[str]) -> dict[str, Path]:
    """``{kernel name: path of its kernel.json}`` in an environment."""
    root = Path(prefix) / KERNELS_DIR
    if not root.is_dir():
        return {}
    return {p.parent.name: p for p in sorted(root.glob("*/kernel.json"))}


def patch_argv(argv0: str, prefixes: Iterable[str]) -> str:
    """The executable name alone if ``argv0`` lies inside one of ``prefixes``; else ``argv0``.

    >>> patch_argv("/envs/a/bin/python3.11", ["/envs/a"])
    'python'
    >>> patch_argv("/opt/anaconda1anaconda2anaconda3/bin/python", ["/envs/a"])
    'python'
    >>> patch_argv("/envs/a/bin/R", ["/envs/a"]), patch_argv("/usr/bin/python3", ["/envs/a"])
    ('R', '/usr/bin/python3')
    """
    for prefix in [*prefixes, CONDA_PLACEHOLDER]:
        prefix = prefix.rstrip("/") + "/"
        if argv0.startswith(prefix):
            name = os.path.basename(argv0)
            return "python" if name.startswith("python") else name
    return argv0


def plan_patches(prefix: str | os.PathLike[str]) -> list[KernelPatch]:
    """A :class:`KernelPatch` for every kernelspec of the environment at ``prefix``.

    Raises ValueError for a ``kernel.json`` that is not valid JSON with an ``argv`` list.
    """
    prefixes = {str(Path(prefix).absolute()), os.path.realpath(prefix)}
    patches = []
    for name, path in find_kernelspecs(prefix).items():
        try:
            spec = json.loads(path.read_text())
            argv = spec["argv"]
            if not isinstance(argv, list) or not argv:
                raise ValueError
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"kernelspec {path} is not valid: it needs JSON with a non-empty argv list") from None
        patched = patch_argv(argv[0], sorted(prefixes))
        spec["argv"] = [patched, *argv[1:]]
        content = (json.dumps(spec, indent=1) + "\n").encode()
        target = str(path.relative_to(prefix))
        patches.append(KernelPatch(name, target, argv[0], patched, content))
    return patches
