"""``python -m bench [--runs N] [--json FILE] [--only NAME ...]``: figures measured on the sandbox.

Brings the sandbox up if needed, builds (once, cached) a virtualenv with
the Jupyter packages, and measures each figure next to its baseline in the
same run. Timings vary from machine to machine; the ratios are the point.
"""
import argparse
import os
import sys

from . import flows, kernels, scenarios, set_cpu, sweeps
from .harness import table, to_json

GROUPS = {
    "floor": scenarios.floor,
    "notebook": scenarios.notebook_ready,
    "workspace": scenarios.workspace,
    "batch": scenarios.batch_overhead,
    "sweep": sweeps.sweep_speedup,
    "sweep-burst": sweeps.sweep_burst,
    "set-cpu": set_cpu.set_cpu,
    "flow": flows.flow_speedup,
    "packing": scenarios.packing,
    "caching": scenarios.environment_caching,
    "cli": scenarios.cli_startup,
    "kernel": kernels.kernel_figures,
}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median, min, max shown)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--only", nargs="+", choices=list(GROUPS), help="measure only these groups")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    context = scenarios.Context.create()
    groups = [GROUPS[name](context, args.runs) for name in (args.only or GROUPS)]
    print(table(groups))
    if args.json:
        with open(args.json, "w") as handle:
            handle.write(to_json(groups) + "\n")
        print(f"\nwritten to {os.path.abspath(args.json)}", file=sys.stderr)


if __name__ == "__main__":
    main()
