"""``python -m skein_jupyter_runtime <kind>``: run the job described by ``SKEIN_JUPYTER_JOB``."""
import base64
import json
import os
import sys


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    kinds = ("notebook",)
    if len(argv) != 1 or argv[0] not in kinds:
        print(f"usage: python -m skein_jupyter_runtime {{{','.join(kinds)}}}", file=sys.stderr)
        return 2
    # Base64 of JSON: YARN's launch script does not escape quotes in environment values.
    job = json.loads(base64.urlsafe_b64decode(os.environ["SKEIN_JUPYTER_JOB"].encode()))
    from . import notebook

    return notebook.main(job)


if __name__ == "__main__":
    sys.exit(main())
