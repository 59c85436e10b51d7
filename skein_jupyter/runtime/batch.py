"""Papermill runs and sweeps in YARN containers: the worker.

A run is a sweep of one parameter set. Every container of the ``papermill``
service is a worker: it takes sets through the key-value store
(:mod:`.claims`: a set lost with its container is taken over by its
replacement), runs each with papermill in a child process (:mod:`.setrun`,
:mod:`.execute`), and publishes progress and results. The output notebook
goes to the output directory on the cluster filesystem at the end of each
set *whatever happened* (failure, timeout, stop), and as a checkpoint while
it runs, so even a hard kill keeps the output up to the last checkpoint.
The worker that records the last result writes the summary (``result.json``
for a run, ``sweep.json`` and ``sweep.csv`` for a sweep) and ends the
application: SUCCEEDED, FAILED (some set did not succeed) or KILLED (stopped,
also before any set started).

Only infrastructure failures (a lost container) make YARN restart a
container; a notebook that fails in a cell is re-run here only when
``retry_failed_cells`` is set. The log names sets and parameters, never
their values.
"""
from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from . import clusterfs, keys
from .claims import Claims
from .common import connect, fail, log
from .job import Job, expand_output
from .outputs import DEFAULT_OUTPUT, RUNS_INDEX, final_diagnostics, span, table_csv
from .setrun import Engine, SetRun

if TYPE_CHECKING:
    import skein

__all__ = ["Worker", "main", "DEFAULT_OUTPUT", "RUNS_INDEX", "FINAL_STATUS"]

FINAL_STATUS = {"succeeded": "SUCCEEDED", "failed": "FAILED", "timed_out": "FAILED", "stopped": "KILLED"}


class Uploader(threading.Thread):
    """Uploads finished sets' files, then publishes their results, so a worker goes on to its next set
    at once. Files that finished while an upload ran go up together in the next one."""

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
                    self.worker.claims.record(result)
                except Exception as exc:
                    log(f"set {result['set']}: result not published: {exc}")
            with self.cond:
                self.busy = False
                self.cond.notify_all()


class Worker:
    """One container of the papermill service."""

    def __init__(self, job: Job, app_client: skein.ApplicationClient) -> None:
        self.job, self.app_client, self.kv = job, app_client, app_client.kv
        self.container = os.environ.get("SKEIN_CONTAINER_ID", "")
        self.app_id = os.environ.get("SKEIN_APPLICATION_ID", "")
        self.claims = Claims(self.kv, self.container, job.n_sets)
        self.workdir = Path.cwd() / "outputs"
        self.workdir.mkdir(exist_ok=True)
        self.stop_requested = threading.Event()
        self.output = self._output_dir()
        self._ready = threading.Event()
        self._ready_error = None
        self.fs = clusterfs                  # what writes the outputs (see _writer)
        self._upload_lock = threading.Lock()
        self.engine: Engine | None = None   # the papermill engine, kept from one set to the next

    # -- the output directory, shared by every worker

    def _output_dir(self):
        """The output directory, expanded once for the whole application (the first worker's clock)."""
        from skein import kv

        template = self.job.run.output or DEFAULT_OUTPUT
        mine = expand_output(template, self.job.user, self.app_id, self.job.name).encode()
        result = self.kv.transaction(conditions=[kv.missing(keys.RUN_OUTPUT)],
                                     on_success=[kv.put(keys.RUN_OUTPUT, mine), kv.get(keys.RUN_OUTPUT)],
                                     on_failure=[kv.get(keys.RUN_OUTPUT)])
        self.creates_output = result.succeeded
        return result.results[-1].decode()

    def _writer(self):
        """What writes the outputs: one WebHDFS session, else (no NameNode URL, no client) ``hdfs dfs``."""
        from .webhdfs import Outputs, short

        if self.job.run.namenodes and Outputs.handles(self.output):  # another filesystem: hdfs dfs reaches it
            try:
                return Outputs(self.job.run.namenodes, self.job.user)
            except Exception as exc:
                log(f"outputs: WebHDFS unavailable ({short(exc)}); using hdfs dfs")
        return clusterfs

    def _prepare_output(self):
        """The writer and the output directory (with ``hdfs dfs`` when WebHDFS fails here)."""
        try:
            self.fs = self._writer()
            try:
                self._make_output_dir()
            except Exception as exc:
                if self.fs is clusterfs:
                    raise
                log(f"outputs: WebHDFS failed ({type(exc).__name__}: {exc}); using hdfs dfs")
                self.fs = clusterfs
                self._make_output_dir()
        except Exception as exc:
            self._ready_error = exc
            log(f"error: cannot create the output directory {self.output}: {exc}")
        finally:
            self._ready.set()

    def _make_output_dir(self):
        """Create the output directory; the first worker also writes the application's index record."""
        if self.creates_output:
            index_dir = RUNS_INDEX.format(user=self.job.user)
            self.fs.mkdir(self.output, index_dir, share=self.job.run.share)
            record = self.workdir / f"{self.app_id}.json"
            record.write_text(json.dumps({
                "app_id": self.app_id, "kind": self.job.kind, "name": self.job.name,
                "notebook": self.job.run.notebook, "output": self.output, "sets": self.job.n_sets,
                "summary": clusterfs.join(self.output, self.summary_name)}))
            self.fs.put([str(record)], clusterfs.join(index_dir, record.name), share=self.job.run.share)
        else:
            self.fs.mkdir(self.output, share=self.job.run.share)

    @property
    def summary_name(self) -> str:
        return "sweep.json" if self.job.kind == "sweep" else "result.json"

    def _wait_ready(self) -> None:
        if not self._ready.wait(600):
            raise TimeoutError(f"the output directory {self.output} was not created within 600s")
        if self._ready_error is not None:
            raise self._ready_error

    def upload(self, paths: Iterable[str | os.PathLike[str]]) -> None:
        """Put ``paths`` in the output directory; when WebHDFS fails (a DataNode it cannot reach, say), the
        same files go up with ``hdfs dfs``, which this worker uses from then on."""
        self._wait_ready()
        sources = [str(p) for p in paths]
        with self._upload_lock:  # one session: the uploader and checkpoints take turns
            if self.fs is not clusterfs:
                try:
                    self.fs.put(sources, self.output + "/", share=self.job.run.share)
                    return
                except Exception as exc:
                    log(f"outputs: WebHDFS upload failed ({type(exc).__name__}: {exc}); using hdfs dfs from now on")
                    self.fs = clusterfs
            clusterfs.put(sources, self.output + "/", share=self.job.run.share)

    def _watch_stop(self):
        try:
            self.kv.wait(keys.RUN_STOP)
        except Exception:  # the application master went away; YARN ends us anyway
            return
        log("stop requested")
        self.stop_requested.set()

    def progress_key(self, index: int) -> str:
        """The key of the key-value store where set ``index`` publishes its progress."""
        return keys.RUN_PROGRESS + str(index)

    def _set_parameters(self, index):
        return self.job.run.sets[index]

    # -- the work

    def run_set(self, index: int) -> tuple[list[Path], dict]:
        run = self.job.run
        retries = run.retries if run.retry_failed_cells else 0
        while True:
            attempt = self.claims.next_attempt(index)
            if self.engine is None or not self.engine.alive():
                self.engine = Engine()
            set_run = SetRun(self, index, attempt, self.engine, prestart=self.job.n_sets > 1)
            log(f"set {index} (attempt {attempt}): parameters {', '.join(set_run.parameters) or '(none)'}")
            result = set_run.execute()
            self.engine = set_run.engine if set_run.engine is not None and set_run.engine.alive() else None
            retry = (result["status"] in ("failed", "timed_out") and attempt <= retries
                     and not self.stop_requested.is_set())
            where = f" in cell {result['cell'] + 1}" if result.get("cell") is not None else ""
            log(f"set {index}: {result['status']} in {result['duration']}s"
                + (f"{where} ({result['ename']})" if result["status"] != "succeeded" else ""))
            if not retry:
                return set_run.save(result), result
            log(f"set {index}: retrying the failed notebook (retry_failed_cells, attempt {attempt + 1})")

    def summarize(self, rows: list[dict]) -> dict:
        """The summary of the results ``rows`` (every set, in order)."""
        counts: dict[str, int] = {}
        for row in rows:
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        if self.job.kind == "run":  # stopped before it started: cancelled, and the run is stopped
            status = "stopped" if rows[0]["status"] == "cancelled" else rows[0]["status"]
        elif counts.get("cancelled") or counts.get("stopped"):  # a stop after every set ended changes nothing
            status = "stopped"
        else:
            status = "succeeded" if counts.get("succeeded") == len(rows) else "failed"
        return {"status": status, "sets": len(rows), "counts": counts, "output": self.output,
                "duration": span(rows), "table": clusterfs.join(self.output, self.summary_name)}

    def finalize(self) -> tuple[dict, list[dict]] | None:
        """If no set is left or in flight and no other worker got here first: write the summary (returned,
        with the sets' results), notify; the caller ends the application."""
        if not self.claims.finished() or not self.claims.take_finalize():
            return None
        rows = self.claims.results(self._set_parameters)
        summary = self.summarize(rows)
        files = [self.workdir / self.summary_name]
        if self.job.kind == "sweep":
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
        if self.job.notify is not None:  # before the application ends, which stops this container
            from .notify import notify_end

            try:  # a notification never changes how the run ended
                notify_end(self, summary, rows)
            except Exception as exc:
                log(f"notification: not sent ({type(exc).__name__})")
        return summary, rows

    def main(self) -> int:
        self.claims.publish_sets()
        threading.Thread(target=self._prepare_output, name="prepare-output", daemon=True).start()
        threading.Thread(target=self._watch_stop, name="stop-watch", daemon=True).start()
        what = "runs the notebook" if self.job.n_sets == 1 else \
            f"runs the sweep's sets (of {self.job.n_sets} in all) one at a time as they come free"
        log(f"worker {self.container}: {what}; outputs in {self.output}")
        uploader = Uploader(self)
        uploader.start()
        if self.kv.get(keys.RUN_STOP) is not None:  # stopped while this container started: run nothing
            self.stop_requested.set()
        while not self.stop_requested.is_set():
            index = self.claims.claim()
            if index is None:
                break
            files, result = self.run_set(index)
            uploader.add(files, result)
        if self.engine is not None:  # it shuts its spare kernel down
            self.engine.close()
            self.engine = None
        uploader.flush()
        if self.stop_requested.is_set():
            self.claims.close(self._set_parameters)
        try:
            self._wait_ready()
        except Exception as exc:  # the summary upload says so again; the results are published anyway
            log(f"output directory: {exc}")
        final = self.finalize()
        if final is None:
            log(f"worker {self.container}: no set left for it")
            return 0
        summary, rows = final
        diagnostics = final_diagnostics(summary, rows, self.output)
        log(diagnostics)
        self.app_client.shutdown(FINAL_STATUS[summary["status"]], diagnostics)
        return 0


def main(job: Job) -> int:
    os.umask(0o077)
    app_client = connect()
    if app_client is None:
        return 1
    try:
        return Worker(job, app_client).main()
    except Exception as exc:
        fail(app_client, f"the papermill worker failed: {type(exc).__name__}: {exc}")
        raise
