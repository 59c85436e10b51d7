"""``python -m skein_jupyter_runtime <kind>``: run the job described by ``SKEIN_JUPYTER_JOB``.

``execute ARGS.json`` is internal: the papermill process of one run, started by the run's worker.
"""
import base64
import json
import os
import sys

KINDS = ("notebook", "run", "sweep")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 2 and argv[0] == "execute":
        from . import execute

        return execute.main(argv[1])
    if len(argv) != 1 or argv[0] not in KINDS:
        print(f"usage: python -m skein_jupyter_runtime {{{','.join(KINDS)}}}", file=sys.stderr)
        return 2
    # Base64 of JSON: YARN's launch script does not escape quotes in environment values.
    job = json.loads(base64.urlsafe_b64decode(os.environ["SKEIN_JUPYTER_JOB"].encode()))
    if argv[0] == "notebook":
        from . import notebook

        return notebook.main(job)
    from . import batch

    return batch.main(job)


if __name__ == "__main__":
    sys.exit(main())
