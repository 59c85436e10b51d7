"""The job: the one typed contract between the client and the container.

Shared by both sides (the client imports it as ``skein_jupyter.runtime.job``,
the container as ``skein_jupyter_runtime.job``), so it uses the standard
library only. The client builds a :class:`Job` from a recipe (an allow-list
of fields: ``skein_jupyter.spec.job_from_recipe``), encodes it with
:func:`to_json` into ``job.json``, a file localized privately into the
container; the runtime reads it back with :func:`read_job`, which checks
every field's type. Nothing of the job travels in an environment variable
or on a command line.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import keyword
import posixpath
import re
import string
import typing
from typing import Any, Dict, List, Optional

from .kinds import FRONTENDS, KINDS

__all__ = ["OUTPUT_PLACEHOLDERS", "check_output_template", "expand_output", "Job", "NotebookJob", "WorkspaceJob",
           "LabSchedulerJob",
           "RunJob", "StepJob", "FlowJob", "KernelJob", "ON_FAILURE", "NotifyJob", "NOTIFY_EVENTS",
           "JobError", "JOB_FILE", "KINDS", "SHARES", "to_json",
           "from_json", "read_job", "check_parameter_name", "check_env_name", "RESERVED_ENV", "RESERVED_ENV_PREFIXES"]

#: The name of the job's file in the container's working directory.
JOB_FILE = "job.json"
#: Version of the encoding; a runtime refuses a job of another version.
FORMAT = 1
#: Who may read a run's outputs besides its owner.
SHARES = ("private", "group")
#: The placeholders an output location may use, and nothing else.
OUTPUT_PLACEHOLDERS = ("user", "app_id", "name", "date")
#: When a notification may be sent: how a run, sweep or flow ended.
NOTIFY_EVENTS = ("success", "failure", "timeout", "stopped")
#: What a failed step does to the rest of its flow.
ON_FAILURE = ("stop", "continue")


class JobError(ValueError):
    """The job file is not a job of this runtime: names the field and what is wrong."""


@dataclasses.dataclass(frozen=True)
class WorkspaceJob:
    """The server's workspace: a directory on HDFS mirrored into the server's root directory.

    ``namenodes`` are the NameNodes' WebHDFS base URLs (``http://host:port``),
    tried in order; ``checked_at`` (milliseconds since the epoch) is when the
    client saw no live server on the workspace: a lock older than that is
    left by a server that has ended.
    """

    path: str
    namenodes: List[str]
    checked_at: int
    sync_interval: int = 30
    exclude: List[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class LabSchedulerJob:
    """jupyter-scheduler in the server, with skein-jupyter's YARN backend (``notebook.scheduler``).

    ``library`` is the localized directory that holds the ``skein_jupyter`` package (the backend and
    the client code it submits with); ``keytab`` (a localized file) and ``principal``: the container's
    Skein driver logs in with them, else it uses the application's delegation tokens.
    """

    library: str = "skein_jupyter_lib"
    keytab: Optional[str] = None
    principal: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class NotebookJob:
    """A Jupyter server: which frontend, its workspace, and when it stops by itself (seconds; None: never)."""

    frontend: str = "lab"
    idle_timeout: Optional[int] = None
    kernel_idle_timeout: Optional[int] = None
    max_lifetime: Optional[int] = None
    tls: bool = False
    workspace: Optional[WorkspaceJob] = None
    scheduler: Optional[LabSchedulerJob] = None


@dataclasses.dataclass(frozen=True)
class RunJob:
    """A papermill run of one notebook over one or more parameter sets (a run is a sweep of one set)."""

    notebook: str                         # the input's name (or URL), for output names
    input: str = "input.ipynb"            # the localized input notebook
    parameters: Dict[str, Any] = dataclasses.field(default_factory=dict)   # shared by every set
    sets: List[Dict[str, Any]] = dataclasses.field(default_factory=lambda: [{}])
    output: Optional[str] = None          # template; see OUTPUT_PLACEHOLDERS
    html: bool = False
    kernel: Optional[str] = None
    engine: Optional[str] = None
    cell_timeout: Optional[int] = None
    start_timeout: int = 60
    timeout: Optional[int] = None
    checkpoint_interval: int = 30         # 0: only at the end
    papermill_options: Dict[str, Any] = dataclasses.field(default_factory=dict)
    retries: int = 0
    retry_failed_cells: bool = False
    share: str = "private"
    namenodes: List[str] = dataclasses.field(default_factory=list)  # WebHDFS URLs for the outputs; none: hdfs dfs
    reuse_kernel: bool = False            # a container's sets share one kernel (a sweep's opt-in)


@dataclasses.dataclass(frozen=True)
class KernelJob:
    """One Jupyter kernel: how long the container waits for its client's heartbeat (the lease), and how
    long the kernel may stay idle before it shuts down (None: never); seconds."""

    lease: int = 60
    idle_timeout: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class NotifyJob:
    """Whom to tell when the job ends, and on which events: names and addresses only.

    The secrets of the channels (webhook URLs, the SMTP server's login) are in
    a file of their own (``notify.json``, see ``runtime/notify.py``), never here.
    """

    when: List[str] = dataclasses.field(default_factory=lambda: ["failure", "timeout"])
    webhooks: List[str] = dataclasses.field(default_factory=list)
    emails: List[str] = dataclasses.field(default_factory=list)
    attach_html: bool = True


@dataclasses.dataclass(frozen=True)
class StepJob:
    """One step of a flow: its run (one parameter set), and how it fits in the flow.

    ``inputs`` maps a parameter name to ``"step.value"``: a value the named upstream step recorded,
    passed to this step as that parameter. ``service`` is the Skein service whose containers run it.
    """

    name: str
    service: str
    run: RunJob
    depends_on: List[str] = dataclasses.field(default_factory=list)
    inputs: Dict[str, str] = dataclasses.field(default_factory=dict)
    retries: int = 0
    retry_interval: int = 0
    on_failure: str = "stop"


@dataclasses.dataclass(frozen=True)
class FlowJob:
    """A flow of notebook steps in one application.

    Every container of the application reads the same job: the coordinator runs the flow, a step's
    container finds its step by its Skein service (``SKEIN_CONTAINER_ID`` is ``<service>_<n>``).
    """

    steps: List[StepJob]
    parallel: int = 2
    output: Optional[str] = None          # template; see OUTPUT_PLACEHOLDERS
    share: str = "private"

    def graph(self) -> Dict[str, List[str]]:
        """``{step: [steps it depends on]}``, in the order of the recipe."""
        return {step.name: list(step.depends_on) for step in self.steps}


def _check_run(run: RunJob, prefix: str) -> None:
    if not run.sets:
        raise JobError(f"{prefix}.sets: no parameter sets")
    if run.share not in SHARES:
        raise JobError(f"{prefix}.share: {run.share!r} is not one of {', '.join(SHARES)}")
    if run.checkpoint_interval < 0:
        raise JobError(f"{prefix}.checkpoint_interval: below 0")
    if not all(re.fullmatch(r"https?://[^/?#\s]+", url) for url in run.namenodes):
        raise JobError(f"{prefix}.namenodes: not a list of http(s)://host:port URLs")
    # The client validated these; the job checks again, so no caller that builds a job by
    # hand (or edits a job file) can put code into the notebook or reset the runtime's variables.
    try:
        for name in {name for values in (run.parameters, *run.sets) for name in values}:
            check_parameter_name(name)
        if run.output:
            check_output_template(run.output)
    except ValueError as exc:
        raise JobError(f"{prefix}: {exc}") from None


def _check_flow(flow: FlowJob) -> None:
    from .dag import check_graph, check_step_name, upstream

    if not flow.steps:
        raise JobError("flow.steps: no steps")
    if flow.parallel < 1:
        raise JobError("flow.parallel: below 1")
    if flow.share not in SHARES:
        raise JobError(f"flow.share: {flow.share!r} is not one of {', '.join(SHARES)}")
    try:
        if flow.output:
            check_output_template(flow.output)
        for step in flow.steps:
            check_step_name(step.name)
        names = [s.name for s in flow.steps]
        if len(set(names)) != len(names) or len({s.service for s in flow.steps}) != len(names):
            raise ValueError("two steps have the same name or service")
        check_graph(flow.graph())
    except ValueError as exc:
        raise JobError(f"flow: {exc}") from None
    for step in flow.steps:
        prefix = f"flow.steps.{step.name}"
        _check_run(step.run, prefix + ".run")
        if step.on_failure not in ON_FAILURE:
            raise JobError(f"{prefix}.on_failure: {step.on_failure!r} is not one of {', '.join(ON_FAILURE)}")
        if step.retries < 0 or step.retry_interval < 0:
            raise JobError(f"{prefix}: retries and retry_interval may not be negative")
        if step.service != f"step-{step.name}":
            raise JobError(f"{prefix}.service: {step.service!r} is not 'step-{step.name}'")
        if len(step.run.sets) != 1:
            raise JobError(f"{prefix}.run.sets: a step runs one parameter set, not {len(step.run.sets)}")
        both = set(step.inputs) & {name for values in (step.run.parameters, *step.run.sets) for name in values}
        if both:
            raise JobError(f"{prefix}: {', '.join(sorted(both))} in both parameters and inputs")
        for parameter, source in step.inputs.items():
            try:
                check_parameter_name(parameter)
            except ValueError as exc:
                raise JobError(f"{prefix}.inputs: {exc}") from None
            if not isinstance(source, str) or "." not in source:
                raise JobError(f"{prefix}.inputs.{parameter}: {source!r} is not 'step.value'")
            if source.partition(".")[0] not in upstream(flow.graph(), step.name):
                raise JobError(f"{prefix}.inputs.{parameter}: {source!r} is not a value of an upstream step")


@dataclasses.dataclass(frozen=True)
class Job:
    """What the container runs.

    ``env`` holds the recipe's environment variables: the runtime sets them
    in its own process environment, so the values reach Jupyter, papermill
    and kernels exactly as written, through no shell.
    """

    kind: str
    name: str
    user: str
    env: Dict[str, str] = dataclasses.field(default_factory=dict)
    notebook: Optional[NotebookJob] = None
    run: Optional[RunJob] = None
    notify: Optional[NotifyJob] = None
    flow: Optional[FlowJob] = None
    kernel: Optional[KernelJob] = None
    format: int = FORMAT

    def __post_init__(self):
        if self.kind not in KINDS:
            raise JobError(f"kind: {self.kind!r} is not one of {', '.join(KINDS)}")
        section = {"notebook": "notebook", "flow": "flow", "kernel": "kernel"}.get(self.kind, "run")
        if getattr(self, section) is None:
            raise JobError(f"{section}: missing for a {self.kind} job")
        if self.notebook is not None and self.notebook.frontend not in FRONTENDS:
            raise JobError(f"notebook.frontend: {self.notebook.frontend!r} is not one of {', '.join(FRONTENDS)}")
        scheduler = self.notebook.scheduler if self.notebook is not None else None
        if scheduler is not None:
            for name in ("library", "keytab"):
                value = getattr(scheduler, name)
                if value is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+", value) or value in (".", ".."):
                    raise JobError(f"notebook.scheduler.{name}: not a file name of the container")
            if (scheduler.keytab is None) != (scheduler.principal is None):
                raise JobError("notebook.scheduler: a keytab needs a principal, and a principal a keytab")
        workspace = self.notebook.workspace if self.notebook is not None else None
        if workspace is not None:
            if not workspace.path.startswith("/") or posixpath.normpath(workspace.path) != workspace.path:
                raise JobError("notebook.workspace.path: not an absolute, normalized HDFS path")
            if not workspace.namenodes or not all(re.fullmatch(r"https?://[^/?#\s]+", url)
                                                  for url in workspace.namenodes):
                raise JobError("notebook.workspace.namenodes: not a list of http(s)://host:port URLs")
            if workspace.sync_interval < 1:
                raise JobError("notebook.workspace.sync_interval: below 1 second")
        if self.run is not None:
            _check_run(self.run, "run")
        if self.notify is not None:
            if not set(self.notify.when) <= set(NOTIFY_EVENTS):
                raise JobError(f"notify.when: not a list of {', '.join(NOTIFY_EVENTS)}")
            if not all(re.fullmatch(r"[^@\s,;<>]+@[^@\s,;<>]+", address) for address in self.notify.emails):
                raise JobError("notify.emails: not a list of email addresses")  # no header can be injected
        if self.flow is not None:
            _check_flow(self.flow)
        idle_timeout = self.kernel.idle_timeout if self.kernel is not None else None
        if self.kernel is not None and (self.kernel.lease < 10 or (idle_timeout is not None and idle_timeout < 1)):
            raise JobError("kernel: lease below 10 seconds or idle_timeout below 1 second")
        try:
            for name in self.env:
                check_env_name(name)
        except ValueError as exc:
            raise JobError(f"env: {exc}") from None

    def step(self, name: str) -> StepJob:
        """The flow's step ``name``; KeyError if there is none."""
        assert self.flow is not None, "only a flow has steps"
        for step in self.flow.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    @property
    def n_sets(self) -> int:
        return len(self.run.sets) if self.run is not None else 0

    def parameters(self, index: int) -> Dict[str, Any]:
        """The parameters set ``index`` runs with: the shared ones, then the set's own."""
        assert self.run is not None, "a notebook server's job has no parameter sets"
        return {**self.run.parameters, **self.run.sets[index]}


# ----------------------------------------------------------------- encoding

def to_json(job: Job) -> str:
    """The job as JSON text (keys sorted, so equal jobs encode equally)."""
    return json.dumps(dataclasses.asdict(job), sort_keys=True, separators=(",", ":"), allow_nan=False)


def from_json(text: str) -> Job:
    """The job encoded in ``text``; raises :class:`JobError` naming the first field that is wrong."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise JobError(f"not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise JobError("not a JSON object")
    if data.get("format") != FORMAT:
        raise JobError(f"format: {data.get('format')!r} is not {FORMAT}; the client and the runtime differ "
                       "in version")
    return _decode(Job, data, "")


def read_job(path: str = JOB_FILE) -> Job:
    """The job in the file ``path`` (the container's ``./job.json``)."""
    with open(path, encoding="utf-8") as f:
        return from_json(f.read())


def _decode(cls, data, prefix):
    if not isinstance(data, dict):
        raise JobError(f"{prefix.rstrip('.') or 'job'}: not an object")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise JobError(f"{prefix}{unknown[0]}: not a field of this runtime's job; the client and the runtime "
                       "differ in version")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, field in fields.items():
        path = prefix + name
        if name not in data:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise JobError(f"{path}: missing")
            continue
        values[name] = _value(hints[name], data[name], path)
    return cls(**values)


def _value(hint, value, path):
    """``value`` checked against the type ``hint`` (what the dataclasses above use, no more)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin is typing.Union:  # Optional[X]
        if value is None:
            return None
        (inner,) = [arg for arg in args if arg is not type(None)]
        return _value(inner, value, path)
    if dataclasses.is_dataclass(hint):
        return _decode(hint, value, path + ".")
    if origin is dict:
        if not isinstance(value, dict):
            raise JobError(f"{path}: {type(value).__name__} is not an object")
        return {key: _value(args[1], item, f"{path}.{key}") for key, item in value.items()}
    if origin is list:
        if not isinstance(value, list):
            raise JobError(f"{path}: {type(value).__name__} is not a list")
        return [_value(args[0], item, f"{path}[{i}]") for i, item in enumerate(value)]
    if hint is int and isinstance(value, bool) or not isinstance(value, hint):
        raise JobError(f"{path}: {type(value).__name__} is not {hint.__name__}")  # no value: it may be secret
    return value


# ----------------------------------------------------------------- names the job carries

def check_parameter_name(name: object) -> None:
    """A notebook parameter becomes ``NAME = value`` in the notebook: a Python identifier, not a keyword.

    >>> check_parameter_name("alpha")
    >>> check_parameter_name("class")
    Traceback (most recent call last):
    ...
    ValueError: 'class' is a Python keyword, not a parameter name; rename the parameter (e.g. class_)
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"{name!r} is not a parameter name; use a Python identifier (letters, digits and "
                         "'_', not starting with a digit), as the notebook's parameters cell assigns it")
    if keyword.iskeyword(name):
        raise ValueError(f"{name!r} is a Python keyword, not a parameter name; rename the parameter "
                         f"(e.g. {name}_)")


#: Environment variables the container sets for the runtime itself: a recipe's ``env:`` may not set them.
RESERVED_ENV = frozenset({"PYTHONHOME", "CONTAINER_ID", "HADOOP_TOKEN_FILE_LOCATION", "LOCAL_DIRS", "LOG_DIRS"})
RESERVED_ENV_PREFIXES = ("SKEIN_", "NM_")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_env_name(name: object) -> None:
    """Environment variable names: ``[A-Za-z_][A-Za-z0-9_]*``, and none the container sets itself.

    >>> check_env_name("SKEIN_CONTAINER_ID")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: 'SKEIN_CONTAINER_ID' is set by YARN or Skein for the runtime itself; choose another name ...
    """
    if not isinstance(name, str) or not _ENV_NAME.match(name):
        raise ValueError(f"{name!r} is not an environment variable name; use letters, digits and '_', "
                         "not starting with a digit")
    if name in RESERVED_ENV or name.startswith(RESERVED_ENV_PREFIXES):
        raise ValueError(f"{name!r} is set by YARN or Skein for the runtime itself; choose another name "
                         f"(taken: {', '.join(sorted(RESERVED_ENV))} and {'*, '.join(RESERVED_ENV_PREFIXES)}*)")


def check_output_template(template: str) -> None:
    """Raise ValueError naming the problem unless ``template`` uses only :data:`OUTPUT_PLACEHOLDERS`.

    >>> check_output_template("/data/{user}/{date}")
    >>> check_output_template("/data/{team}")
    Traceback (most recent call last):
    ...
    ValueError: {team} is not a placeholder of an output location; use only {user}, {app_id}, {name}, {date}
    """
    allowed = ", ".join("{%s}" % name for name in OUTPUT_PLACEHOLDERS)
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"{template!r} is not a valid output location ({exc}); write a literal brace as "
                         f"{{{{ or }}}}, and use only {allowed}") from None
    for _, name, spec, conversion in fields:
        if name is None:
            continue
        if name not in OUTPUT_PLACEHOLDERS or spec or conversion:
            shown = "{" + name + ("!" + conversion if conversion else "") + (":" + spec if spec else "") + "}"
            raise ValueError(f"{shown} is not a placeholder of an output location; use only {allowed}")


def expand_output(template: str, user: str, app_id: str, name: str,
                  when: Optional[datetime.datetime] = None) -> str:
    """Fill in ``{user}``, ``{app_id}``, ``{name}`` and ``{date}`` (UTC, YYYY-MM-DD).

    >>> expand_output("/r/{user}/{name}-{date}", "alice", "application_1_0001", "nightly",
    ...               datetime.datetime(2026, 11, 22))
    '/r/alice/nightly-2026-11-22'
    """
    check_output_template(template)
    when = when or datetime.datetime.now(datetime.timezone.utc)
    return template.format(user=user, app_id=app_id, name=name, date=when.strftime("%Y-%m-%d"))
