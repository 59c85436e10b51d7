"""Recipe -> job and ``skein.ApplicationSpec``, built as objects.

What runs in the container (the *runtime*) is shipped with the application
as ``skein_jupyter_runtime.zip`` on ``PYTHONPATH``, so the packed environment
needs only skein and the job's Jupyter packages. The container activates
the environment, then runs ``python -m skein_jupyter_runtime <kind>``, which
reads its job from ``job.json``: a file of the application's own, which
Skein uploads into the application's private staging directory and YARN
localizes into the container, readable by the user only. So parameters and
environment values appear in no environment variable, launch script or log.
Nothing secret goes into a spec: the server token is made in the container.
"""
from __future__ import annotations

import dataclasses
import os
import shlex
import tempfile
from typing import TYPE_CHECKING, Any

from .environment import EnvironmentKind, EnvironmentRef
from .exceptions import UsageError
from .kinds import APP_TAG, KINDS
from .runtime.job import JOB_FILE, Job, KernelJob, LabSchedulerJob, NotebookJob, NotifyJob, RunJob, to_json
from .runtime.notify import NOTIFY_FILE
from .runtime.webhdfs import DEPS_FILE

if TYPE_CHECKING:
    import skein

    from .recipe import Recipe, Resources
    from .scheduler import Allocation

__all__ = ["SpecContext", "build_spec", "job_from_recipe", "write_job_file", "discard_job_file", "spec_to_yaml",
           "check_cluster_limits", "APP_TAG", "RUNTIME_FILE", "JOB_FILE"]

RUNTIME_FILE = "skein_jupyter_runtime.zip"
ENV_DIR = "environment"
INPUT_NOTEBOOK = "input.ipynb"
MASTER_MEMORY = "512 MiB"
#: A server with jupyter-scheduler: where the package is unpacked, and the keytab its Skein driver logs in with.
LIBRARY_DIR = "skein_jupyter_lib"
SCHEDULER_KEYTAB = "jupyter-scheduler.keytab"
#: File names a job localizes itself: a recipe's ``files:`` may not take them.
RESERVED_FILES = frozenset({ENV_DIR, RUNTIME_FILE, INPUT_NOTEBOOK, JOB_FILE, NOTIFY_FILE, LIBRARY_DIR,
                            SCHEDULER_KEYTAB, "outputs", "work"})


@dataclasses.dataclass(frozen=True)
class SpecContext:
    """What a spec needs besides the recipe: where the archives are, and for whom.

    Parameters
    ----------
    user : str
        The user the application runs as (the proxy user, if any).
    runtime : str
        Location of the runtime zip (local path or ``hdfs://`` URL).
    environment : str, optional
        Location of the environment archive; the recipe's archive when not
        given. A recipe's environment *name* is resolved only by
        :func:`skein_jupyter.envstore.resolve_name` (a launch does): the
        context never guesses a URL from a name.
    environment_public : bool
        The archive is world-readable: YARN localizes it once into its public
        cache and shares it between applications and users.
    deps : str, optional
        Location of the zip of the packages the runtime ships (a server's
        workspace client); built from the installed packages when not given.
    library : str, optional
        Location of the zip of this package for a server with jupyter-scheduler
        (``notebook.scheduler``); built from the installed package when not given.
    workspace_checked_at : int, optional
        When the launch saw no live server on the workspace (ms since the epoch).
    namenodes : list of str, optional
        The NameNodes' WebHDFS URLs a server's container uses; read from the
        Hadoop configuration when not given.
    notify_secrets : dict, optional
        The secrets of the job's notification channels
        (:func:`skein_jupyter.notifications.resolve`); resolved from your
        notifications file when not given.
    """

    user: str
    runtime: str
    environment: str | None = None
    environment_public: bool = False
    deps: str | None = None
    library: str | None = None
    workspace_checked_at: int | None = None
    namenodes: list[str] | None = None
    notify_secrets: dict | None = dataclasses.field(default=None, repr=False)
    #: Flows: the archives of steps' own environments, ``{recipe value: (location, public)}``.
    environments: dict[str, tuple[str, bool]] | None = None

    @classmethod
    def for_user(cls, user: str | None = None, **changes: Any) -> SpecContext:
        """The context of a launch by ``user``: the runtime zip of the installed sources."""
        from .runtime_zip import runtime_zip

        changes.setdefault("runtime", str(runtime_zip()))
        from .identity import hadoop_user

        return cls(user=user or hadoop_user(), **changes)

    @classmethod
    def example(cls, recipe: Recipe | None = None) -> SpecContext:
        """The fixed context the example specs in ``specs/`` are rendered with (user ``alice``).

        An environment name of ``recipe`` stands for an *example* URL, as
        :func:`~skein_jupyter.envstore.resolve_name` would find it published (public):
        ``<PUBLISHED_DIR>/<name>-<16 hex>.tar.gz``, the hex made up from the
        name (a real upload's are its content's hash).
        """
        runtime = f"hdfs:///user/alice/.skein-jupyter/runtime/{RUNTIME_FILE}"
        example: dict[str, Any] = {"deps": f"hdfs:///user/alice/.skein-jupyter/runtime/{DEPS_FILE}",
                                   "library": f"hdfs:///user/alice/.skein-jupyter/runtime/{LIBRARY_DIR}.zip",
                                   "workspace_checked_at": 0, "namenodes": ["http://namenode.example.com:9870"],
                                   "notify_secrets": {"webhooks": {}, "smtp": None}}  # no user's file read
        if recipe is not None and recipe.environment is not None \
                and recipe.environment.kind is EnvironmentKind.NAME:
            import hashlib

            from .envstore import PUBLISHED_DIR, remote_name

            name = recipe.environment.value
            made_up = {"name": name, "archive": f"{name}.tar.gz", "sha256": hashlib.sha256(name.encode()).hexdigest()}
            return cls(user="alice", runtime=runtime, environment=f"{PUBLISHED_DIR}/{remote_name(made_up)}",
                       environment_public=True, **example)
        return cls(user="alice", runtime=runtime, **example)

    def step_environment(self, ref: EnvironmentRef) -> tuple[str, bool]:
        """A flow step's own environment as ``(location, public)``; a name must have been resolved."""
        if self.environments and ref.value in self.environments:
            return self.environments[ref.value]
        if ref.kind is EnvironmentKind.NAME:
            raise UsageError(f"environment: {ref.value!r} (a flow step's) is a name, not yet resolved to an "
                             "archive; a launch resolves it, or give an archive path or hdfs:// URL")
        return (os.path.abspath(os.path.expanduser(ref.value)) if ref.kind is EnvironmentKind.LOCAL else ref.value,
                False)

    def environment_url(self, recipe: Recipe) -> str:
        if self.environment:
            return self.environment
        ref = recipe.environment
        if ref is None:
            raise UsageError("environment: missing; give --env (a packed archive, an hdfs:// archive, or a "
                             "name from `skein-jupyter env list`) or set environment: in the recipe")
        if ref.kind is EnvironmentKind.NAME:
            raise UsageError(f"environment: {ref.value!r} is a name, not yet resolved to an archive; resolve it "
                             "with skein_jupyter.envstore.resolve_name and give the context its URL (a launch "
                             "does), or give an archive path or hdfs:// URL")
        return os.path.abspath(os.path.expanduser(ref.value)) if ref.kind is EnvironmentKind.LOCAL \
            else ref.value


def job_from_recipe(recipe: Recipe, user: str, checked_at_ms: int | None = None,
                    namenodes: list[str] | None = None) -> Job:
    """The job the container runs: an allow-list of the recipe's fields (a new field ships only if added here).

    Parameters
    ----------
    recipe : Recipe
    user : str
        The Hadoop user the application runs as, for ``{user}`` in output locations.
    checked_at_ms : int, optional
        When the client saw no live server on the workspace (a server's job);
        now when not given.
    namenodes : list of str, optional
        The NameNodes' WebHDFS URLs; from the Hadoop configuration when not given.
    """
    if recipe.kind == "flow":
        from .flows import flow_job

        return dataclasses.replace(flow_job(recipe, user), notify=_notify_job(recipe))
    notebook = run = None
    if recipe.kind == "kernel":
        return Job(kind="kernel", name=recipe.app_name, user=user, env=dict(recipe.env),
                   kernel=KernelJob(lease=recipe.kernel.lease, idle_timeout=recipe.kernel.idle_timeout))
    if recipe.kind == "notebook":
        server = recipe.notebook
        from .workspaces import workspace_job

        keytab = recipe.kerberos.keytab is not None
        scheduler = LabSchedulerJob(library=LIBRARY_DIR, keytab=SCHEDULER_KEYTAB if keytab else None,
                                    principal=recipe.kerberos.principal if keytab else None)
        notebook = NotebookJob(frontend=server.frontend, idle_timeout=server.idle_timeout,
                               kernel_idle_timeout=server.kernel_idle_timeout,
                               max_lifetime=server.max_lifetime, tls=server.tls,
                               workspace=workspace_job(server, user, checked_at_ms, namenodes),
                               scheduler=scheduler if server.scheduler else None)
    else:
        options = recipe.run
        name = options.notebook
        run = RunJob(
            # The edge node's path means nothing in the container: its name names the outputs.
            notebook=name if "://" in name else os.path.basename(name),
            input=INPUT_NOTEBOOK,
            parameters=dict(options.parameters),
            # Every set explicitly, so the runtime need not know how grids expand.
            sets=[dict(s) for s in recipe.sweep.sets()] if recipe.kind == "sweep" else [{}],
            output=options.output, html=options.html, kernel=options.kernel, engine=options.engine,
            cell_timeout=options.cell_timeout, start_timeout=options.start_timeout, timeout=options.timeout,
            checkpoint_interval=options.checkpoint_interval or 0,
            papermill_options=dict(options.papermill_options), retries=options.retries,
            retry_failed_cells=options.retry_failed_cells, share=options.share,
            namenodes=namenodes or _output_namenodes(),
            reuse_kernel=recipe.kind == "sweep" and recipe.sweep.reuse_kernel)
    return Job(kind=recipe.kind, name=recipe.app_name, user=user, env=dict(recipe.env), notebook=notebook,
               run=run, notify=_notify_job(recipe))


def _output_namenodes() -> list[str]:
    """The NameNodes' WebHDFS URLs, for a run's outputs; none (the container uses ``hdfs dfs``) if unknown
    or if the default filesystem is not HDFS (viewfs, federation: ``hdfs dfs`` resolves those)."""
    from .workspaces import _default_fs, namenode_urls

    try:
        if not _default_fs().startswith("hdfs://"):
            return []
        return namenode_urls()
    except UsageError:
        return []


def _notify_job(recipe: Recipe) -> NotifyJob | None:
    """Whom a run, sweep or flow tells when it ends (names and addresses; the secrets go apart)."""
    if recipe.kind == "notebook" or not (recipe.notify.webhooks or recipe.notify.emails):
        return None
    return NotifyJob(when=list(recipe.notify.when), webhooks=list(recipe.notify.webhooks),
                     emails=list(recipe.notify.emails), attach_html=recipe.notify.attach_html)


def write_job_file(job: Job, path: str | None = None) -> str:
    """Write ``job`` as JSON readable by the user only; a new temporary file unless ``path`` is given.

    Returns the path. Remove a temporary one with :func:`discard_job_file` once submitted.
    """
    return write_private(to_json(job), path, "skein-jupyter-job-")


def write_private(text: str, path: str | None = None, prefix: str = "skein-jupyter-") -> str:
    """Write ``text`` into a file readable by the user only: ``path``, or a new temporary ``PREFIX*.json``."""
    if path is None:
        fd, path = tempfile.mkstemp(prefix=prefix, suffix=".json")  # mode 600
    else:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    return str(path)


def discard_job_file(spec: skein.ApplicationSpec) -> None:
    """Remove the local job file (and notifications secrets file) of ``spec`` (temporary files of
    :func:`build_spec`); never raises."""
    for service in spec.services.values():
        for file in (service.files.get(JOB_FILE), service.files.get(NOTIFY_FILE)):
            if file is not None and file.source.startswith("file://"):
                try:
                    os.unlink(file.source[len("file://"):])
                except OSError:
                    pass


def _script(kind: str) -> str:
    return "\n".join([
        shlex.join(["source", f"{ENV_DIR}/bin/activate"]),
        shlex.join(["exec", "python", "-m", "skein_jupyter_runtime", kind]),
    ])


def build_spec(recipe: Recipe, context: SpecContext, job_path: str | None = None,
               write_job: bool = True) -> skein.ApplicationSpec:
    """The Skein application spec of ``recipe``; its job goes into a local file the spec ships.

    Parameters
    ----------
    recipe : Recipe
    context : SpecContext
    job_path : str, optional
        Where to write the job file; a new temporary file (mode 600) when not
        given: remove it with :func:`discard_job_file` once submitted (Skein
        copies it into the application's private staging directory).
    write_job : bool
        False: write no file at all (what ``skein-jupyter spec`` and
        ``--dry-run`` show); the spec names ``job.json`` in the current
        directory, the file only a launch writes.

    Returns
    -------
    skein.ApplicationSpec
    """
    import skein

    from .notifications import resolve, write_secrets_file

    env_url = context.environment_url(recipe)
    job = job_from_recipe(recipe, context.user, context.workspace_checked_at, context.namenodes)
    # The channels' secrets, checked (and read) before any file is written; shipped as the job is.
    secrets = resolve(recipe, context.user) if job.notify is not None and context.notify_secrets is None \
        else context.notify_secrets
    tags = {*recipe.tags, APP_TAG, KINDS[recipe.kind].tag}

    def make_service(resources: Resources, environment: tuple[str, bool], instances: int,
                     extra_files: dict[str, skein.File], max_restarts: int = 0) -> skein.Service:
        url, public = environment
        # Uploaded archives never change (content-addressed, or timestamped by
        # YARN), so YARN may keep them unpacked in its per-user (or public) cache
        # and later launches skip localization; a local file is staged per app.
        visibility = "public" if public else "private" if "://" in url else "application"
        files = {ENV_DIR: skein.File(url, type="archive", visibility=visibility),
                 RUNTIME_FILE: skein.File(context.runtime, type="file"), **extra_files}
        for name, source in recipe.files.items():
            files[name] = skein.File(source)
        return skein.Service(
            resources=skein.Resources(memory=f"{resources.memory} MiB", vcores=resources.vcores,
                                      gpus=resources.gpus),
            files=files, env={"PYTHONPATH": RUNTIME_FILE}, script=_script(recipe.kind),
            instances=instances, max_restarts=max_restarts)

    environment = (env_url, context.environment_public)
    if recipe.kind == "flow":
        from .flows import flow_services

        services = flow_services(recipe, context, make_service, environment)
    else:
        extra: dict[str, skein.File] = {}
        if job.notebook is not None and job.notebook.workspace is not None:
            from .runtime_zip import deps_zip
            from .workspaces import tags as workspace_tags

            extra[DEPS_FILE] = skein.File(context.deps or str(deps_zip()), type="file")
            tags |= workspace_tags(job.notebook.workspace.path)
        if job.notebook is not None and job.notebook.scheduler is not None:
            from .runtime_zip import library_zip

            # Unpacked by YARN: the package runs from real files (it builds its runtime zip from them).
            extra[LIBRARY_DIR] = skein.File(context.library or str(library_zip()), type="archive")
            if job.notebook.scheduler.keytab is not None:  # the container's driver logs in with it
                extra[SCHEDULER_KEYTAB] = skein.File(os.path.abspath(os.path.expanduser(recipe.kerberos.keytab)),
                                                      type="file", visibility="application")
        instances = 1
        max_restarts = 0
        if recipe.kind in ("run", "sweep"):
            extra[INPUT_NOTEBOOK] = skein.File(recipe.run.notebook, type="file")
            if job.run is not None and job.run.namenodes:  # outputs over WebHDFS: fsspec, not a JVM per upload
                from .runtime_zip import deps_zip

                extra[DEPS_FILE] = skein.File(context.deps or str(deps_zip()), type="file")
            max_restarts = recipe.run.retries
        if recipe.kind == "sweep":
            # Workers take parameter sets from a queue in the key-value store.
            instances = min(recipe.sweep.parallel, len(recipe.sweep.sets()))
        services = {KINDS[recipe.kind].service: make_service(recipe.resources, environment, instances, extra,
                                                             max_restarts)}
    acls = recipe.acls
    spec = skein.ApplicationSpec(
        name=recipe.app_name,
        queue=recipe.queue,
        user=recipe.proxy_user or "",
        node_label=recipe.node_label,
        tags=sorted(tags),
        acls=skein.ACLs(enable=acls.enabled, view_users=list(acls.view_users),
                        view_groups=list(acls.view_groups), modify_users=list(acls.modify_users),
                        modify_groups=list(acls.modify_groups)),
        max_attempts=recipe.max_attempts,
        master=skein.Master(resources=skein.Resources(memory=MASTER_MEMORY, vcores=1)),
        services=services,
    )
    # Written last, once nothing else can fail, so that a refused recipe leaves no file behind.
    # Every service of a flow reads the same job (a step finds its own by its service's name).
    source = write_job_file(job, job_path) if write_job else JOB_FILE
    for service in services.values():
        service.files[JOB_FILE] = skein.File(source, type="file", visibility="application")
    if job.notify is not None:  # only to the container that tells how the job ended
        source = write_secrets_file(secrets or {}) if write_job else NOTIFY_FILE
        services[KINDS[recipe.kind].service].files[NOTIFY_FILE] = skein.File(source, type="file",
                                                                             visibility="application")
    return spec


def spec_to_yaml(spec: skein.ApplicationSpec, relative_to: str | None = None,
                 job_source: str | None = None) -> str:
    """The spec as YAML; with ``relative_to``, local files are written relative to that directory.

    Skein resolves relative sources against the spec file's directory, so a
    spec written into ``relative_to`` submits from any checkout. With
    ``job_source``, the job file's source is shown as that (``job.json`` for a
    spec built with ``write_job=False``, whose job file does not exist).
    """
    import yaml

    data = spec.to_dict(skip_nulls=True)
    data["tags"] = sorted(data.get("tags", []))  # a set in Skein: no order of its own
    if relative_to is not None:
        for service in data.get("services", {}).values():
            for file in service.get("files", {}).values():
                if file["source"].startswith("file://"):
                    file["source"] = os.path.relpath(file["source"][len("file://"):], relative_to)
    if job_source is not None:
        for service in data.get("services", {}).values():
            if JOB_FILE in service.get("files", {}):
                service["files"][JOB_FILE]["source"] = job_source
            if NOTIFY_FILE in service.get("files", {}):  # secrets: never shown, whatever the source
                service["files"][NOTIFY_FILE]["source"] = NOTIFY_FILE
    return yaml.safe_dump(data, sort_keys=True, default_flow_style=False, width=100)


def check_cluster_limits(recipe: Recipe, client: skein.Client, allocation: Allocation | None = None) -> None:
    """Refuse, before submitting, what the cluster cannot run: an unknown queue, too large a container.

    The limit is the scheduler's maximum allocation for one container (the
    queue's own where it has one), read from the ResourceManager; where that
    cannot be read, the largest running node.

    Parameters
    ----------
    recipe : Recipe
    client : skein.Client
    allocation : scheduler.Allocation, optional
        The limit to check against; read from the ResourceManager by default.

    Raises
    ------
    UsageError
        Naming the field, the cluster's limit, and the fix.
    """
    import skein

    from .scheduler import Allocation, maximum_allocation

    try:
        client.get_queue(recipe.queue)
    except (ValueError, skein.exceptions.SkeinError, KeyError) as exc:
        raise UsageError(f"queue: {recipe.queue!r} is not a queue of this cluster ({exc}); "
                         "list queues with `yarn queue -status QUEUE` or ask your admin") from None
    allocation = allocation or maximum_allocation(recipe.queue, gpus=recipe.resources.gpus > 0)
    if allocation is None:
        nodes = client.get_nodes(states=["RUNNING"])
        if not nodes:
            raise UsageError("the cluster has no RUNNING node to run on; check `yarn node -list -all`")
        # Skein reports each node's resources, GPUs (yarn.io/gpu) included.
        allocation = Allocation(max(node.total_resources.memory for node in nodes),
                                max(node.total_resources.vcores for node in nodes),
                                max(getattr(node.total_resources, "gpus", 0) or 0 for node in nodes),
                                "the largest node; the ResourceManager's web API could not be read")
    check_allocation(recipe.resources, allocation)


def check_allocation(resources: Resources, allocation: Allocation) -> None:
    """Refuse ``resources`` (a recipe's) above ``allocation`` (a :class:`~skein_jupyter.scheduler.Allocation`)."""
    where = f"per container ({allocation.source})"
    if resources.memory > allocation.memory_mb:
        raise UsageError(f"resources.memory: {resources.memory} MiB is above the cluster maximum of "
                         f"{allocation.memory_mb} MiB {where}; ask for at most {allocation.memory_mb} MiB")
    if resources.vcores > allocation.vcores:
        raise UsageError(f"resources.vcores: {resources.vcores} is above the cluster maximum of "
                         f"{allocation.vcores} {where}; ask for at most {allocation.vcores}")
    if resources.gpus and not allocation.gpus:
        raise UsageError(f"resources.gpus: {resources.gpus} asked for, but this cluster has no GPUs "
                         "(no yarn.io/gpu resource); drop --gpus, or use a cluster with GPUs")
    if resources.gpus > (allocation.gpus or 0):
        raise UsageError(f"resources.gpus: {resources.gpus} is above the cluster maximum of {allocation.gpus} "
                         f"{where}; ask for at most {allocation.gpus}")
