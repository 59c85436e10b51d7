"""What the JupyterLab panel shows, kept on the cluster: job records and definition records on HDFS.

A Job's record is ``<base>/jobs/<application id>.json`` beside a copy of its
input notebook (``<application id>.ipynb``); a Job Definition's record is
``jupyter-scheduler.json`` in its schedule's directory, beside
``jupyter-scheduler.ipynb``. ``<base>`` is ``/user/<you>/skein-jupyter/jupyter-scheduler``, or the
directory in ``$SKEIN_JUPYTER_LAB_JOBS_DIR`` (:data:`DIR_VARIABLE`; tests use it).
Records are private (600) like the rest of your skein-jupyter files.
"""
from __future__ import annotations

import json
import os
import tempfile
import time

from ..hdfs import HadoopFS

__all__ = ["base_dir", "Store", "DEFINITION_RECORD", "DEFINITION_INPUT", "DIR_VARIABLE"]

DEFINITION_RECORD = "jupyter-scheduler.json"
DEFINITION_INPUT = "jupyter-scheduler.ipynb"
DIR_VARIABLE = "SKEIN_JUPYTER_LAB_JOBS_DIR"
_DEFINITIONS_TTL = 15.0
_JOBS_TTL = 30.0  # renames and deletes made by another server show up within this
_UNKNOWN_TTL = 10.0  # an application without a record (another server's job, being made) is looked for this often


def base_dir(user: str | None = None) -> str:
    from ..identity import hadoop_user

    return os.environ.get(DIR_VARIABLE) or f"/user/{user or hadoop_user()}/skein-jupyter/jupyter-scheduler"


def _objects(text: str) -> list[dict]:
    """The JSON objects of several files read one after another; a damaged file is skipped, not the others."""
    decoder, found, index = json.JSONDecoder(), [], 0
    while (index := text.find("{", index)) >= 0:
        try:
            value, index = decoder.raw_decode(text, index)
        except ValueError:  # a damaged file: go on at the next file's first line
            index = text.find("\n{", index + 1)
            if index < 0:
                break
            continue
        if isinstance(value, dict):
            found.append(value)
    return found


class Store:
    """The records, with an in-memory cache (job records never change but for their name or deletion)."""

    def __init__(self, fs: HadoopFS | None = None) -> None:
        self._fs = fs
        self.jobs: dict[str, dict] = {}
        self._jobs_read: float | None = None  # when (monotonic) the records were last read
        self._jobs_dir_made = False  # reading found no records says nothing about the directory
        self._definitions: tuple[float, dict[str, dict]] | None = None

    @property
    def fs(self) -> HadoopFS:
        """Made on first use: a server without ``hdfs`` on PATH starts, and says so when the panel asks."""
        if self._fs is None:
            self._fs = HadoopFS()
        return self._fs

    # -- jobs

    def job_records(self, app_ids: set[str] | None = None) -> dict[str, dict]:
        """Every job record by application id; read again when an id in ``app_ids`` is not known yet (at most
        every :data:`_UNKNOWN_TTL` s: each read is a ``hdfs dfs`` JVM, and a listing must answer quickly)."""
        age = time.monotonic() - self._jobs_read if self._jobs_read is not None else None
        unknown = bool(app_ids and not app_ids <= set(self.jobs))
        if age is None or age > _JOBS_TTL or (unknown and age > _UNKNOWN_TTL):
            read_at = time.monotonic()
            for record in _objects(self.fs.cat(f"{base_dir()}/jobs/*.json")):
                if record.get("app_id"):
                    self.jobs[record["app_id"]] = record
            self._jobs_read = read_at
        return dict(self.jobs)  # a copy: a submission in another thread adds to it while a listing reads it

    def put_job(self, record: dict, input_path: str | None = None) -> None:
        """Write (or replace) a job's record, and its input notebook's copy if given.

        The record is known (listed) at once; it is forgotten again if writing it fails.
        """
        directory = f"{base_dir()}/jobs"
        before = self.jobs.get(record["app_id"])
        self.jobs[record["app_id"]] = record
        try:
            self._write_job(record, input_path, directory)
        except BaseException:
            if before is None:
                self.jobs.pop(record["app_id"], None)
            else:
                self.jobs[record["app_id"]] = before
            raise

    def _write_job(self, record: dict, input_path: str | None, directory: str) -> None:
        with tempfile.TemporaryDirectory(prefix="skein-jupyter-job-") as stage:
            sources = [_write(os.path.join(stage, f"{record['app_id']}.json"), json.dumps(record) + "\n")]
            if input_path:
                with open(input_path, "rb") as f:
                    sources.append(_write(os.path.join(stage, f"{record['app_id']}.ipynb"), f.read()))
            if not self._jobs_dir_made:  # MKDIRS: nothing happens if it exists
                self.fs.mkdir(directory)
                self._jobs_dir_made = True
            self.fs.put(sources, directory + "/")

    def job_input(self, app_id: str) -> str:
        return f"{base_dir()}/jobs/{app_id}.ipynb"

    # -- definitions

    def definitions(self, fresh: bool = False) -> dict[str, dict]:
        """Definition records by schedule name, each with ``paused`` from its schedule."""
        if self._definitions and not fresh and time.monotonic() - self._definitions[0] < _DEFINITIONS_TTL:
            return self._definitions[1]
        from ..schedules import schedules_dir

        root = schedules_dir()
        found: dict[str, dict] = {}
        schedules: dict[str, dict] = {}
        for record in _objects(self.fs.cat(f"{root}/js-*/{DEFINITION_RECORD}", f"{root}/js-*/schedule.json")):
            if "job_definition_id" in record:
                found[record["job_definition_id"]] = record
            elif "cron" in record:
                schedules[record.get("name", "")] = record
        for name, record in found.items():
            record["active"] = not schedules.get(name, {}).get("paused", False)
        self._definitions = (time.monotonic(), {name: r for name, r in found.items() if name in schedules})
        return self._definitions[1]

    def put_definition(self, record: dict, input_path: str | None = None) -> None:
        from ..schedules import schedules_dir

        directory = f"{schedules_dir()}/{record['job_definition_id']}"
        with tempfile.TemporaryDirectory(prefix="skein-jupyter-definition-") as stage:
            sources = [_write(os.path.join(stage, DEFINITION_RECORD), json.dumps(record) + "\n")]
            if input_path:
                with open(input_path, "rb") as f:
                    sources.append(_write(os.path.join(stage, DEFINITION_INPUT), f.read()))
            self.fs.put(sources, directory + "/")
        self._definitions = None

    def definition_input(self, name: str) -> str:
        from ..schedules import schedules_dir

        return f"{schedules_dir()}/{name}/{DEFINITION_INPUT}"

    def forget_definitions(self) -> None:
        self._definitions = None


def _write(path: str, content: str | bytes) -> str:
    data = content.encode() if isinstance(content, str) else content
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path
