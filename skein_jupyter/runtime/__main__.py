"""``python -m skein_jupyter_runtime <kind>``: run the job in ``./job.json``.

``engine FD`` is internal: the papermill engine of a run's worker (:mod:`.execute`).
"""
import os
import sys

from .kinds import KINDS


def apply_env(env):
    """Set the job's environment variables in this process, for Jupyter, papermill and kernels.

    Values reach those processes exactly as written: no shell or launch script
    sees them. ``PYTHONPATH`` is joined after the runtime's own entry, which
    child processes of the runtime need.
    """
    runtime_path = os.environ.get("PYTHONPATH")
    os.environ.update(env)
    if "PYTHONPATH" in env and runtime_path:
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (runtime_path, env["PYTHONPATH"]) if p)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 2 and argv[0] == "engine":
        from . import execute

        return execute.main(argv[1])
    if len(argv) != 1 or argv[0] not in KINDS:
        print(f"usage: python -m skein_jupyter_runtime {{{','.join(KINDS)}}}", file=sys.stderr)
        return 2
    from .common import connect, fail, log
    from .job import JOB_FILE, JobError, read_job

    try:
        job = read_job(JOB_FILE)
    except (OSError, JobError) as exc:
        return fail(connect(), f"cannot read the job from {JOB_FILE}: {exc}")
    if job.kind != argv[0]:
        return fail(connect(), f"{JOB_FILE} is a {job.kind} job, not a {argv[0]} job")
    log(f"{job.kind} job {job.name!r} for {job.user}"
        + (f"; environment variables {', '.join(sorted(job.env))}" if job.env else ""))
    apply_env(job.env)
    if job.kind == "notebook":
        from . import notebook

        return notebook.main(job)
    if job.kind == "kernel":
        from . import kernel

        return kernel.main(job)
    if job.kind == "flow":
        from . import flow

        return flow.main(job)
    from . import batch

    return batch.main(job)


if __name__ == "__main__":
    sys.exit(main())
