"""One attempt at one parameter set: papermill in the engine process, its progress, timeout, stop and checkpoints.

The engine (:mod:`.execute`, one child process per container, sets one after
another) gets each set's arguments in a private file, never on its command
line, and reports events on a pipe. An engine that was signalled (stop,
timeout) or died is replaced for the next set. The log names the set and the
cells that run, never a parameter value.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from . import clusterfs
from .common import log
from .outputs import annotate, export_html, output_names

if TYPE_CHECKING:
    from .batch import Worker

__all__ = ["SetRun", "Engine", "GRACE_SECONDS"]

GRACE_SECONDS = 30          # for papermill to save after a stop or timeout signal


class Engine:
    """The papermill engine process of a container: :mod:`.execute`, one set at a time."""

    def __init__(self) -> None:
        read_end, write_end = os.pipe()
        package = __package__ or "skein_jupyter_runtime"
        self.proc = subprocess.Popen([sys.executable, "-m", package, "engine", str(write_end)],
                                     pass_fds=[write_end], stdin=subprocess.PIPE, text=True)
        os.close(write_end)
        log(f"papermill engine started (pid {self.proc.pid}); it runs this container's sets one after another")
        self.listener: Callable[[dict], None] | None = None   # the event handler of the set that runs
        self.drained = threading.Event()
        self.reader = threading.Thread(target=self._read, args=(os.fdopen(read_end),), name="engine-events",
                                       daemon=True)
        self.reader.start()

    def _read(self, stream):
        with stream:  # the read end closes with the engine
            for line in stream:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                listener = self.listener
                if listener is None:
                    continue
                try:
                    listener(event)
                except Exception as exc:  # one bad event never stops the events that follow
                    log(f"engine event {event.get('event')!r} not handled: {type(exc).__name__}: {exc}")
        self.drained.set()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, args_path: str) -> bool:
        """Give the engine its next set; False if it is gone."""
        try:
            self.proc.stdin.write(args_path + "\n")
            self.proc.stdin.flush()
            return True
        except (OSError, ValueError):
            return False

    def close(self, wait: float = 15) -> None:
        """End of input: the engine shuts its spare kernel down and ends (killed after ``wait`` seconds)."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(wait)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.drained.wait(5)


class SetRun:
    """One attempt at one parameter set: the papermill child, its progress and its checkpoints."""

    def __init__(self, worker: Worker, index: int, attempt: int, engine: Engine | None = None,
                 prestart: bool = False) -> None:
        """``engine``: the container's engine (its own one, closed after the set, when not given);
        ``prestart``: the engine starts a kernel for a next set while this one runs."""
        self.worker, self.index, self.attempt = worker, index, attempt
        self.engine, self.own_engine, self.prestart = engine, engine is None, prestart
        self.finished_event = threading.Event()
        run = worker.job.run
        self.name = output_names(run.notebook, len(run.sets), index)
        self.local = worker.workdir / f"{self.name}.ipynb"
        self.remote = clusterfs.join(worker.output, f"{self.name}.ipynb")
        self.remote_html = clusterfs.join(worker.output, f"{self.name}.html") if run.html else None
        self.parameters = worker.job.parameters(index)
        self.progress = {"set": index, "cells": None, "done": 0, "cell": None, "source": "",
                         "attempt": attempt, "started": time.time()}
        self.result_event = None
        self.signalled: str | None = None

    def _publish_progress(self):
        try:
            self.worker.kv[self.worker.progress_key(self.index)] = json.dumps(self.progress).encode()
        except Exception as exc:  # progress is best effort; the result is not
            log(f"set {self.index}: progress not published: {exc}")

    def _on_event(self, event):
        kind = event.pop("event", None)
        if kind == "start":
            self.progress["cells"] = event["cells"]
        elif kind == "cell":
            self.progress.update(cell=event["index"], source=event.get("source", ""))
            if event.get("type") == "code":
                log(f"set {self.index}: cell {event['index'] + 1}/{self.progress['cells']}: {event['source']}")
        elif kind == "done":
            self.progress["done"] = event["index"] + 1
        elif kind == "result":
            self.result_event = event
            self.finished_event.set()
            return
        self._publish_progress()

    def _checkpoints(self, finished):
        """Upload the output notebook while it changes, at most once per checkpoint interval."""
        interval = self.worker.job.run.checkpoint_interval
        if interval <= 0:  # 0: the output goes up at the end only
            return
        uploaded_mtime, last = None, time.monotonic()
        while not finished.wait(1.0):
            try:
                stat = self.local.stat()
            except OSError:
                continue
            mtime = stat.st_mtime
            if stat.st_size == 0:  # only papermill saving in place (an engine without atomic saves) leaves this
                continue
            if mtime != uploaded_mtime and time.monotonic() - last >= interval:
                try:
                    self.worker.upload([self.local])
                    uploaded_mtime = mtime
                except Exception as exc:
                    log(f"set {self.index}: checkpoint failed: {exc}")
                last = time.monotonic()

    def _args_file(self):
        run = self.worker.job.run
        args = {"input": run.input, "output": str(self.local), "parameters": self.parameters,
                "kernel": run.kernel, "engine": run.engine, "cell_timeout": run.cell_timeout,
                "start_timeout": run.start_timeout or 60, "papermill_options": run.papermill_options,
                "prestart": self.prestart, "reuse_kernel": run.reuse_kernel}
        fd, path = tempfile.mkstemp(prefix=f"set-{self.index}-", suffix=".json", dir=self.worker.workdir)
        with os.fdopen(fd, "w") as f:
            json.dump(args, f)
        return path

    def signal(self, status: str) -> None:
        """Stop the papermill child: SIGUSR1 for a timeout, SIGTERM for a stop."""
        if self.engine is not None and self.engine.alive() and self.signalled is None:
            self.signalled = status
            self.engine.proc.send_signal(signal.SIGUSR1 if status == "timed_out" else signal.SIGTERM)

    def execute(self) -> dict:
        """Run papermill to the end, a timeout or a stop; return the result record."""
        if self.engine is None or not self.engine.alive():
            self.engine = Engine()
        engine = self.engine
        args_path = self._args_file()
        engine.listener = self._on_event
        finished = threading.Event()
        checkpoints = threading.Thread(target=self._checkpoints, args=(finished,), daemon=True)
        checkpoints.start()
        self._publish_progress()
        timeout = self.worker.job.run.timeout
        started = time.monotonic()
        deadline = started + timeout if timeout else None
        kill_at = None
        if not engine.send(args_path):  # it ended between sets: a new one, once
            log(f"set {self.index}: the papermill engine is gone; starting a new one")
            engine.close()
            self.engine = engine = Engine()
            engine.listener = self._on_event
            engine.send(args_path)
        while not self.finished_event.is_set() and engine.alive() and engine.reader.is_alive():
            now = time.monotonic()
            if deadline and now >= deadline and self.signalled is None:
                log(f"set {self.index}: whole-run timeout of {timeout}s reached; stopping the kernel")
                self.signal("timed_out")
            if self.worker.stop_requested.is_set() and self.signalled is None:
                log(f"set {self.index}: stop requested; stopping the kernel")
                self.signal("stopped")
            if self.signalled and kill_at is None:
                kill_at = now + GRACE_SECONDS
            if kill_at and now >= kill_at:
                log(f"set {self.index}: papermill did not stop within {GRACE_SECONDS}s; killing it")
                engine.proc.kill()
            self.finished_event.wait(0.2)
        if not self.finished_event.is_set():  # the engine ended: its last events, if any
            engine.drained.wait(10)
        engine.listener = None
        if self.signalled or self.own_engine or not engine.alive() or not engine.reader.is_alive():  # not reused
            engine.close()
        finished.set()
        checkpoints.join()
        os.unlink(args_path)
        return self._result(time.monotonic() - started)

    def _result(self, duration):
        event = dict(self.result_event or {})
        status = event.pop("status", None)
        if self.signalled:
            status = self.signalled  # whatever papermill made of the signal
        if status is None:
            status = "failed"
            event.update(ename="ProcessExit", evalue=f"papermill exited with code {self.engine.proc.returncode} "
                                                     "without a result (killed for memory?)")
        if status in ("timed_out", "stopped"):
            timeout = self.worker.job.run.timeout
            message = (f"The run reached its timeout of {timeout}s; the kernel was stopped here"
                       if status == "timed_out" else "The run was stopped here (skein-jupyter kill)")
            event.update(ename="RunTimeout" if status == "timed_out" else "RunStopped", evalue=message)
            annotate(self.local, status, message, self.progress.get("cell"))
        if status != "succeeded" and event.get("cell") is None:
            event["cell"] = self.progress.get("cell")
        return {"set": self.index, "parameters": self.worker.job.run.sets[self.index], "status": status,
                "started": round(self.progress["started"], 3), "finished": round(time.time(), 3),
                "cell": event.get("cell"), "execution_count": event.get("execution_count"),
                "ename": event.get("ename"), "evalue": event.get("evalue"), "duration": round(duration, 2),
                "attempt": self.attempt, "output": self.remote, "html": self.remote_html,
                "host": os.environ.get("NM_HOST", "")}

    def save(self, result: dict) -> list[Path]:
        """HTML (when asked) of the output notebook, whatever the outcome; returns the files to upload."""
        files = []
        if self.local.exists():
            files.append(self.local)
            if self.remote_html:
                html = self.local.with_suffix(".html")
                try:
                    export_html(self.local, html)
                    files.append(html)
                except Exception as exc:
                    result["html"] = None
                    result["html_error"] = f"{type(exc).__name__}: {exc}"
                    log(f"set {self.index}: no HTML: {result['html_error']}")
        else:
            result["output"] = result["html"] = None
            log(f"set {self.index}: papermill wrote no output notebook")
        return files
