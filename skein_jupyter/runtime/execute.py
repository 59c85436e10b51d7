"""The papermill engine of a worker: ``python -m skein_jupyter_runtime engine FD``.

Started by :mod:`.setrun` once per container (a new one only after a stop, a
timeout or a crash), so the supervisor never goes down with a notebook and
Python, papermill and nbclient are imported once, not once per set. It reads
one line per parameter set on its standard input: the path of a private file
with that set's arguments (never a value on a command line). For each set it
reports, as JSON lines on file descriptor ``FD``,
``{"event": "start", "cells": N}``, ``{"event": "cell", "index": i, "source": ...}``
when a cell starts, ``{"event": "done", "index": i}`` when it ends, and one
``{"event": "result", "status": ...}`` at the end. It ends at the end of its input.

Every set gets a fresh kernel, shut down when the set ends. With
``"prestart": true`` the engine starts the *next* set's kernel (a kernel
nothing has run in yet) once this set's kernel has answered, at its first
cell, so the next set does not wait for one to boot and two kernels never
boot side by side. An unused one is shut down when the engine ends. With
``"reuse_kernel": true`` (a sweep's ``reuse_kernel`` opt-in) the sets run one
after another in one kernel the engine starts: none is started ahead, and a
new one only after a set that did not succeed, or when it died.

Papermill saves the output notebook after every cell (and every 30 seconds
during a long one), here to a temporary file renamed over it, so the file is
always a whole notebook for the checkpoints that upload it. On SIGTERM (stop)
or SIGUSR1 (timeout) the notebook is saved as it is, the kernel is shut down
and the engine ends (kernels also watch their parent, and end with it).
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import sys

from .common import log

STATUS_BY_SIGNAL = {signal.SIGTERM: "stopped", signal.SIGINT: "stopped", signal.SIGUSR1: "timed_out"}

#: papermill options with which a kernel started ahead is the kernel papermill would start.
PRESTART_SAFE = {"log_output", "stdout_file", "stderr_file", "request_save_on_cell_execute", "report_mode",
                 "autosave_cell_every", "cwd"}


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread by a signal; not an Exception, so that no ``except Exception`` swallows it.

    A KeyboardInterrupt because asyncio lets only those (and SystemExit) out
    of a task at once: raised in nbclient's output task (a save there), any
    other exception would wait in the task until the running cell ended.
    """

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
            # The cell papermill writes holds the parameters' values: its source goes nowhere. The
            # notebook's own parameters cell holds its defaults, which this set may not run with.
            tags = cell.get("metadata", {}).get("tags") or []
            source = "# Parameters" if "injected-parameters" in tags else \
                "# Parameters (the notebook's defaults)" if "parameters" in tags else _source_line(cell)
            emit(event="cell", index=cell_index, source=source, type=cell.get("cell_type"))
            super().cell_start(cell, cell_index, **kwargs)
            _start_next()  # this set's kernel has answered: the next set's may boot now

        def cell_complete(self, cell, cell_index=None, **kwargs):
            super().cell_complete(cell, cell_index, **kwargs)
            emit(event="done", index=cell_index)

    engines.NotebookExecutionManager = Tracked


def _atomic_saves():
    """Make papermill's saves of a local notebook atomic: a temporary file beside it, renamed over it.

    Papermill writes in place (truncate, then write). A checkpoint uploading
    the file at that moment, or a stop landing in the write, would find it
    empty or cut short and replace the last good copy with it. Now a reader
    sees the previous whole notebook or the new one. A stop or timeout signal
    that comes during a save is raised when the save is done (see
    :func:`_interrupt`); a write that fails leaves the previous notebook.
    """
    from papermill.iorw import papermill_io

    local = papermill_io.get_handler(os.path.join(os.sep, "output.ipynb"))  # the handler of plain paths

    def write(buf, path):
        # Relative paths are from papermill's cwd, as in its own handler (without changing the process's).
        target = os.path.abspath(os.path.join(getattr(local, "_cwd", None) or os.getcwd(), path))
        folder, name = os.path.split(target)
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"output folder {folder} doesn't exist.")
        partial = os.path.join(folder, f".{name}.partial")
        with _stops_deferred():
            try:
                with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w",
                          encoding="utf-8") as f:
                    f.write(buf)
                os.replace(partial, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(partial)
                raise

    local.write = write
    return local


#: Work a stop must not cut short in progress (depth: a save, a kernel's shutdown) and the stop or timeout that
#: came during it (pending), raised when it is done; see :func:`_stops_deferred`.
_deferred: dict = {"depth": 0, "pending": None}


@contextlib.contextmanager
def _stops_deferred():
    """Hold a stop or timeout that comes during the block, and raise it when the block is done.

    A save then leaves a whole notebook, and a kernel's shutdown a kernel
    that is gone (not one left running until it notices its parent ended).
    """
    _deferred["depth"] += 1
    try:
        yield
    finally:
        _deferred["depth"] -= 1
        if not _deferred["depth"]:
            pending, _deferred["pending"] = _deferred["pending"], None
            if pending is not None:
                raise Interrupted(pending)


def _interrupt(signum, frame):
    """The stop and timeout signals' handler (Python runs it in the main thread, where papermill saves)."""
    if _deferred["depth"]:
        _deferred["pending"] = STATUS_BY_SIGNAL[signum]  # raised when the save or shutdown is done
        return
    raise Interrupted(STATUS_BY_SIGNAL[signum])


def _take_signals() -> None:
    """Route the stop and timeout signals to :func:`_interrupt`.

    Taken again after every set, defensively: nbclient's asynchronous kernel
    setup replaces the SIGINT and SIGTERM handlers while it runs and leaves the
    defaults after it (SIGTERM would then end the engine at once, in the middle
    of shutting a kernel down). The synchronous path papermill takes today
    leaves them alone.
    """
    for signum in STATUS_BY_SIGNAL:
        signal.signal(signum, _interrupt)


def kernel_conflicts(engine: str | None, papermill_options: dict) -> list[str]:
    """The settings with which papermill starts a kernel its own way, so the engine cannot start (ahead of a
    set, or to share) the kernel papermill would; empty when there are none. The recipe refuses
    ``reuse_kernel`` with any."""
    conflicts = [f"run.engine {engine}"] if engine not in (None, "nbclient") else []
    other = sorted(set(papermill_options) - PRESTART_SAFE)
    return conflicts + ([f"run.papermill_options {', '.join(other)}"] if other else [])


def _kernel_key(args):
    """What a kernel started ahead must match (kernel name, working directory); None: start none ahead."""
    if kernel_conflicts(args.get("engine"), args["papermill_options"]):
        return None
    name = args["kernel"]
    if not name:
        try:
            with open(args["input"]) as f:
                name = json.load(f)["metadata"]["kernelspec"]["name"]
        except (OSError, ValueError, KeyError, TypeError):
            return None  # papermill says why when it runs the set
    return name, args["papermill_options"].get("cwd")


class Spare:
    """A kernel the engine starts and owns: one started ahead for the next set (fresh, nothing run in it),
    or, with ``reuse``, the kernel a container's sets share.

    Papermill (nbclient) does not own a kernel manager it is given, so it
    leaves the clients it made open: :meth:`close_clients` closes their
    channels (the heartbeat thread, the sockets) after a set, :meth:`shutdown`
    those and the manager's zmq context too. A shared kernel keeps no output
    history (IPython's ``Out`` would hold every set's results).
    """

    def __init__(self, key, reuse: bool = False):
        from jupyter_client.manager import AsyncKernelManager
        from jupyter_core.utils import run_sync

        clients = []

        class Manager(AsyncKernelManager):
            def client(self, **kwargs):
                kc = super().client(**kwargs)
                clients.append(kc)
                return kc

        self.key, self.run_sync, self.clients = key, run_sync, clients
        self.km = Manager(kernel_name=key[0])
        # What nbclient passes to an IPython kernel it starts itself (no history file).
        extra = ["--HistoryManager.hist_file=:memory:"] if self.km.ipykernel else []
        spec = self.km.kernel_spec
        if reuse and (self.km.ipykernel or any("ipykernel" in part for part in (spec.argv if spec else []))):
            extra.append("--InteractiveShell.cache_size=0")  # an IPython kernel, whatever its name
        try:
            run_sync(self.km.start_kernel)(extra_arguments=extra, cwd=key[1] or os.getcwd())
        except BaseException:  # a failed or interrupted start leaves no process behind
            self.shutdown()
            raise

    def alive(self) -> bool:
        try:
            return bool(self.run_sync(self.km.is_alive)())
        except Exception:
            return False

    def close_clients(self):
        """Close the clients papermill made for a set (the kernel keeps running)."""
        for kc in self.clients:
            try:
                kc.stop_channels()
            except Exception as exc:
                log(f"engine's kernel: client: {type(exc).__name__}: {exc}")
        self.clients.clear()

    def shutdown(self):
        """Shut the kernel down; a stop or timeout that comes meanwhile is raised once it is gone."""
        with _stops_deferred():
            try:
                if self.run_sync(self.km.is_alive)():
                    self.run_sync(self.km.shutdown_kernel)(now=True)
                self.run_sync(self.km.cleanup_resources)()
            except Exception as exc:  # it is gone already, or going
                log(f"engine's kernel: shutdown: {type(exc).__name__}: {exc}")
            self.close_clients()
            try:
                self.km.context.destroy(linger=0)
            except Exception as exc:
                log(f"engine's kernel: zmq context: {type(exc).__name__}: {exc}")


def run_set(args, emit, km=None):
    """One set with papermill (in ``km``'s kernel when given); its status."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    try:
        papermill.execute_notebook(
            args["input"], args["output"], parameters=args["parameters"], kernel_name=args["kernel"],
            engine_name=args["engine"], execution_timeout=args["cell_timeout"],
            start_timeout=args["start_timeout"], progress_bar=False, **args["papermill_options"],
            **({"km": km} if km is not None else {}))
    except Interrupted as exc:
        emit(event="result", status=exc.status)
        return exc.status
    except PapermillExecutionError as exc:
        emit(event="result", status="failed", cell=exc.cell_index, execution_count=exc.exec_count,
             ename=exc.ename, evalue=str(exc.evalue)[:2000])
        return "failed"
    except Exception as exc:  # kernel died, no such kernel, unreadable notebook, ...
        emit(event="result", status="failed", cell=None, ename=type(exc).__name__, evalue=str(exc)[:2000])
        log(f"papermill failed: {type(exc).__name__}: {exc}")
        return "failed"
    emit(event="result", status="succeeded")
    return "succeeded"


def _ahead(key, reuse: bool = False):
    """A kernel of the engine's own for a next set (or, with ``reuse``, for the sets to share), or None:
    papermill then starts that set's kernel, and says why."""
    try:
        return Spare(key, reuse)
    except Exception as exc:
        log(f"engine's kernel not started: {type(exc).__name__}: {exc}")
        return None


#: The next set's kernel: what to start (``key``) once the running set's kernel has answered, and the one started.
_next: dict = {"key": None, "spare": None}


def _start_next() -> None:
    """Start the next set's kernel, once per set, at the set's first cell (its own kernel is up by then).

    Two kernels never boot side by side: on a busy node that could exceed
    the kernel start timeout.
    """
    key, _next["key"] = _next["key"], None
    if key is not None and _next["spare"] is None:
        _next["spare"] = _ahead(key)


#: Said once per engine: sets asked to share a kernel that the engine cannot start itself.
_said: set = set()


def serve(lines, emit) -> int:
    """Run the sets whose argument files ``lines`` name, one after another.

    Returns 1 when a stop or timeout ended a set or came between sets, 0 when
    every set ran (a stop during the shutdown of the last kernel changes nothing:
    the sets' results were sent; one held through the last set's own bookkeeping
    gives 1, which changes nothing either).
    """
    spare = current = None
    _take_signals()  # and again after every set
    try:
        for line in lines:
            with open(line.strip()) as f:
                args = json.load(f)
            key = _kernel_key(args)
            current = spare if spare is not None and key is not None and spare.key == key else None
            if current is not None and not current.alive():  # it died waiting: papermill starts one itself
                log("the engine's kernel died before its set; a new one starts")
                current = None
            if spare is not None and current is None:
                spare.shutdown()
            spare = None
            reuse = key is not None and bool(args.get("reuse_kernel"))
            if args.get("reuse_kernel") and key is None and "reuse" not in _said:
                _said.add("reuse")
                log("reuse_kernel: the engine cannot start this notebook's kernel itself (no kernel name, or "
                    "another papermill engine); a fresh kernel per set")
            if reuse and current is None:  # the engine's own, so papermill leaves it running after the set
                current = _ahead(key, reuse=True)
                if current is not None:
                    log("reuse_kernel: a new kernel for this set and the next ones (until a set does not succeed)")
            ahead = key is not None and bool(args.get("prestart")) and not reuse
            _deferred["pending"] = None
            _next.update(key=key if ahead else None, spare=None)  # started at this set's first cell
            status = None
            try:
                status = run_set(args, emit, current.km if current is not None else None)
            finally:
                with _stops_deferred():  # a stop meanwhile lands once the kernels are accounted for
                    _take_signals()
                    _next["key"] = None
                    spare, _next["spare"] = _next["spare"], None
                    # Shared only after a success: a failure may leave a cell running (a cell timeout) or
                    # the kernel in a state the retry or the next set should not inherit.
                    if current is not None and reuse and status == "succeeded" and current.alive():
                        spare = current  # the next set runs in it
                        current.close_clients()
                    elif current is not None:  # a fresh kernel per set: this one is done
                        current.shutdown()
                    current = None
            if status in ("stopped", "timed_out"):
                return 1
            if ahead and spare is None:  # no cell ran: the next set's kernel starts now
                spare = _ahead(key)
    except Interrupted:  # between sets: nothing was running
        return 1
    finally:
        for kernel in (current, spare):  # current: a stop came before its set started
            if kernel is not None:
                try:
                    kernel.shutdown()
                except Interrupted:  # a stop during this last cleanup, raised once the kernel was gone
                    log("a stop came while the engine shut its last kernel down")
    return 0


def main(events_fd):
    _die_with_parent()
    out = os.fdopen(int(events_fd), "w", buffering=1)

    def emit(**event):
        try:
            out.write(json.dumps(event) + "\n")
        except (OSError, ValueError):  # the supervisor stopped reading; keep running
            pass

    try:
        _take_signals()
        import papermill  # noqa: F401  (once, before the first set)

        _track_cells(emit)
        try:
            _atomic_saves()
        except Exception as exc:  # best effort: a papermill whose internals differ saves in place
            log(f"papermill saves its output in place ({type(exc).__name__}: {exc})")
        return serve(sys.stdin, emit)
    except Interrupted:  # before the first set, or a stop that no set was there to take
        return 1
