"""The checks of a run or sweep made before anything is submitted.

The input notebook (is it one, does it have a ``parameters`` cell when given
parameters), the kernel (does the environment have it) and the output
directory (can you write there); those that need the cluster filesystem run
side by side in :class:`Preflight`.
"""
from __future__ import annotations

import concurrent.futures
import json
import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .exceptions import SkeinJupyterWarning, UsageError
from .launch import check_environment_packages
from .runtime.batch import DEFAULT_OUTPUT, RUNS_INDEX

if TYPE_CHECKING:
    from .envstore import PreparedEnvironment
    from .hdfs import HadoopFS
    from .recipe import Recipe

__all__ = ["Preflight", "read_notebook", "check_notebook", "check_kernel", "output_base", "parameter_names",
           "warn_unknown_parameters"]


def read_notebook(location: str, fs: HadoopFS | None = None) -> dict:
    """The input notebook as JSON; ``location`` is a local path or an ``hdfs://`` URL.

    Raises
    ------
    UsageError
        Missing, unreadable, or not a Jupyter notebook (nbformat 4).
    """
    if "://" in location:
        from .hdfs import HadoopFS

        fs = fs or HadoopFS()
        if not fs.exists(location):
            raise UsageError(f"run.notebook: {location} does not exist on the cluster; check the URL "
                             "(hdfs dfs -ls its directory)")
        text = fs.cat(location)
    else:
        try:
            with open(location, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            raise UsageError(f"run.notebook: {location} does not exist; check the path") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"run.notebook: cannot read {location} ({exc}); give a Jupyter notebook") from None
    try:
        nb = json.loads(text)
    except ValueError:
        nb = None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list) or nb.get("nbformat") != 4:
        raise UsageError(f"run.notebook: {location} is not a Jupyter notebook (nbformat 4 JSON); "
                         "give an .ipynb saved by Jupyter")
    return nb


def _has_parameters_cell(nb):
    return any("parameters" in (cell.get("metadata", {}).get("tags") or []) for cell in nb["cells"])


def parameter_names(nb: Mapping[str, Any]) -> set[str] | None:
    """The names the cells tagged ``parameters`` bind; None if they are not Python we can read.

    Any binding outside a function or class body counts (``name = …``,
    ``name: int = …``, ``for name in …``, ``import name``, under an ``if``
    or ``try``), as a kernel would see it. Papermill's own inspection is not
    used: it would import papermill in the client (over a second of CPU) and
    reads only simple ``name = value`` lines.
    """
    import ast

    def bound(node: ast.AST, names: set[str]) -> bool:
        """Add what ``node``'s children bind to ``names``; False after ``from m import *`` (anything may be)."""
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(child.name)  # its body binds nothing at the top
                continue
            if isinstance(child, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
                # a scope of its own, but for ``:=``, which binds in the cell's
                names.update(n.target.id for n in ast.walk(child) if isinstance(n, ast.NamedExpr)
                             and isinstance(n.target, ast.Name))
                continue
            if isinstance(child, ast.Lambda):
                continue
            if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store):
                names.add(child.id)
            elif isinstance(child, (ast.Import, ast.ImportFrom)):
                if any(alias.name == "*" for alias in child.names):
                    return False
                names.update((alias.asname or alias.name).split(".")[0] for alias in child.names)
            elif isinstance(child, (ast.MatchAs, ast.MatchStar)) and child.name:
                names.add(child.name)
            elif isinstance(child, ast.MatchMapping) and child.rest:
                names.add(child.rest)
            if not bound(child, names):
                return False
        return True

    language = ((nb.get("metadata") or {}).get("kernelspec") or {}).get("language")
    if language not in (None, "python"):
        return None
    names: set[str] = set()
    for cell in nb["cells"]:
        if "parameters" not in (cell.get("metadata", {}).get("tags") or []):
            continue
        source = cell.get("source", "")
        try:
            tree = ast.parse("".join(source) if isinstance(source, list) else source)
        except (SyntaxError, ValueError):  # IPython magics, another language
            return None
        if not bound(tree, names):
            return None
    return names


def warn_unknown_parameters(given: Iterable[str], nb: Mapping[str, Any], notebook: str, field: str,
                            where: Mapping[str, str] | None = None) -> None:
    """Warn (:class:`~skein_jupyter.exceptions.SkeinJupyterWarning`) about parameters the notebook's
    parameters cell does not assign: most often a misspelt name, which papermill runs anyway.

    ``given``: the names (never their values, which stay out of messages);
    ``where`` may say where a name was given (``set 3``).
    """
    import difflib
    import warnings

    known = parameter_names(nb)
    unknown = sorted(set(given) - known) if known is not None else []
    if unknown:
        where = where or {}

        def said(name: str) -> str:
            notes = [where[name]] if name in where else []
            notes += [f"did you mean {close!r}?" for close in difflib.get_close_matches(name, list(known or ()), n=1)]
            return f"{name} ({'; '.join(notes)})" if notes else name

        names = ", ".join(said(name) for name in unknown)
        assigned = ", ".join(sorted(known or ())) or "nothing"
        warnings.warn(SkeinJupyterWarning(
            f"{field}: {names} {'is' if len(unknown) == 1 else 'are'} not assigned in the parameters cell of "
            f"{os.path.basename(notebook)} (it assigns {assigned}); papermill sets "
            f"{'it' if len(unknown) == 1 else 'them'} after that cell all the same, so check the spelling"),
            stacklevel=2)


def check_notebook(recipe: Recipe, nb: Mapping[str, Any]) -> None:
    """Refuse parameters for a notebook that has no cell tagged ``parameters``.

    Papermill only warns and injects them at the top, where the notebook's
    own defaults then silently overwrite them.
    """
    given = bool(recipe.run.parameters) or recipe.kind == "sweep"
    if given and not _has_parameters_cell(nb):
        raise UsageError(f"run.notebook: {os.path.basename(recipe.run.notebook)} has no cell tagged "
                         "'parameters', so the parameters would be overwritten by the notebook's own "
                         "defaults; tag the cell that sets them (JupyterLab: cell > Property Inspector > "
                         "Cell Tags > parameters)")
    warn_unknown_parameters(list(recipe.run.parameters), nb, recipe.run.notebook, "run.parameters (-p, -r, -y, -f)")
    if recipe.kind == "sweep":
        if recipe.sweep.grid:
            warn_unknown_parameters(list(recipe.sweep.grid), nb, recipe.run.notebook, "sweep.grid")
        else:  # each name with the first set (numbered from 0) that gives it
            first: dict[str, str] = {}
            for index, values in enumerate(recipe.sweep.parameters):
                for name in values:
                    first.setdefault(name, f"set {index}, numbered from 0")
            warn_unknown_parameters(list(first), nb, recipe.run.notebook, "sweep.parameters", where=first)


def check_kernel(recipe: Recipe, nb: Mapping[str, Any], metadata: Mapping[str, Any] | None) -> str:
    """The kernel the run uses must be one the environment has (its metadata lists them)."""
    kernel = recipe.run.kernel or (nb.get("metadata", {}).get("kernelspec") or {}).get("name")
    if not kernel:
        raise UsageError(f"run.kernel: {os.path.basename(recipe.run.notebook)} names no kernel; give one "
                         "with --kernel (e.g. python3)")
    kernels = set((metadata or {}).get("kernels") or {})
    packages = (metadata or {}).get("packages") or {}
    if "ipykernel" in packages:
        kernels.add("python3")  # ipykernel's own, always found by jupyter_client
    if kernels and kernel not in kernels:
        how = "--kernel" if recipe.run.kernel else "--kernel (the notebook asks for it)"
        raise UsageError(f"run.kernel: the environment has no kernel {kernel!r} (it has "
                         f"{', '.join(sorted(kernels))}); choose one with {how}, or install the kernel "
                         "in the environment and pack it again")
    return kernel


#: Stands for the application id, unknown before submitting; never part of a real location.
_APP_ID_MARK = "\x00app_id\x00"


def output_base(recipe: Recipe, user: str) -> str:
    """The fixed part of the output location: the directory that must be writable before submitting.

    Expanded by the runtime's own expander (:func:`~skein_jupyter.runtime.job.expand_output`), with the
    application id still unknown: the directory above the first part that holds it.
    """
    from .runtime.job import expand_output

    known = expand_output(recipe.run.output or DEFAULT_OUTPUT, user, _APP_ID_MARK, recipe.app_name)
    if _APP_ID_MARK not in known:
        return known
    fixed = known.split(_APP_ID_MARK, 1)[0]
    return fixed.rsplit("/", 1)[0] or "/"


def _check_output(recipe, user, fs):
    from .hdfs import HdfsError

    base = output_base(recipe, user)
    try:
        fs.mkdir(base, RUNS_INDEX.format(user=user), share=recipe.run.share)
    except (UsageError, HdfsError) as exc:
        raise UsageError(f"run.output: cannot create {base}: {str(exc).split(': ', 1)[-1]}; choose a directory "
                         "you can write to with --output") from None
    if not fs.writable(base):
        raise UsageError(f"run.output: {base} is not writable by {user}; choose a directory you can write "
                         "to with --output")


def _environment_record(recipe, fs):
    """The metadata record beside an ``hdfs://`` archive (``{}`` if it has none)."""
    try:
        text = fs.cat(recipe.environment.value + ".json")
        return json.loads(text) if text.strip() else {}
    except ValueError:
        return {}


class Preflight:
    """The checks of a run that need the cluster filesystem, started at once in the background.

    Output directory, a remote notebook, the record of a remote archive: each
    is an ``hdfs dfs`` JVM, so they run side by side, and alongside whatever
    the caller does next (starting the Skein driver, preparing the environment).
    """

    def __init__(self, recipe: Recipe) -> None:
        from .environment import EnvironmentKind

        from .launch import job_fs, job_user, require_environment

        require_environment(recipe)  # before the checks below create directories on the cluster
        self.recipe = recipe
        self._checked_early = False

        user = job_user(recipe)
        self.local_nb = None
        if "://" not in recipe.run.notebook:
            self.local_nb = read_notebook(recipe.run.notebook)
            check_notebook(recipe, self.local_nb)
        fs = job_fs(recipe)
        self._pool = concurrent.futures.ThreadPoolExecutor(4)
        from .notifications import resolve

        self.notify = self._pool.submit(resolve, recipe, user)  # channels named, file private, URLs valid
        self.output = self._pool.submit(_check_output, recipe, user, fs)
        self.remote_nb = self._pool.submit(read_notebook, recipe.run.notebook, fs) if self.local_nb is None else None
        remote_env = recipe.environment is not None and recipe.environment.kind is EnvironmentKind.HDFS
        self.record = self._pool.submit(_environment_record, recipe, fs) if remote_env else None
        self._pool.shutdown(wait=False)

    def check_early(self) -> None:
        """Raise the first problem that needs no environment: the output location, notification channels,
        a remote notebook.

        Called before the environment is uploaded, so a bad ``--output`` never
        waits for (or pays for) a large upload.
        """
        if self._checked_early:
            return
        self.output.result()
        self.notify.result()
        if self.remote_nb is not None:
            check_notebook(self.recipe, self.remote_nb.result())
        self._checked_early = True  # once: a remote notebook's warnings are said once

    def check(self, prepared: PreparedEnvironment) -> None:
        """Raise the first problem found, now that the environment is prepared."""
        self.check_early()
        nb = self.local_nb if self.remote_nb is None else self.remote_nb.result()
        assert nb is not None  # read here, or in the background
        metadata = prepared.metadata
        if not metadata and self.record is not None:
            metadata = self.record.result()
            check_environment_packages(self.recipe, metadata)
        check_kernel(self.recipe, nb, metadata)
