"""The one path from a recipe to a submitted application, shared by servers and runs."""
from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .exceptions import ApplicationError, UsageError
from .kinds import FRONTENDS
from .progress import Progress

if TYPE_CHECKING:
    import skein

    from .envstore import PreparedEnvironment
    from .hdfs import HadoopFS
    from .recipe import Recipe

__all__ = ["Submission", "skein_client", "prepare", "render_spec", "submit", "kill_quietly", "job_user", "job_fs",
           "render_on_cluster"]


@dataclasses.dataclass(frozen=True)
class Submission:
    app_id: str
    spec: object            # skein.ApplicationSpec
    environment: object     # envstore.PreparedEnvironment


def skein_client(recipe: Recipe | None = None, log: bool | str = False) -> skein.Client:
    """A Skein client: the global driver if one runs, else a new one (keytab login if the recipe says)."""
    import skein

    global_driver = os.path.exists(os.path.join(skein.properties.config_dir, "driver"))
    if not global_driver and shutil.which("yarn") is None:  # starting a driver runs `yarn classpath`
        raise ApplicationError('cannot start the Skein driver: `yarn` is not on PATH; run on a Hadoop edge node, '
                               'or eval "$(skein-jupyter sandbox env)" for the sandbox')
    kerberos = recipe.kerberos if recipe is not None else None
    if kerberos is not None and kerberos.keytab:
        return skein.Client(keytab=kerberos.keytab, principal=kerberos.principal, log=log)
    if global_driver:
        # skein.Client() would start a driver JVM of its own (seconds) even with a global one running.
        try:
            return skein.Client.from_global_driver()
        except skein.exceptions.ConnectionError:  # DriverNotRunningError is one too
            pass  # a stale driver file: start one of our own
    return skein.Client(log=log)


def job_user(recipe: Recipe) -> str:
    """The Hadoop user a job runs as: its proxy user, its keytab's principal, or yours."""
    from .identity import hadoop_user

    return hadoop_user(recipe.proxy_user, recipe.kerberos.principal)


def job_fs(recipe: Recipe) -> HadoopFS:
    """The cluster filesystem acting as the user the job runs as (its proxy user, if any), so what a
    launch reads and writes for the job is that user's."""
    from .hdfs import HadoopFS

    return HadoopFS(proxy_user=recipe.proxy_user)


def check_environment_packages(recipe: Recipe, metadata: Mapping[str, Any]) -> None:
    """With the environment's metadata at hand, refuse before submitting what cannot start."""
    packages = metadata.get("packages")
    if not packages:
        return
    if recipe.kind == "notebook":
        needed = [FRONTENDS["server"].package, "ipykernel", FRONTENDS[recipe.notebook.frontend].package,
                  *(["jupyter-scheduler"] if recipe.notebook.scheduler else [])]
    elif recipe.kind == "kernel":
        needed = ["ipykernel"]
    else:
        html = any(s.html for s in recipe.flow.steps.values()) if recipe.kind == "flow" else recipe.run.html
        needed = ["papermill", "ipykernel", *(["nbconvert"] if html else [])]
    missing = [name for name in dict.fromkeys(["skein", *needed]) if name not in packages]
    if missing:
        raise UsageError(f"environment {metadata.get('name', '')} ({metadata.get('url', 'local')}) lacks "
                         f"{', '.join(missing)} for this {recipe.kind} job; install "
                         f"{'it' if len(missing) == 1 else 'them'} in the environment and pack it again")


def require_environment(recipe: Recipe) -> None:
    """Refuse a job without an environment, before anything touches the cluster."""
    if recipe.environment is None:
        raise UsageError("environment: missing; give --env (a packed archive, an hdfs:// archive, or a name "
                         "from `skein-jupyter env list`) or set environment: in the recipe")


def prepare(recipe: Recipe, progress: Progress | None = None,
            context: Mapping[str, Any] | None = None) -> tuple[skein.ApplicationSpec, PreparedEnvironment]:
    """Put the environment on the cluster (once) and build the spec; submits nothing.

    ``context`` holds more fields of the :class:`~skein_jupyter.spec.SpecContext`.
    """
    from .envstore import prepare as prepare_environment
    from .spec import SpecContext, build_spec

    require_environment(recipe)
    progress = progress or Progress.quiet()
    progress.step(f"preparing environment {recipe.environment}")
    # A proxy user's job reads the environment from that user's cache, written as that user.
    prepared = prepare_environment(recipe.environment, fs=job_fs(recipe), progress=progress, user=job_user(recipe))
    check_environment_packages(recipe, prepared.metadata)
    environments = {}
    for ref in _step_environments(recipe):  # a flow's steps may have environments of their own
        progress.step(f"preparing environment {ref}")
        step_env = prepare_environment(ref, fs=job_fs(recipe), progress=progress, user=job_user(recipe))
        check_environment_packages(recipe, step_env.metadata)
        environments[ref.value] = (step_env.url, step_env.public)
    spec_context = SpecContext.for_user(job_user(recipe), environment=prepared.url,
                                        environment_public=prepared.public, environments=environments or None,
                                        **(context or {}))
    return build_spec(recipe, spec_context), prepared


def _step_environments(recipe: Recipe) -> list:
    """The environments of a flow's steps other than the recipe's own (none for other kinds)."""
    if recipe.kind != "flow":
        return []
    refs = {s.environment.value: s.environment for s in recipe.flow.steps.values() if s.environment is not None}
    return [ref for value, ref in refs.items() if recipe.environment is None or value != recipe.environment.value]


def render_spec(recipe: Recipe) -> skein.ApplicationSpec:
    """The spec a launch would submit, changing nothing: names are resolved on the cluster, a local
    archive is shown as the local file (a launch uploads it once into your cache).

    No file is written: the spec names ``job.json``, which only a launch
    writes, so the job's parameters and env values stay off the disk."""
    from .environment import EnvironmentKind
    from .envstore import PUBLISHED_DIR, default_upload_dir, resolve_name
    from .spec import SpecContext, build_spec

    changes: dict[str, Any] = {}
    where = [default_upload_dir(job_user(recipe)), PUBLISHED_DIR]
    if recipe.environment is not None and recipe.environment.kind is EnvironmentKind.NAME:
        # Resolved as a launch resolves it: in the cache of the user the job runs as, then published.
        record = resolve_name(recipe.environment.value, where, job_fs(recipe))
        changes = {"environment": record["url"], "environment_public": bool(record.get("public"))}
    environments = {}
    for ref in _step_environments(recipe):
        if ref.kind is EnvironmentKind.NAME:
            record = resolve_name(ref.value, where, job_fs(recipe))
            environments[ref.value] = (record["url"], bool(record.get("public")))
    if environments:
        changes["environments"] = environments
    return build_spec(recipe, SpecContext.for_user(job_user(recipe), **changes), write_job=False)


def kill_quietly(client: skein.Client, app_id: str) -> None:
    """Kill an application unless it already ended; never raises."""
    from .applications import FINAL_STATES

    try:
        if str(client.application_report(app_id).state) not in FINAL_STATES:
            client.kill_application(app_id)
    except Exception:  # best effort on a path that is already failing
        pass


def submit(recipe: Recipe, client: skein.Client, progress: Progress | None = None,
           checks: Callable[[PreparedEnvironment], object] | None = None,
           early_checks: Callable[[], object] | None = None,
           context: Mapping[str, Any] | None = None) -> Submission:
    """Check the request against the cluster, prepare, and submit.

    ``early_checks()``, if given, runs before the environment is prepared, so
    a bad request is refused before a large archive is uploaded.
    ``checks(prepared)``, if given, runs once the environment is prepared
    (its metadata at hand) and may refuse the job before it is submitted.
    ``context`` holds more fields of the spec's context (see :func:`prepare`).

    Returns
    -------
    Submission
    """
    from .spec import check_cluster_limits, discard_job_file

    progress = progress or Progress.quiet()
    check_cluster_limits(recipe, client)
    if early_checks is not None:
        early_checks()
    spec, prepared = prepare(recipe, progress, context)
    try:  # the job file is a temporary file: gone once submitted or refused
        if checks is not None:
            checks(prepared)
        cached = use_cached_runtime(spec, recipe)
        progress.step("submitting to YARN")
        try:
            app_id = _submit(client, spec)
        except _Missing as missing:
            ours = [url for url in cached if url.rsplit("/", 1)[-1] == missing.path.rsplit("/", 1)[-1]]
            if not ours:
                raise UsageError(f"{missing.path} does not exist on the cluster; check the environment, input "
                                 "notebook and files of the job (`skein-jupyter env list` lists environments)"
                                 ) from None
            # Our own runtime zip, removed from the cluster since a launch put it there: put it again, once.
            from .runtime_zip import forget

            forget(ours[0])
            use_cached_runtime(spec, recipe, cached)
            try:
                app_id = _submit(client, spec)
            except _Missing as again:
                raise ApplicationError(f"{again.path} does not exist on the cluster, though it was just put "
                                       "there; try again") from None
    finally:
        discard_job_file(spec)
    progress.step(f"submitted {app_id}")
    return Submission(app_id, spec, prepared)


class _Missing(Exception):
    """A file the spec names is not on the cluster."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


def _submit(client: skein.Client, spec: skein.ApplicationSpec) -> str:
    try:
        return str(client.submit(spec))  # Skein copies the job file into the application's staging dir
    except Exception as exc:
        reason = str(exc).strip().splitlines()[-1][:300]
        if reason.startswith("File does not exist: "):
            raise _Missing(reason[len("File does not exist: "):]) from None
        raise ApplicationError(f"YARN refused the application: {reason}") from None


def use_cached_runtime(spec: skein.ApplicationSpec, recipe: Recipe,
                       originals: Mapping[str, str] | None = None) -> dict[str, str]:
    """Name the runtime and deps zips by their copies in the job user's private cache on the cluster.

    Skein then uploads neither with each application, and YARN localizes
    each once per node (its private cache, per user) rather than per
    application. Returns ``{cluster location: local zip}``; given that
    mapping back (``originals``), puts the zips there again.
    """
    from .runtime_zip import on_cluster

    import skein

    originals = dict(originals or {})
    local_of: dict[str, str] = {}
    fs, user = job_fs(recipe), job_user(recipe)
    for service in spec.services.values():
        for name, file in list(service.files.items()):
            source = file.source[len("file://"):] if file.source.startswith("file://") else None
            if source is None and file.source in originals:
                source = originals[file.source]
            if source is None or not os.path.basename(source).startswith(("skein_jupyter_runtime-",
                                                                              "skein_jupyter_deps-")):
                continue
            if source not in local_of:
                local_of[source] = on_cluster(source, fs, user)
                originals[local_of[source]] = source
            service.files[name] = skein.File(local_of[source], type=file.type, visibility="private")
    return originals


def render_on_cluster(recipe: Recipe, client: skein.Client, directory: str, stage: str,
                      progress: Progress | None = None, checks: Callable[[PreparedEnvironment], object] | None = None,
                      early_checks: Callable[[], object] | None = None) -> skein.ApplicationSpec:
    """Check and prepare as :func:`submit` does, submitting nothing: a spec to submit later, from anywhere.

    Every local file of the spec (job file, input notebook, runtime zip, a
    recipe's ``files:``) is copied into ``stage/files/<service>/<name>``
    (mode 600) and named in the spec at ``hdfs://<directory>/files/<service>/<name>``,
    where the caller uploads ``stage`` (privately); files already on the
    cluster (the prepared environment) are referenced as they are. Visibility
    stays as :func:`~skein_jupyter.spec.build_spec` chose it.
    """
    from .spec import check_cluster_limits, discard_job_file

    progress = progress or Progress.quiet()
    check_cluster_limits(recipe, client)
    if early_checks is not None:
        early_checks()
    spec, prepared = prepare(recipe, progress, None)
    moved = []
    try:
        if checks is not None:
            checks(prepared)
        for service_name, service in spec.services.items():
            for name, file in service.files.items():
                if not file.source.startswith("file://"):
                    continue
                source = file.source[len("file://"):]
                if not os.path.isfile(source):
                    raise UsageError(f"{name}: {source} is missing or not a regular file; a scheduled job's files "
                                     "must be files (pack a directory as an archive, or put it on HDFS)")
                local = os.path.join(stage, "files", service_name, name)
                os.makedirs(os.path.dirname(local), mode=0o700, exist_ok=True)
                shutil.copyfile(source, local)
                os.chmod(local, 0o600)
                moved.append((file, f"hdfs://{directory.rstrip('/')}/files/{service_name}/{name}"))
    finally:
        discard_job_file(spec)  # the temporary job file, while the spec still names it
    for file, source in moved:
        file.source = source
    return spec
