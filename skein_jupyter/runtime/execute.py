"""The papermill process of one run: ``python -m skein_jupyter_runtime execute ARGS.json``.

Started by :mod:`.batch` for each parameter set, so that a whole-run timeout
or a stop request can end it (and its kernel) without taking the supervisor
down. It reports, as JSON lines on the file descriptor the supervisor gave it,
``{"event": "start", "cells": N}``, ``{"event": "cell", "index": i, "source": ...}``
when a cell starts, ``{"event": "done", "index": i}`` when it ends, and one
``{"event": "result", "status": ...}`` at the end.

Papermill saves the output notebook after every cell (and every 30 seconds
during a long one); on SIGTERM (stop) or SIGUSR1 (timeout) the notebook is
saved as it is and the kernel, which watches its parent, ends with us.
"""
import json
import os
import signal

from .common import log

STATUS_BY_SIGNAL = {signal.SIGTERM: "stopped", signal.SIGINT: "stopped", signal.SIGUSR1: "timed_out"}


class Interrupted(BaseException):
    """Raised in the main thread by a signal; BaseException so that no ``except Exception`` swallows it."""

    def __init__(self, status):
        super().__init__(status)
        self.status = status


def _die_with_parent():
    """Ask Linux to send us SIGTERM when the supervisor dies, so no papermill outlives its container."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the container's process group is still killed by YARN


def _source_line(cell):
    source = cell.get("source", "")
    source = "".join(source) if isinstance(source, list) else source
    lines = [line for line in source.splitlines() if line.strip()]
    return lines[0][:120] if lines else ""


def _track_cells(emit):
    """Report cell starts and ends from papermill's execution manager, whatever the engine."""
    import papermill.engines as engines

    base = engines.NotebookExecutionManager

    class Tracked(base):
        def notebook_start(self, **kwargs):
            super().notebook_start(**kwargs)
            emit(event="start", cells=len(self.nb.cells))

        def cell_start(self, cell, cell_index=None, **kwargs):
            # The cell papermill writes holds the parameters' values: its source goes nowhere.
            injected = "injected-parameters" in (cell.get("metadata", {}).get("tags") or [])
            emit(event="cell", index=cell_index, source="# Parameters" if injected else _source_line(cell),
                 type=cell.get("cell_type"))
            super().cell_start(cell, cell_index, **kwargs)

        def cell_complete(self, cell, cell_index=None, **kwargs):
            super().cell_complete(cell, cell_index, **kwargs)
            emit(event="done", index=cell_index)

    engines.NotebookExecutionManager = Tracked


def main(args_path):
    _die_with_parent()
    with open(args_path) as f:
        args = json.load(f)
    out = os.fdopen(args.pop("progress_fd"), "w", buffering=1)

    def emit(**event):
        try:
            out.write(json.dumps(event) + "\n")
        except (OSError, ValueError):  # the supervisor stopped reading; keep running
            pass

    def interrupt(signum, frame):
        raise Interrupted(STATUS_BY_SIGNAL[signum])

    for signum in STATUS_BY_SIGNAL:
        signal.signal(signum, interrupt)
    try:
        import papermill
        from papermill.exceptions import PapermillExecutionError

        _track_cells(emit)
        papermill.execute_notebook(
            args["input"], args["output"], parameters=args["parameters"], kernel_name=args["kernel"],
            engine_name=args["engine"], execution_timeout=args["cell_timeout"],
            start_timeout=args["start_timeout"], progress_bar=False, **args["papermill_options"])
    except Interrupted as exc:
        emit(event="result", status=exc.status)
        return 1
    except PapermillExecutionError as exc:
        emit(event="result", status="failed", cell=exc.cell_index, execution_count=exc.exec_count,
             ename=exc.ename, evalue=str(exc.evalue)[:2000])
        return 1
    except Exception as exc:  # kernel died, no such kernel, unreadable notebook, ...
        emit(event="result", status="failed", cell=None, ename=type(exc).__name__, evalue=str(exc)[:2000])
        log(f"papermill failed: {type(exc).__name__}: {exc}")
        return 1
    emit(event="result", status="succeeded")
    return 0
