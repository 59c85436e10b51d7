"""The recipe model: one validated, typed description of a job.

A recipe is built from layered raw values (see :mod:`skein_jupyter.config`).
The dataclasses below are the schema: their defaults are the packaged
defaults, their ``metadata["doc"]`` the reference documentation, and
:func:`build` validates raw values against them, naming the field, where
its value came from, and the fix in every error.
"""
import dataclasses
import itertools
import os
from collections.abc import Callable, Iterator

from .environment import EnvironmentRef
from .exceptions import UsageError
from .kinds import FRONTENDS, KINDS
from .runtime.workspace import DEFAULT_EXCLUDE
from .recipe_values import (_app_name, _bool, _choice, _did_you_mean, _duration, _duration_or_zero, _emails, _env,
                            _environment, _events, _field, _files, _grid, _inputs, _int, _kernel, _mapping, _memory, _notebook,
                            _optional_text, _interval, _output, _param_sets, _parameters, _step_map, _text,
                            _text_list, _webhook_names, _workspace)
from .runtime.job import ON_FAILURE

__all__ = ["Recipe", "Resources", "ACLs", "Kerberos", "NotebookOptions", "RunOptions", "SweepOptions",
           "FlowOptions", "FlowStep", "NotifyOptions", "KernelOptions", "KINDS", "FRONTENDS", "KIND_SECTIONS",
           "build", "field_paths"]

#: The sections that belong to some kinds of job only.
KIND_SECTIONS = ("notebook", "run", "sweep", "flow", "notify", "kernel")


# ----------------------------------------------------------------- the schema

@dataclasses.dataclass(frozen=True)
class Resources:
    """Resources of the container that runs the job (one per sweep set)."""

    memory: int = _field(2048, _memory, "Memory, e.g. ``4 GiB``; a bare number is MiB.")
    vcores: int = _field(1, _int(1), "Virtual cores.")
    gpus: int = _field(0, _int(0), "GPUs (YARN resource ``yarn.io/gpu``).")


@dataclasses.dataclass(frozen=True)
class ACLs:
    """YARN application ACLs: who besides the owner may view or modify (kill) the job."""

    view_users: tuple = _field(tuple, _text_list, "Users who may view the application and its logs.")
    view_groups: tuple = _field(tuple, _text_list, "Groups who may view the application and its logs.")
    modify_users: tuple = _field(tuple, _text_list, "Users who may modify or kill the application.")
    modify_groups: tuple = _field(tuple, _text_list, "Groups who may modify or kill the application.")

    @property
    def enabled(self) -> bool:
        return any((self.view_users, self.view_groups, self.modify_users, self.modify_groups))


@dataclasses.dataclass(frozen=True)
class Kerberos:
    """Keytab login for the Skein driver, on secured clusters without a ticket cache."""

    keytab: str = _field(None, _optional_text, "Path of the keytab file.")
    principal: str = _field(None, _optional_text, "Kerberos principal in the keytab.")


@dataclasses.dataclass(frozen=True)
class NotebookOptions:
    """Options of a Jupyter server (``kind: notebook``)."""

    frontend: str = _field("lab", _choice(FRONTENDS),
                           "``lab`` (JupyterLab), ``notebook`` (Notebook 7) or ``server`` (jupyter_server).")
    idle_timeout: int = _field(3600, _duration,
                               "Stop the server after this long without activity (``null``: never).")
    kernel_idle_timeout: int = _field(1800, _duration, "Cull kernels idle this long (``null``: never).")
    max_lifetime: int = _field(None, _duration, "Stop the server after this long whatever happens.")
    tls: bool = _field(False, _bool, "Serve HTTPS with a certificate made for the application.")
    workspace: str = _field("default", _workspace,
                            "The workspace on HDFS the server works in: a name (a directory under "
                            "``/user/<you>/skein-jupyter/workspaces``) or an ``hdfs://`` URL of a directory.")
    sync_interval: int = _field(30, _interval,
                                "How often files written by kernels and terminals are sent to the workspace "
                                "(saves through Jupyter are sent at once).")
    sync_exclude: tuple = _field(DEFAULT_EXCLUDE, _text_list,
                                 "Names (glob patterns) never sent to the workspace: checkpoints and caches.")
    scheduler: bool = _field(False, _bool,
                             "Enable jupyter-scheduler (\"Create Notebook Job\", the Notebook Jobs panel) with "
                             "skein-jupyter's YARN backend: jobs run as runs on YARN. The environment needs "
                             "``jupyter-scheduler``.")


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """A papermill run of one notebook (``kind: run`` and ``kind: sweep``)."""

    notebook: str = _field(None, _notebook, "Input notebook: a local path or an ``hdfs://`` URL.",
                           path=True)
    parameters: dict = _field(dict, _parameters, "Parameters injected into the notebook (papermill ``-p``).")
    kernel: str = _field(None, _kernel, "Kernel name; the notebook's own when not given.")
    engine: str = _field(None, _optional_text, "papermill engine name; papermill's default when not given.")
    cell_timeout: int = _field(None, _duration, "Per-cell execution timeout.")
    start_timeout: int = _field(60, _duration, "Kernel start timeout.")
    timeout: int = _field(None, _duration, "Whole-run timeout; the kernel is stopped and output saved.")
    output: str = _field(None, _output,
                         "Directory for the output notebooks: an ``hdfs://`` URL or a path on the cluster "
                         "filesystem; ``{app_id}``, ``{user}``, ``{name}`` and ``{date}`` are filled in. "
                         "``/user/{user}/skein-jupyter/runs/{app_id}`` by default.")
    html: bool = _field(False, _bool, "Also export the output notebook as HTML (nbconvert).")
    share: str = _field("private", _choice(("private", "group")),
                        "Who may read the outputs on the cluster: ``private`` (files 600, directories 700) "
                        "or ``group`` (640 and 750, for the owner's group).")
    checkpoint_interval: int = _field(30, _duration_or_zero,
                                      "Upload the partial output notebook this often while a run goes "
                                      "(what a hard kill keeps; ``0``: only at the end).")
    papermill_options: dict = _field(dict, _mapping,
                                     "Other ``papermill.execute_notebook`` options, e.g. ``log_output``.")
    retries: int = _field(0, _int(0), "Retries after an infrastructure failure (a lost container).")
    retry_failed_cells: bool = _field(False, _bool, "Also retry a run whose notebook failed in a cell.")


@dataclasses.dataclass(frozen=True)
class SweepOptions:
    """Many parameter sets of one notebook in one application (``kind: sweep``)."""

    parameters: tuple = _field(tuple, _param_sets, "A list of parameter sets.")
    grid: dict = _field(dict, _grid, "A mapping of parameter names to lists; every combination runs.")
    parallel: int = _field(4, _int(1), "At most this many sets run at a time.")
    reuse_kernel: bool = _field(False, _bool,
                                "Run a container's sets one after another in one kernel instead of a fresh "
                                "kernel each: faster when the notebook's imports are slow, but a set sees "
                                "what the sets before it in that container left (variables, imported "
                                "modules, changed settings).")

    def sets(self) -> list[dict]:
        """Every parameter set: the list, or the grid's cartesian product."""
        if self.parameters:
            return list(self.parameters)
        if not self.grid:
            return []
        names = list(self.grid)
        return [dict(zip(names, combo)) for combo in itertools.product(*(self.grid[n] for n in names))]


@dataclasses.dataclass(frozen=True)
class NotifyOptions:
    """Notifications when a run, sweep or flow ends: the channels are named here, their secrets are in your
    private notifications file (see the batch users' guide, Notifications)."""

    when: tuple = _field(("failure", "timeout"), _events,
                         "Events to notify of: ``success``, ``failure``, ``timeout``, ``stopped``.")
    webhooks: tuple = _field(tuple, _webhook_names, "Webhooks to POST to, by their names in your notifications file.")
    emails: tuple = _field(tuple, _emails, "Email addresses to send to (through the SMTP server of your "
                           "notifications file).")
    attach_html: bool = _field(True, _bool, "Attach the HTML output to emails (when the run writes HTML).")


@dataclasses.dataclass(frozen=True)
class FlowStep:
    """One step of a flow (``flow.steps.<name>:``): a papermill run of one notebook, in a container of its own.

    The recipe's top-level fields (environment, resources, queue, env, files, tags) hold for every step;
    a step may set its own ``environment`` and ``resources``.
    """

    notebook: str = _field(None, _notebook, "Input notebook: a local path or an ``hdfs://`` URL.", path=True)
    parameters: dict = _field(dict, _parameters, "Parameters injected into the notebook (papermill ``-p``).")
    inputs: dict = _field(dict, _inputs,
                          "Parameters taken from values an upstream step recorded: ``name: step.value`` "
                          "(see *Recorded values* in the batch users' guide).")
    depends_on: tuple = _field(tuple, _text_list, "Steps that must succeed before this one starts.")
    environment: EnvironmentRef = _field(None, _environment, "This step's packed environment; the recipe's "
                                         "``environment`` when not given.")
    resources: dict = _field(dict, _mapping, "This step's ``memory``, ``vcores`` and ``gpus``; the recipe's "
                             "``resources`` for any not given.")
    kernel: str = _field(None, _kernel, "Kernel name; the notebook's own when not given.")
    timeout: int = _field(None, _duration, "Whole-run timeout; the kernel is stopped and the output saved.")
    cell_timeout: int = _field(None, _duration, "Per-cell execution timeout.")
    html: bool = _field(False, _bool, "Also export the output notebook as HTML (nbconvert).")
    retries: int = _field(0, _int(0), "Re-runs after any failure: a failed cell, a timeout, a lost container.")
    retry_interval: int = _field(30, _duration_or_zero, "Wait this long before a retry.")
    on_failure: str = _field("stop", _choice(ON_FAILURE),
                             "When the step fails for good: ``stop`` (no new step starts, running steps are "
                             "stopped and keep their partial output, the flow fails) or ``continue`` (steps "
                             "that do not depend on it still run; those that do are skipped).")


@dataclasses.dataclass(frozen=True)
class FlowOptions:
    """A flow of notebook steps with dependencies, in one application (``kind: flow``)."""

    parallel: int = _field(2, _int(1), "At most this many steps run at a time.")
    output: str = _field(None, _output,
                         "Directory for the outputs; each step writes under ``<output>/<step>/``, the summary is "
                         "``<output>/flow.json``. ``{app_id}``, ``{user}``, ``{name}`` and ``{date}`` are filled "
                         "in; ``/user/{user}/skein-jupyter/runs/{app_id}`` by default.")
    steps: dict = _field(dict, _step_map, "The steps: a mapping of step names (letters, digits, ``_``, ``-``) "
                         "to steps; see the fields of a step below.")


def _lease(value):
    seconds = _duration(value)
    if seconds is None or seconds < 10:
        raise ValueError(f"{value!r} is not a lease of at least 10s; use e.g. 60s or 5m")
    return seconds


@dataclasses.dataclass(frozen=True)
class KernelOptions:
    """A Jupyter kernel started by the kernel provisioner (``kind: kernel``; see the kernels guide)."""

    lease: int = _field(60, _lease, "The application ends when the client that started the kernel has not "
                        "renewed its lease for this long (it renews it every few seconds): no orphan kernel "
                        "outlives a crashed client by more than this.")
    idle_timeout: int = _field(None, _duration, "Shut the kernel down after this long without running "
                               "code (``null``: never).")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One job: a Jupyter server, a papermill run, or a sweep of runs."""

    kind: str = _field(None, _choice(KINDS), "``notebook``, ``run``, ``sweep``, ``flow`` or ``kernel``.",
                       layered=False)
    name: str = _field(None, _app_name, "Application name; ``skein-jupyter-<kind>`` by default. Letters, "
                       "digits, '.', '_' and '-': it may name the output directory (``{name}``).")
    environment: EnvironmentRef = _field(None, _environment,
                                         "Packed environment: a local archive, an ``hdfs://`` archive, "
                                         "or a published name from ``skein-jupyter env list``.")
    resources: Resources = dataclasses.field(default_factory=Resources)
    queue: str = _field("default", _text, "YARN queue.")
    node_label: str = _field("", _text, "YARN node label expression.")
    max_attempts: int = _field(1, _int(1), "Application attempts YARN makes.")
    env: dict = _field(dict, _env, "Environment variables of the container, set as written (no shell "
                       "reads them).")
    files: dict = _field(dict, _files,
                         "Extra files to localize: ``name: path or hdfs:// URL``.", path_values=True)
    acls: ACLs = dataclasses.field(default_factory=ACLs)
    proxy_user: str = _field(None, _optional_text, "Submit on behalf of this user (needs proxy-user rights).")
    kerberos: Kerberos = dataclasses.field(default_factory=Kerberos)
    tags: tuple = _field(tuple, _text_list, "YARN application tags.")
    notebook: NotebookOptions = dataclasses.field(default_factory=NotebookOptions, metadata={"kinds": ("notebook",)})
    run: RunOptions = dataclasses.field(default_factory=RunOptions, metadata={"kinds": ("run", "sweep")})
    sweep: SweepOptions = dataclasses.field(default_factory=SweepOptions, metadata={"kinds": ("sweep",)})
    flow: FlowOptions = dataclasses.field(default_factory=FlowOptions, metadata={"kinds": ("flow",)})
    notify: NotifyOptions = dataclasses.field(default_factory=NotifyOptions, metadata={"kinds": ("run", "sweep", "flow")})
    kernel: KernelOptions = dataclasses.field(default_factory=KernelOptions, metadata={"kinds": ("kernel",)})

    @property
    def app_name(self) -> str:
        return self.name or f"skein-jupyter-{self.kind}"

    def to_dict(self) -> dict:
        """Plain data (JSON-able), for `config` and `--explain` output; the container gets a Job instead."""
        def plain(value):
            if isinstance(value, EnvironmentRef):
                return value.value
            if dataclasses.is_dataclass(value):
                return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
            if isinstance(value, tuple):
                return [plain(v) for v in value]
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            return value
        data = plain(self)
        for section in KIND_SECTIONS:
            if self.kind not in _section_kinds(section):
                data.pop(section)
        return data


def _section_kinds(name):
    return next(f for f in dataclasses.fields(Recipe) if f.name == name).metadata.get("kinds", KINDS)


_SECTIONS = {"resources": Resources, "acls": ACLs, "kerberos": Kerberos,
             "notebook": NotebookOptions, "run": RunOptions, "sweep": SweepOptions, "notify": NotifyOptions, "flow": FlowOptions,
             "kernel": KernelOptions}


def _section_type(cls, field):
    """The dataclass of a nested section of the recipe, or None for a leaf field."""
    return _SECTIONS.get(field.name) if cls is Recipe else None


def field_paths(cls: type = Recipe, prefix: str = "") -> Iterator[tuple[str, dataclasses.Field]]:
    """Every leaf field as ``(dotted path, dataclasses.Field)``, for docs, flags and env vars."""
    for field in dataclasses.fields(cls):
        section = _section_type(cls, field)
        if section is not None:
            yield from field_paths(section, f"{prefix}{field.name}.")
        else:
            yield f"{prefix}{field.name}", field


# ----------------------------------------------------------------- building

def _build_section(cls, raw, prefix, source_of, base_dir):
    if not isinstance(raw, dict):
        raise UsageError(f"{prefix.rstrip('.') or 'recipe'} ({source_of(prefix.rstrip('.'))}): "
                         f"{raw!r} is not a mapping; write `key: value` lines")
    names = [f.name for f in dataclasses.fields(cls)]
    for key in raw:
        if key not in names:
            path = f"{prefix}{key}"
            raise UsageError(f"{path} ({source_of(path)}): unknown key{_did_you_mean(key, names)}; "
                             f"known keys here: {', '.join(names)}")
    values = {}
    for field in dataclasses.fields(cls):
        path = f"{prefix}{field.name}"
        section = _section_type(cls, field)
        if section is not None:
            values[field.name] = _build_section(section, raw.get(field.name) or {}, path + ".",
                                                source_of, base_dir)
            continue
        if field.name not in raw:
            continue
        value = raw[field.name]
        try:
            value = field.metadata["parse"](value)
        except ValueError as exc:
            raise UsageError(f"{path} ({source_of(path)}): {exc}") from None
        if field.metadata.get("path") and value and base_dir and "://" not in value:
            value = os.path.normpath(os.path.join(base_dir, os.path.expanduser(value)))
        if field.metadata.get("path_values") and base_dir:
            value = {k: v if "://" in v else os.path.normpath(os.path.join(base_dir, os.path.expanduser(v)))
                     for k, v in value.items()}
        values[field.name] = value
    return cls(**values)


def build(raw: dict, source_of: Callable[[str], str] = lambda path: "recipe", base_dir: str | None = None) -> Recipe:
    """Validate raw (merged) values into a :class:`Recipe`.

    Parameters
    ----------
    raw : dict
        Nested raw values, e.g. parsed YAML merged over configuration layers.
    source_of : callable
        ``source_of(dotted_path)`` names where a value came from, for errors.
    base_dir : str, optional
        Relative paths (input notebook, files) are taken relative to it:
        the recipe file's directory.

    Raises
    ------
    UsageError
        Naming the field, where its value came from, and the fix.
    """
    if raw.get("kind") is None:
        raise UsageError(f"kind: missing; set kind: in the recipe to one of {', '.join(KINDS)}")
    kind = raw["kind"]
    if kind not in KINDS:
        raise UsageError(f"kind ({source_of('kind')}): {kind!r} is not one of {', '.join(KINDS)}"
                         f"{_did_you_mean(kind, KINDS)}")
    for section in KIND_SECTIONS:
        if raw.get(section) and kind not in _section_kinds(section):
            raise UsageError(f"{section} ({source_of(section)}): a {kind} recipe has no {section}: section; "
                             f"remove it, or set kind: {_section_kinds(section)[0]}")
    recipe = _build_section(Recipe, raw, "", source_of, base_dir)
    if kind == "flow":
        from .flows import check_flow

        steps = {name: _build_section(FlowStep, value, f"flow.steps.{name}.", source_of, base_dir)
                 for name, value in recipe.flow.steps.items()}
        recipe = dataclasses.replace(recipe, flow=dataclasses.replace(recipe.flow, steps=steps))
        check_flow(recipe, source_of)
    _check(recipe, source_of)
    return recipe


def check_input_notebook(field: str, notebook: str | None, source: str) -> None:
    """Refuse a missing input notebook, and a local one that does not exist or is not an ``.ipynb``."""
    if not notebook:
        raise UsageError(f"{field}: missing; give the input notebook (a local .ipynb or an hdfs:// URL)")
    if "://" not in notebook:
        if not os.path.exists(notebook):
            raise UsageError(f"{field} ({source}): {notebook} does not exist; "
                             "check the path (relative paths are from the recipe's directory)")
        if not notebook.endswith(".ipynb"):
            raise UsageError(f"{field} ({source}): {notebook} is not a notebook; give an .ipynb file")


def _check(recipe, source_of):
    """Rules that involve more than one field."""
    kerberos = recipe.kerberos
    if kerberos.keytab and not kerberos.principal:
        raise UsageError(f"kerberos.keytab ({source_of('kerberos.keytab')}): a keytab needs a principal; "
                         "set kerberos.principal (e.g. alice@EXAMPLE.COM)")
    if kerberos.principal and not kerberos.keytab:
        raise UsageError(f"kerberos.principal ({source_of('kerberos.principal')}): a principal needs a "
                         "keytab; set kerberos.keytab, or drop the principal to use your ticket cache")
    if recipe.kind in ("run", "sweep"):
        check_input_notebook("run.notebook", recipe.run.notebook, source_of("run.notebook"))
    for name, path in recipe.files.items():
        if "://" not in path and not os.path.exists(path):
            raise UsageError(f"files.{name} ({source_of('files.' + name)}): {path} does not exist; "
                             "check the path (relative paths are from the recipe's directory)")
    if recipe.kind == "sweep":
        sweep = recipe.sweep
        if sweep.parameters and sweep.grid:
            raise UsageError(f"sweep ({source_of('sweep')}): give sweep.parameters (a list of sets) or "
                             "sweep.grid (every combination), not both")
        if not sweep.sets():
            raise UsageError(f"sweep ({source_of('sweep')}): no parameter sets; give sweep.parameters "
                             "(a list of sets) or sweep.grid (names to lists of values)")
        if sweep.reuse_kernel:  # the engine can share only a kernel papermill would have started itself
            from .runtime.execute import kernel_conflicts

            what = kernel_conflicts(recipe.run.engine, recipe.run.papermill_options)
            if what:
                raise UsageError(f"sweep.reuse_kernel ({source_of('sweep.reuse_kernel')}): not with "
                                 f"{' and '.join(what)}, with which papermill starts the kernel its own way; "
                                 f"remove sweep.reuse_kernel or {' and '.join(w.split()[0] for w in what)}")
