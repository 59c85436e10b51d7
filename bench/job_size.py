"""``python -m bench.job_size``: the size of the job file of a sweep of 1, 1,000 and 10,000 sets. No cluster.

The job travels as the private file ``job.json`` (never in an environment
variable, whose size Linux caps at 128 KiB), so its size matters only for
the upload and the runtime's start: this prints it, and how long encoding
and decoding take.
"""
import os
import time

from skein_jupyter.recipe import build
from skein_jupyter.runtime.job import from_json, to_json
from skein_jupyter.spec import job_from_recipe

NOTEBOOK = os.path.join(os.path.dirname(__file__), os.pardir, "recipes", "notebooks", "report.ipynb")


def sweep_job(n_sets):
    """The job of a sweep of ``n_sets`` sets of three parameters (a grid of n_sets x 1 x 1)."""
    grid = {"alpha": [round(i * 0.001, 3) for i in range(n_sets)], "n": [1000], "label": ["bench"]}
    recipe = build({"kind": "sweep", "environment": "hdfs:///envs/a.tar.gz",
                    "run": {"notebook": os.path.normpath(NOTEBOOK)}, "sweep": {"grid": grid}})
    return job_from_recipe(recipe, "alice")


def sizes(counts=(1, 1000, 10000)):
    """``[(sets, bytes, encode seconds, decode seconds)]``."""
    rows = []
    for n in counts:
        job = sweep_job(n)
        started = time.perf_counter()
        text = to_json(job)
        encoded = time.perf_counter()
        assert from_json(text) == job
        rows.append((n, len(text.encode()), encoded - started, time.perf_counter() - encoded))
    return rows


def main():
    print(f"{'sets':>7}  {'job.json':>10}  {'encode':>8}  {'decode':>8}")
    for n, size, encode, decode in sizes():
        print(f"{n:>7}  {size / 1024:>7.1f} KiB  {encode * 1000:>6.1f}ms  {decode * 1000:>6.1f}ms")


if __name__ == "__main__":
    main()
