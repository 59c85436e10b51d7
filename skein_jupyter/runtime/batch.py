"""Papermill runs and sweeps in YARN containers.

A run is a sweep of one parameter set. Every container of the ``papermill``
service is a worker: it takes sets from the key-value store (an atomic claim
per set, owned by the container so that a lost container's set is taken
over by its replacement), runs each with papermill in a child process
(:mod:`.execute`), and publishes progress and results. The output notebook
goes to the output directory on the cluster filesystem at the end of each
set *whatever happened* (failure, timeout, stop), and as a checkpoint while
it runs, so even a hard kill keeps the output up to the last checkpoint.
The worker that records the last result writes the summary (``result.json``
for a run, ``sweep.json`` and ``sweep.csv`` for a sweep) and ends the
application: SUCCEEDED, FAILED (some set did not succeed) or KILLED.

Only infrastructure failures (a lost container) make YARN restart a
container; a notebook that fails in a cell is re-run here only when
``retry_failed_cells`` is set.
"""
import csv
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from . import clusterfs, keys
from .job import expand_output
from .common import connect, fail, log

#: Where a run's outputs go unless the recipe says otherwise.
DEFAULT_OUTPUT = "/user/{user}/skein-jupyter/runs/{app_id}"
#: A record per application pointing at its outputs, for `status` and `fetch` after the end.
RUNS_INDEX = "/user/{user}/.skein-jupyter/runs"
GRACE_SECONDS = 30          # for papermill to save after a stop or timeout signal
FINAL_STATUS = {"succeeded": "SUCCEEDED", "failed": "FAILED", "timed_out": "FAILED", "stopped": "KILLED"}


def output_names(notebook, n_sets, index):
    """Base name of the output files of set ``index`` (``report`` or ``report-07``)."""
    stem = os.path.basename(notebook)
    stem = stem[:-len(".ipynb")] if stem.endswith(".ipynb") else stem
    if n_sets == 1:
        return stem
    return f"{stem}-{index:0{max(2, len(str(n_sets - 1)))}d}"


# ----------------------------------------------------------------- output notebook annotation

_BANNER = ('<span style="color:red; font-family:Helvetica Neue, Helvetica, Arial, sans-serif; font-size:2em;">'
           "{message}</span>")


def annotate(path, status, message, cell=None):
    """Mark an interrupted notebook: the cell it stopped in gets an error output, a banner goes on top.

    Papermill does this itself for a cell that raised; a timeout or a stop
    interrupts it, so the saved notebook would not say why it ends there.
    ``cell`` is the index of the cell that was running (the last one started
    when not given).
    """
    try:
        nb = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return False
    cells = nb.get("cells", [])
    started = [i for i, c in enumerate(cells) if c.get("metadata", {}).get("papermill", {}).get("start_time")]
    if cell is None or not 0 <= cell < len(cells):
        cell = started[-1] if started else None
    for index, item in enumerate(cells):
        meta = item.setdefault("metadata", {}).setdefault("papermill", {})
        if index == cell:
            meta.update(status="failed", exception=True)
            if item.get("cell_type") == "code":
                item.setdefault("outputs", []).append({
                    "output_type": "error", "ename": "RunTimeout" if status == "timed_out" else "RunStopped",
                    "evalue": message, "traceback": [message]})
        elif cell is not None and index > cell:
            meta.update(status="pending", start_time=None, end_time=None, duration=None)
    nb.setdefault("metadata", {}).setdefault("papermill", {})["exception"] = True
    banner = {"cell_type": "markdown", "id": "skein-jupyter-interrupted",
              "metadata": {"tags": ["papermill-error-cell-tag"]},
              "source": [_BANNER.format(message=message.replace("<", "&lt;"))]}
    if nb.get("nbformat_minor", 0) < 5:
        banner.pop("id")
    cells.insert(0, banner)
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(nb, indent=1))
    tmp.replace(path)
    return True


def export_html(notebook_path, html_path):
    """HTML of the output notebook with nbconvert (from the environment)."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_filename(str(notebook_path))
    Path(html_path).write_text(body, encoding="utf-8")


# ----------------------------------------------------------------- one set

class SetRun:
    """One attempt at one parameter set: the papermill child, its progress and its checkpoints."""

    def __init__(self, worker, index, attempt):
        self.worker, self.index, self.attempt = worker, index, attempt
        run = worker.run
        self.name = output_names(run["notebook"], len(worker.sets), index)
        self.local = worker.workdir / f"{self.name}.ipynb"
        self.remote = clusterfs.join(worker.output, f"{self.name}.ipynb")
        self.remote_html = clusterfs.join(worker.output, f"{self.name}.html") if run.get("html") else None
        self.parameters = {**run.get("parameters", {}), **worker.sets[index]}
        self.progress = {"set": index, "cells": None, "done": 0, "cell": None, "source": "",
                         "attempt": attempt, "started": time.time()}
        self.result_event = None
        self.signalled = None
        self.proc = None

    def _publish_progress(self):
        try:
            self.worker.kv[keys.RUN_PROGRESS + str(self.index)] = json.dumps(self.progress).encode()
        except Exception as exc:  # progress is best effort; the result is not
            log(f"set {self.index}: progress not published: {exc}")

    def _read_events(self, stream):
        for line in stream:
            try:
                event = json.loads(line)
            except ValueError:
                continue
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
                continue
            self._publish_progress()

    def _checkpoints(self, finished):
        """Upload the output notebook while it changes, at most once per checkpoint interval."""
        interval = self.worker.run.get("checkpoint_interval") or 0
        if interval <= 0:
            return
        uploaded_mtime, last = None, time.monotonic()
        while not finished.wait(1.0):
            try:
                mtime = self.local.stat().st_mtime
            except OSError:
                continue
            if mtime != uploaded_mtime and time.monotonic() - last >= interval:
                try:
                    self.worker.upload([self.local])
                    uploaded_mtime = mtime
                except Exception as exc:
                    log(f"set {self.index}: checkpoint failed: {exc}")
                last = time.monotonic()

    def _args_file(self, progress_fd):
        run = self.worker.run
        args = {"input": run["input"], "output": str(self.local), "parameters": self.parameters,
                "kernel": run.get("kernel"), "engine": run.get("engine"),
                "cell_timeout": run.get("cell_timeout"), "start_timeout": run.get("start_timeout") or 60,
                "papermill_options": run.get("papermill_options") or {}, "progress_fd": progress_fd}
        fd, path = tempfile.mkstemp(prefix=f"set-{self.index}-", suffix=".json", dir=self.worker.workdir)
        with os.fdopen(fd, "w") as f:
            json.dump(args, f)
        return path

    def signal(self, status):
        """Stop the papermill child: SIGUSR1 for a timeout, SIGTERM for a stop."""
        if self.proc is not None and self.proc.poll() is None and self.signalled is None:
            self.signalled = status
            self.proc.send_signal(signal.SIGUSR1 if status == "timed_out" else signal.SIGTERM)

    def execute(self):
        """Run papermill to the end, a timeout or a stop; return the result record."""
        read_end, write_end = os.pipe()
        args_path = self._args_file(write_end)
        package = __package__ or "skein_jupyter_runtime"
        self.proc = subprocess.Popen([sys.executable, "-m", package, "execute", args_path], pass_fds=[write_end])
        os.close(write_end)
        reader = threading.Thread(target=self._read_events, args=(os.fdopen(read_end),), daemon=True)
        reader.start()
        finished = threading.Event()
        checkpoints = threading.Thread(target=self._checkpoints, args=(finished,), daemon=True)
        checkpoints.start()
        self._publish_progress()
        timeout = self.worker.run.get("timeout")
        started = time.monotonic()
        deadline = started + timeout if timeout else None
        kill_at = None
        while self.proc.poll() is None:
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
                self.proc.kill()
            try:
                self.proc.wait(0.2)
            except subprocess.TimeoutExpired:
                pass
        reader.join(10)
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
            event.update(ename="ProcessExit", evalue=f"papermill exited with code {self.proc.returncode} "
                                                     "without a result (killed for memory?)")
        if status in ("timed_out", "stopped"):
            timeout = self.worker.run.get("timeout")
            message = (f"The run reached its timeout of {timeout}s; the kernel was stopped here"
                       if status == "timed_out" else "The run was stopped here (skein-jupyter kill)")
            event.update(ename="RunTimeout" if status == "timed_out" else "RunStopped", evalue=message)
            annotate(self.local, status, message, self.progress.get("cell"))
        if status != "succeeded" and event.get("cell") is None:
            event["cell"] = self.progress.get("cell")
        return {"set": self.index, "parameters": self.worker.sets[self.index], "status": status,
                "started": round(self.progress["started"], 3), "finished": round(time.time(), 3),
                "cell": event.get("cell"), "execution_count": event.get("execution_count"),
                "ename": event.get("ename"), "evalue": event.get("evalue"), "duration": round(duration, 2),
                "attempt": self.attempt, "output": self.remote, "html": self.remote_html,
                "host": os.environ.get("NM_HOST", "")}

    def save(self, result):
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


class Uploader(threading.Thread):
    """Uploads finished sets' files, then publishes their results, so a worker goes on to its next set
    at once. Files that finished while an upload ran go up together in the next one (one JVM)."""

    def __init__(self, worker):
        super().__init__(name="uploader", daemon=True)
        self.worker = worker
        self.pending = []
        self.busy = False
        self.cond = threading.Condition()

    def add(self, files, result):
        with self.cond:
            self.pending.append((files, result))
            self.cond.notify_all()

    def flush(self):
        """Wait until every result added is uploaded and published."""
        with self.cond:
            self.cond.wait_for(lambda: not self.pending and not self.busy)

    def run(self):
        while True:
            with self.cond:
                self.cond.wait_for(lambda: self.pending)
                batch, self.pending, self.busy = self.pending, [], True
            files = [f for item_files, _ in batch for f in item_files]
            error = None
            if files:
                try:
                    self.worker.upload(files)
                except Exception as exc:
                    error = str(exc)
                    log(f"outputs not saved to the cluster: {exc}")
            for _, result in batch:
                if error:
                    result["upload_error"] = error
                try:
                    self.worker.kv[keys.RUN_RESULT + str(result["set"])] = json.dumps(result).encode()
                except Exception as exc:
                    log(f"set {result['set']}: result not published: {exc}")
            with self.cond:
                self.busy = False
                self.cond.notify_all()


# ----------------------------------------------------------------- the worker

class Worker:
    """One container of the papermill service."""

    def __init__(self, job, app_client):
        self.job, self.app_client, self.kv = job, app_client, app_client.kv
        self.run = job["run"]
        self.sets = job["sets"]
        self.container = os.environ.get("SKEIN_CONTAINER_ID", "")
        self.app_id = os.environ.get("SKEIN_APPLICATION_ID", "")
        self.workdir = Path.cwd() / "outputs"
        self.workdir.mkdir(exist_ok=True)
        self.stop_requested = threading.Event()
        self.output = self._output_dir()
        self._ready = threading.Event()
        self._ready_error = None

    # -- shared state in the key-value store

    def _output_dir(self):
        """The output directory, expanded once for the whole application (the first worker's clock)."""
        from skein import kv

        template = self.run.get("output") or DEFAULT_OUTPUT
        mine = expand_output(template, self.job["user"], self.app_id, self.job["name"]).encode()
        result = self.kv.transaction(conditions=[kv.missing(keys.RUN_OUTPUT)],
                                     on_success=[kv.put(keys.RUN_OUTPUT, mine), kv.get(keys.RUN_OUTPUT)],
                                     on_failure=[kv.get(keys.RUN_OUTPUT)])
        self.creates_output = result.succeeded
        return result.results[-1].decode()

    def _prepare_output(self):
        """Create the output directory; the first worker also writes the application's index record."""
        try:
            if self.creates_output:
                index_dir = RUNS_INDEX.format(user=self.job["user"])
                clusterfs.mkdir(self.output, index_dir, share=self.run.get("share"))
                record = self.workdir / f"{self.app_id}.json"
                record.write_text(json.dumps({
                    "app_id": self.app_id, "kind": self.job["kind"], "name": self.job["name"],
                    "notebook": self.run["notebook"], "output": self.output, "sets": len(self.sets),
                    "summary": clusterfs.join(self.output, self.summary_name)}))
                clusterfs.put([str(record)], clusterfs.join(index_dir, record.name), share=self.run.get("share"))
            else:
                clusterfs.mkdir(self.output, share=self.run.get("share"))
        except Exception as exc:
            self._ready_error = exc
            log(f"error: cannot create the output directory {self.output}: {exc}")
        finally:
            self._ready.set()

    @property
    def summary_name(self):
        return "sweep.json" if self.job["kind"] == "sweep" else "result.json"

    def upload(self, paths):
        self._ready.wait(600)
        if self._ready_error is not None:
            raise self._ready_error
        clusterfs.put([str(p) for p in paths], self.output + "/", share=self.run.get("share"))

    def _claim(self):
        """The next set no one has claimed or finished, claimed for this container; None when none is left."""
        from skein import kv

        for index in range(len(self.sets)):
            claim, result = keys.RUN_CLAIM + str(index), keys.RUN_RESULT + str(index)
            won = self.kv.transaction(conditions=[kv.missing(claim), kv.missing(result)],
                                      on_success=[kv.put(claim, self.container.encode(), owner=self.container)])
            if won.succeeded:
                return index
        return None

    def _next_attempt(self, index):
        key = keys.RUN_ATTEMPTS + str(index)
        attempt = int(self.kv.get(key, b"0")) + 1
        self.kv[key] = str(attempt).encode()
        return attempt

    def _watch_stop(self):
        try:
            self.kv.wait(keys.RUN_STOP)
        except Exception:  # the application master went away; YARN ends us anyway
            return
        log("stop requested")
        self.stop_requested.set()

    def _cancel_pending(self):
        """After a stop: every set not started gets a ``cancelled`` result, so the summary can be written."""
        from skein import kv

        for index in range(len(self.sets)):
            claim, result = keys.RUN_CLAIM + str(index), keys.RUN_RESULT + str(index)
            record = {"set": index, "parameters": self.sets[index], "status": "cancelled", "cell": None,
                      "execution_count": None, "ename": None, "evalue": "not started: the run was stopped",
                      "duration": 0, "attempt": 0, "output": None, "html": None, "host": "",
                      "started": None, "finished": None}
            self.kv.transaction(conditions=[kv.missing(claim), kv.missing(result)],
                                on_success=[kv.put(result, json.dumps(record).encode())])

    # -- the work

    def run_set(self, index):
        retries = self.run.get("retries", 0) if self.run.get("retry_failed_cells") else 0
        while True:
            attempt = self._next_attempt(index)
            set_run = SetRun(self, index, attempt)
            log(f"set {index} (attempt {attempt}): parameters {json.dumps(set_run.parameters)[:500]}")
            result = set_run.execute()
            retry = (result["status"] in ("failed", "timed_out") and attempt <= retries
                     and not self.stop_requested.is_set())
            log(f"set {index}: {result['status']} in {result['duration']}s"
                + (f" ({result['ename']}: {result['evalue']})" if result["status"] != "succeeded" else ""))
            if not retry:
                return set_run.save(result), result
            log(f"set {index}: retrying the failed notebook (retry_failed_cells, attempt {attempt + 1})")

    def finalize(self):
        """If every set has a result and no other worker got here first: write the summary, end the app."""
        from skein import kv

        results = {int(k[len(keys.RUN_RESULT):]): json.loads(v)
                   for k, v in self.kv.get_prefix(keys.RUN_RESULT).items()}
        if len(results) < len(self.sets):
            return None
        if not self.kv.transaction(conditions=[kv.missing(keys.RUN_FINALIZE)],
                                   on_success=[kv.put(keys.RUN_FINALIZE, self.container.encode())]).succeeded:
            return None
        rows = [results[i] for i in range(len(self.sets))]
        counts = {}
        for row in rows:
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        if self.job["kind"] == "run":
            status = rows[0]["status"]
        elif self.stop_requested.is_set() or counts.get("cancelled") or counts.get("stopped"):
            status = "stopped"
        else:
            status = "succeeded" if counts.get("succeeded") == len(rows) else "failed"
        summary = {"status": status, "sets": len(rows), "counts": counts, "output": self.output,
                   "duration": _span(rows),
                   "table": clusterfs.join(self.output, self.summary_name)}
        files = [self.workdir / self.summary_name]
        if self.job["kind"] == "sweep":
            files[0].write_text(json.dumps({"summary": summary, "sets": rows}, indent=2))
            files.append(self.workdir / "sweep.csv")
            files[1].write_text(table_csv(rows))
        else:
            files[0].write_text(json.dumps({"summary": summary, **rows[0]}, indent=2))
        # Published first: a client following the run reads it while the files go up.
        self.kv[keys.RUN_SUMMARY] = json.dumps(summary).encode()
        try:
            self.upload(files)
        except Exception as exc:
            log(f"summary not saved to the cluster: {exc}")
        return summary

    def main(self):
        threading.Thread(target=self._prepare_output, name="prepare-output", daemon=True).start()
        threading.Thread(target=self._watch_stop, name="stop-watch", daemon=True).start()
        log(f"worker {self.container}: {len(self.sets)} set(s), outputs in {self.output}")
        uploader = Uploader(self)
        uploader.start()
        while not self.stop_requested.is_set():
            index = self._claim()
            if index is None:
                break
            files, result = self.run_set(index)
            uploader.add(files, result)
        uploader.flush()
        if self.stop_requested.is_set():
            self._cancel_pending()
        self._ready.wait(600)
        summary = self.finalize()
        if summary is None:
            log(f"worker {self.container}: no set left for it")
            return 0
        counts = ", ".join(f"{n} {status}" for status, n in sorted(summary["counts"].items()))
        diagnostics = f"{summary['status']}: {counts}; outputs in {self.output}"
        log(diagnostics)
        self.app_client.shutdown(FINAL_STATUS[summary["status"]], diagnostics)
        return 0


def _span(rows):
    """Seconds from the first set's start to the last set's end."""
    started = [row["started"] for row in rows if row.get("started")]
    finished = [row["finished"] for row in rows if row.get("finished")]
    return round(max(finished) - min(started), 2) if started and finished else 0


def table_csv(rows):
    """The sweep table as CSV: one row per set, one column per parameter."""
    names = list(dict.fromkeys(name for row in rows for name in row["parameters"]))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["set", "status", "duration", "attempt", "cell", "error", "output", "html", *names])
    for row in rows:
        error = f"{row['ename']}: {row['evalue']}" if row.get("ename") else ""
        writer.writerow([row["set"], row["status"], row["duration"], row["attempt"], row["cell"], error,
                         row["output"] or "", row["html"] or "",
                         *(json.dumps(row["parameters"][n]) if n in row["parameters"] else "" for n in names)])
    return buffer.getvalue()


def main(job):
    os.umask(0o077)
    app_client = connect()
    if app_client is None:
        return 1
    try:
        return Worker(job, app_client).main()
    except Exception as exc:
        fail(app_client, f"the papermill worker failed: {type(exc).__name__}: {exc}")
        raise
