"""Recipe -> ``skein.ApplicationSpec``, built as objects.

What runs in the container (the *runtime*) is shipped with the application
as ``skein_jupyter_runtime.zip`` on ``PYTHONPATH``, so the packed environment
needs only skein and the job's Jupyter packages. The container activates
the environment, then runs ``python -m skein_jupyter_runtime <kind>``, which
reads its job from the ``SKEIN_JUPYTER_JOB`` environment variable (JSON,
base64-encoded: YARN's launch script quotes environment values without
escaping, so a JSON text would not survive it).
Nothing secret goes into a spec: the server token is made in the container.
"""
import base64
import dataclasses
import json
import os
import shlex

from .environment import EnvironmentKind
from .exceptions import UsageError

__all__ = ["SpecContext", "build_spec", "encode_job", "decode_job", "spec_to_yaml", "check_cluster_limits", "SERVICE_NAMES", "APP_TAG",
           "RUNTIME_FILE", "JOB_ENV", "DEFAULT_ENVIRONMENTS_DIR"]

RUNTIME_FILE = "skein_jupyter_runtime.zip"
JOB_ENV = "SKEIN_JUPYTER_JOB"
ENV_DIR = "environment"
INPUT_NOTEBOOK = "input.ipynb"
APP_TAG = "skein-jupyter"
SERVICE_NAMES = {"notebook": "jupyter", "run": "papermill", "sweep": "papermill"}
#: Where admins publish environments; a recipe's environment name resolves here.
DEFAULT_ENVIRONMENTS_DIR = "hdfs:///apps/skein-jupyter/environments"
MASTER_MEMORY = "512 MiB"
#: File names a job localizes itself: a recipe's ``files:`` may not take them.
RESERVED_FILES = frozenset({ENV_DIR, RUNTIME_FILE, INPUT_NOTEBOOK, "job.json", "outputs", "work"})


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
        Location of the environment archive; resolved from the recipe when not given.
    environment_public : bool
        The archive is world-readable: YARN localizes it once into its public
        cache and shares it between applications and users.
    environments_dir : str
        Where published environment names resolve.
    """

    user: str
    runtime: str
    environment: str = None
    environment_public: bool = False
    environments_dir: str = DEFAULT_ENVIRONMENTS_DIR

    @classmethod
    def for_user(cls, user=None, **changes):
        """The context of a launch by ``user``: the runtime zip of the installed sources."""
        from .runtime_zip import runtime_zip

        changes.setdefault("runtime", str(runtime_zip()))
        from .identity import hadoop_user

        return cls(user=user or hadoop_user(), **changes)

    @classmethod
    def example(cls):
        """The fixed context the example specs in ``specs/`` are rendered with (user ``alice``)."""
        return cls(user="alice", runtime=f"hdfs:///user/alice/.skein-jupyter/runtime/{RUNTIME_FILE}")

    def environment_url(self, recipe):
        if self.environment:
            return self.environment
        ref = recipe.environment
        if ref is None:
            raise UsageError("environment: missing; give --env (a packed archive, an hdfs:// archive, or a "
                             "name from `skein-jupyter env list`) or set environment: in the recipe")
        if ref.kind is EnvironmentKind.NAME:
            return f"{self.environments_dir.rstrip('/')}/{ref.value}.tar.gz"
        return os.path.abspath(os.path.expanduser(ref.value)) if ref.kind is EnvironmentKind.LOCAL \
            else ref.value


def encode_job(data):
    return base64.urlsafe_b64encode(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).decode()


def decode_job(text):
    return json.loads(base64.urlsafe_b64decode(text.encode()))


def _job(recipe, user):
    """What the runtime needs to know, encoded for ``SKEIN_JUPYTER_JOB``."""
    data = recipe.to_dict()
    data["name"] = recipe.app_name
    for key in ("environment", "env", "files", "acls", "proxy_user", "kerberos", "tags", "queue",
                "node_label", "max_attempts"):
        data.pop(key, None)
    if "run" in data:
        data["run"]["input"] = INPUT_NOTEBOOK
        if "://" not in data["run"]["notebook"]:  # the edge node's path means nothing in the container
            data["run"]["notebook"] = os.path.basename(data["run"]["notebook"])
        data["user"] = user
        # Every set explicitly, so the runtime need not know how grids expand.
        data["sets"] = recipe.sweep.sets() if recipe.kind == "sweep" else [{}]
        data.pop("sweep", None)
    return encode_job(data)


def _script(kind):
    return "\n".join([
        shlex.join(["source", f"{ENV_DIR}/bin/activate"]),
        shlex.join(["exec", "python", "-m", "skein_jupyter_runtime", kind]),
    ])


def build_spec(recipe, context):
    """The Skein application spec of ``recipe``.

    Returns
    -------
    skein.ApplicationSpec
    """
    import skein

    env_url = context.environment_url(recipe)
    # Uploaded archives never change (content-addressed, or timestamped by
    # YARN), so YARN may keep them unpacked in its per-user (or public) cache
    # and later launches skip localization; a local file is staged per app.
    visibility = "public" if context.environment_public else "private" if "://" in env_url else "application"
    files = {ENV_DIR: skein.File(env_url, type="archive", visibility=visibility),
             RUNTIME_FILE: skein.File(context.runtime, type="file")}
    for name, source in recipe.files.items():
        files[name] = skein.File(source)
    instances = 1
    max_restarts = 0
    if recipe.kind in ("run", "sweep"):
        files[INPUT_NOTEBOOK] = skein.File(recipe.run.notebook, type="file")
        max_restarts = recipe.run.retries
    if recipe.kind == "sweep":
        # Workers take parameter sets from a queue in the key-value store.
        instances = min(recipe.sweep.parallel, len(recipe.sweep.sets()))
    resources = recipe.resources
    service = skein.Service(
        resources=skein.Resources(memory=f"{resources.memory} MiB", vcores=resources.vcores,
                                  gpus=resources.gpus),
        files=files,
        env={**recipe.env, "PYTHONPATH": RUNTIME_FILE, JOB_ENV: _job(recipe, context.user)},
        script=_script(recipe.kind),
        instances=instances,
        max_restarts=max_restarts,
    )
    acls = recipe.acls
    return skein.ApplicationSpec(
        name=recipe.app_name,
        queue=recipe.queue,
        user=recipe.proxy_user or "",
        node_label=recipe.node_label,
        tags=sorted({*recipe.tags, APP_TAG, f"{APP_TAG}-{recipe.kind}"}),
        acls=skein.ACLs(enable=acls.enabled, view_users=list(acls.view_users),
                        view_groups=list(acls.view_groups), modify_users=list(acls.modify_users),
                        modify_groups=list(acls.modify_groups)),
        max_attempts=recipe.max_attempts,
        master=skein.Master(resources=skein.Resources(memory=MASTER_MEMORY, vcores=1)),
        services={SERVICE_NAMES[recipe.kind]: service},
    )


def spec_to_yaml(spec, relative_to=None):
    """The spec as YAML; with ``relative_to``, local files are written relative to that directory.

    Skein resolves relative sources against the spec file's directory, so a
    spec written into ``relative_to`` submits from any checkout.
    """
    import yaml

    data = spec.to_dict(skip_nulls=True)
    data["tags"] = sorted(data.get("tags", []))  # a set in Skein: no order of its own
    if relative_to is not None:
        for service in data.get("services", {}).values():
            for file in service.get("files", {}).values():
                if file["source"].startswith("file://"):
                    file["source"] = os.path.relpath(file["source"][len("file://"):], relative_to)
    return yaml.safe_dump(data, sort_keys=True, default_flow_style=False, width=100)


def check_cluster_limits(recipe, client, allocation=None):
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
        allocation = Allocation(max(node.total_resources.memory for node in nodes),
                                max(node.total_resources.vcores for node in nodes), None,
                                "the largest node")
    check_allocation(recipe.resources, allocation)


def check_allocation(resources, allocation):
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
