"""jupyter-scheduler's scheduler API on YARN: Jobs are skein-jupyter runs, Job Definitions are schedules.

Blocking work (YARN, HDFS) runs in a worker thread, never on the server's
event loop. The state shown is read from the cluster every time (YARN's
applications tagged :data:`JOB_TAG`, records on HDFS: :mod:`.store`); only
records that never change are cached in memory.
"""
from __future__ import annotations

import asyncio
import os
import secrets
import threading
import time
from datetime import datetime
from typing import Any

from jupyter_scheduler.exceptions import InputUriError, SchedulerError
from jupyter_scheduler.models import (CountJobsQuery, CreateJob, CreateJobDefinition, CreateJobFromDefinition,
                                      DescribeJob, DescribeJobDefinition, ListJobDefinitionsQuery,
                                      ListJobDefinitionsResponse, ListJobsQuery, ListJobsResponse, Status,
                                      UpdateJob, UpdateJobDefinition)
from jupyter_scheduler.scheduler import BaseScheduler
from traitlets import Unicode

from ..exceptions import SkeinJupyterError
from . import JOB_TAG
from .store import Store

__all__ = ["YarnScheduler", "job_status"]

ALL_STATES = ["NEW", "NEW_SAVING", "SUBMITTED", "ACCEPTED", "RUNNING", "FINISHED", "FAILED", "KILLED"]
_PREFIX = "yarn-"
_FIELDS = ("name", "input_filename", "runtime_environment_name", "runtime_environment_parameters",
           "output_formats", "parameters", "tags", "compute_type", "output_filename_template")


def job_status(state: str, final_status: str) -> Status:
    """A YARN application's state as a jupyter-scheduler job status."""
    if state == "RUNNING":
        return Status.IN_PROGRESS
    if state == "FINISHED":
        return Status.COMPLETED if final_status == "SUCCEEDED" else Status.FAILED
    if state == "KILLED":
        return Status.STOPPED
    if state == "FAILED":
        return Status.FAILED
    return Status.QUEUED


def _ms(moment: datetime | None) -> int | None:
    return int(moment.timestamp() * 1000) if moment else None


def _now_ms() -> int:
    return int(time.time() * 1000)


def _app_id(job_id: str) -> str:
    if not job_id.startswith(_PREFIX + "application_"):
        raise SchedulerError(f"no job {job_id}: jobs here are named yarn-<YARN application id>")
    return job_id[len(_PREFIX):]


class YarnScheduler(BaseScheduler):
    """The scheduler class of ``SchedulerApp`` (see :mod:`skein_jupyter.jupyter_scheduler`)."""

    db_url = Unicode(help="Not used: the state is on the cluster.")
    task_runner = None  # the user's scheduler application fires the definitions

    def __init__(self, root_dir: str, environments_manager: Any, config: Any = None, **kwargs: Any) -> None:
        super().__init__(root_dir=root_dir, environments_manager=environments_manager, config=config, **kwargs)
        self.store = Store()
        self._client: Any = None
        self._lock = threading.Lock()
        self._forgotten: dict[str, Status] = {}

    # ----------------------------------------------------------------- plumbing

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                from ..launch import skein_client

                self._client = skein_client()
            return self._client

    async def _call(self, function: Any, *args: Any) -> Any:
        """Run ``function`` in a thread; skein-jupyter's errors become the scheduler's (shown in the UI)."""
        try:
            return await asyncio.to_thread(function, *args)
        except SkeinJupyterError as exc:
            raise SchedulerError(str(exc)) from None

    def _input_path(self, input_uri: str) -> str:
        path = os.path.join(self.root_dir, input_uri)
        if not os.path.isfile(path):
            raise InputUriError(input_uri)
        return path

    def _recipe(self, input_path: str, model: Any) -> Any:
        from ..config import load_recipe
        from ..parameters import parameters_from_flags
        from .profiles import profile_flags

        flags: dict[str, Any] = {"environment": model.runtime_environment_name, "run.notebook": input_path,
                                 "run.html": "html" in (model.output_formats or []), "tags": [JOB_TAG]}
        flags.update(profile_flags(model.compute_type))
        if model.parameters:
            flags["run.parameters"] = parameters_from_flags(typed=[(k, str(v)) for k, v in model.parameters.items()])
        recipe, _ = load_recipe(kind="run", flags=flags)
        return recipe

    # ----------------------------------------------------------------- jobs

    async def create_job(self, model: CreateJob) -> str:  # type: ignore[override]
        if model.job_definition_id:
            return await self.create_job_from_definition(model.job_definition_id, CreateJobFromDefinition(
                parameters=model.parameters))
        return await self._call(self._create_job, model)

    def _create_job(self, model: CreateJob) -> str:
        from ..runs import start

        input_path = self._input_path(model.input_uri)
        submission = start(self._recipe(input_path, model), self.client)
        record = {key: getattr(model, key) for key in _FIELDS}
        record.update(app_id=submission.app_id, create_time=_now_ms(), output_formats=model.output_formats or
                      ["ipynb"])
        self.store.put_job(record, input_path)
        return _PREFIX + submission.app_id

    def _describe(self, report: Any, record: dict | None, definitions: dict[str, dict]) -> DescribeJob | None:
        from ..runtime.cron import SCHEDULE_TAG

        definition_id = next((t[len(SCHEDULE_TAG):] for t in report.tags if t.startswith(SCHEDULE_TAG)), None)
        if record is None and definition_id in definitions:
            record = dict(definitions[definition_id], job_definition_id=definition_id,
                          create_time=_ms(report.start_time) or _now_ms())
        if record is None or record.get("deleted"):
            return None
        state, final = str(report.state), str(report.final_status)
        status = job_status(state, final)
        message = (report.diagnostics or "").strip()[:500] or None if status == Status.FAILED else None
        ended = state in ("FINISHED", "FAILED", "KILLED")
        return DescribeJob(**{key: record.get(key) for key in _FIELDS if record.get(key) is not None},
                           job_id=_PREFIX + report.id, url=f"/jobs/{_PREFIX + report.id}",
                           job_definition_id=record.get("job_definition_id"), create_time=record["create_time"],
                           update_time=_ms(report.finish_time) or _now_ms(),
                           start_time=_ms(report.start_time) if state != "ACCEPTED" else None,
                           end_time=_ms(report.finish_time) if ended else None, status=status,
                           status_message=message)

    def _jobs(self) -> list[DescribeJob]:
        from ..identity import hadoop_user

        reports = [r for r in self.client.get_applications(states=ALL_STATES, user=hadoop_user())
                   if JOB_TAG in r.tags]
        records = self.store.job_records({r.id for r in reports if not any(t.startswith("skein-jupyter-schedule:")
                                                                           for t in r.tags)})
        definitions = self.store.definitions()
        jobs = [job for job in (self._describe(r, records.get(r.id), definitions) for r in reports) if job]
        listed = {r.id for r in reports}
        for app_id, record in records.items():  # YARN forgot it (restarted, or old): what the run saved
            if app_id not in listed and not record.get("deleted"):
                jobs.append(self._forgotten_job(app_id, record))
        return jobs

    def _forgotten_job(self, app_id: str, record: dict) -> DescribeJob:
        from ..identity import hadoop_user
        from ..runs import _saved_summary

        if app_id not in self._forgotten:
            _, saved = _saved_summary(app_id, hadoop_user(), self.store.fs)
            status = (saved or {}).get("status") if isinstance(saved, dict) else None
            self._forgotten[app_id] = Status.COMPLETED if status == "succeeded" else Status.FAILED
        return DescribeJob(**{key: record.get(key) for key in _FIELDS if record.get(key) is not None},
                           job_id=_PREFIX + app_id, url=f"/jobs/{_PREFIX + app_id}",
                           create_time=record["create_time"], update_time=record["create_time"],
                           status=self._forgotten[app_id],
                           status_message="YARN no longer lists this application; status from its saved summary")

    def _job(self, job_id: str) -> DescribeJob:
        app_id = _app_id(job_id)
        try:
            report = self.client.application_report(app_id)
        except Exception:
            record = self.store.job_records({app_id}).get(app_id)
            if record is None:
                raise SchedulerError(f"no job {job_id}") from None
            return self._forgotten_job(app_id, record)
        record = self.store.job_records(set() if any(t.startswith("skein-jupyter-schedule:") for t in report.tags)
                                        else {app_id}).get(app_id)
        job = self._describe(report, record, self.store.definitions()) if JOB_TAG in report.tags else None
        if job is None:
            raise SchedulerError(f"no job {job_id}")
        return job

    async def get_job(self, job_id: str, job_files: bool | None = True) -> DescribeJob:  # type: ignore[override]
        job = await self._call(self._job, job_id)
        if job_files:
            self.add_job_files(job)
        return job

    async def list_jobs(self, query: ListJobsQuery) -> ListJobsResponse:  # type: ignore[override]
        jobs = await self._call(self._jobs)
        if query.job_definition_id:
            jobs = [j for j in jobs if j.job_definition_id == query.job_definition_id]
        if query.status:
            jobs = [j for j in jobs if j.status == query.status]
        if query.name:
            jobs = [j for j in jobs if j.name.startswith(query.name)]
        if query.start_time:
            jobs = [j for j in jobs if (j.start_time or 0) >= query.start_time]
        if query.tags:
            jobs = [j for j in jobs if set(query.tags) <= set(j.tags or ())]
        for field in reversed(query.sort_by):
            jobs.sort(key=lambda j: getattr(j, field.name) or 0, reverse=field.direction.value == "desc")
        jobs = jobs[: query.max_items or len(jobs)]
        for job in jobs:
            self.add_job_files(job)
        return ListJobsResponse(jobs=jobs, total_count=len(jobs))

    async def count_jobs(self, query: CountJobsQuery) -> int:  # type: ignore[override]
        return sum(1 for job in await self._call(self._jobs) if job.status == query.status)

    def _update_record(self, job_id: str, **changes: Any) -> None:
        job = self._job(job_id)
        app_id = _app_id(job_id)
        record = dict(self.store.job_records().get(app_id) or
                      {key: getattr(job, key) for key in (*_FIELDS, "job_definition_id", "create_time")})
        record.update(app_id=app_id, **changes)
        self.store.put_job(record)

    async def update_job(self, job_id: str, model: UpdateJob) -> None:  # type: ignore[override]
        if model.status == Status.STOPPED:
            await self.stop_job(job_id)
        if model.name:
            await self._call(lambda: self._update_record(job_id, name=model.name))

    def _stop(self, job_id: str) -> None:
        from ..runs import kill

        app_id = _app_id(job_id)
        if str(self.client.application_report(app_id).state) in ("FINISHED", "FAILED", "KILLED"):
            return

        def stop() -> None:  # the run saves its output, then ends KILLED (or is killed outright)
            try:
                kill(self.client, app_id)
            except Exception as exc:
                self.log.warning("stopping %s: %s", app_id, exc)

        threading.Thread(target=stop, name=f"stop-{app_id}", daemon=True).start()

    async def stop_job(self, job_id: str) -> None:  # type: ignore[override]
        await self._call(self._stop, job_id)

    async def delete_job(self, job_id: str) -> None:  # type: ignore[override]
        """Stop it if it runs and hide it; its outputs stay on HDFS."""
        await self.stop_job(job_id)
        await self._call(lambda: self._update_record(job_id, deleted=True))

    def get_staging_paths(self, model: Any) -> dict[str, str]:
        return {}  # outputs are fetched from HDFS by YarnJobFiles

    def download(self, job: DescribeJob, redownload: bool = False) -> None:
        """Fetch the job's outputs (what there is, also of a failed or stopped run) and input from HDFS."""
        import shutil
        import tempfile

        from ..runs import status

        app_id = _app_id(job.job_id)
        names = self.get_job_filenames(job)
        target = self.get_local_output_path(job)
        wanted = {fmt: os.path.join(target, names[fmt]) for fmt in [*(job.output_formats or []), "input"]}
        if not redownload and all(os.path.exists(path) for path in wanted.values()):
            return
        _, info = status(self.client, app_id)
        sources = [f"{info['output'].rstrip('/')}/*"] if info.get("output") else []
        sources.append(self.store.definition_input(job.job_definition_id) if job.job_definition_id and
                       app_id not in self.store.job_records() else self.store.job_input(app_id))
        with tempfile.TemporaryDirectory(prefix="skein-jupyter-download-") as stage:
            for source in sources:  # one at a time: a missing one (no output yet) must not hide the others
                try:
                    self.store.fs.get([source], stage)
                except SkeinJupyterError:
                    continue
            found = os.listdir(stage)
            input_name = os.path.basename(sources[-1])
            by_format = {"input": input_name if input_name in found else None}
            for fmt in ("ipynb", "html"):
                by_format[fmt] = next((n for n in sorted(found) if n.endswith("." + fmt) and n != input_name), None)
            os.makedirs(target, exist_ok=True)
            for fmt, path in wanted.items():
                if by_format.get(fmt):
                    shutil.copyfile(os.path.join(stage, by_format[fmt]), path)  # type: ignore[arg-type]

    # ----------------------------------------------------------------- job definitions

    def _create_definition(self, model: CreateJobDefinition, name: str | None = None,
                           create_time: int | None = None, input_path: str | None = None) -> str:
        from .. import schedules

        if not model.schedule:
            raise SchedulerError("a job definition here needs a schedule (a cron expression)")
        name = name or f"js-{secrets.token_hex(4)}"
        input_path = input_path or self._input_path(model.input_uri)
        schedules.create(name, model.schedule, self._recipe(input_path, model), model.input_filename, self.client,
                         tz=model.timezone or "UTC")
        record = {key: getattr(model, key, None) for key in (*_FIELDS, "schedule", "timezone")}
        record.update(job_definition_id=name, create_time=create_time or _now_ms(), update_time=_now_ms(),
                      output_formats=model.output_formats or ["ipynb"])
        try:
            self.store.put_definition(record, input_path)
        except BaseException:
            schedules.delete(name)
            raise
        return name

    async def create_job_definition(self, model: CreateJobDefinition) -> str:  # type: ignore[override]
        return await self._call(self._create_definition, model)

    def _definition(self, job_definition_id: str, fresh: bool = False) -> dict:
        record = self.store.definitions(fresh).get(job_definition_id)
        if record is None and not fresh:
            return self._definition(job_definition_id, True)
        if record is None:
            raise SchedulerError(f"no job definition {job_definition_id}")
        return record

    async def get_job_definition(self, job_definition_id: str) -> DescribeJobDefinition:  # type: ignore[override]
        return DescribeJobDefinition(**await self._call(self._definition, job_definition_id))

    async def list_job_definitions(self, query: ListJobDefinitionsQuery  # type: ignore[override]
                                   ) -> ListJobDefinitionsResponse:
        records = await self._call(lambda: list(self.store.definitions(True).values()))
        found = [DescribeJobDefinition(**r) for r in records if not query.name or r["name"].startswith(query.name)]
        found.sort(key=lambda d: d.create_time, reverse=True)
        return ListJobDefinitionsResponse(job_definitions=found, total_count=len(found))

    def _update_definition(self, job_definition_id: str, model: UpdateJobDefinition) -> None:
        import tempfile

        from .. import schedules

        record = self._definition(job_definition_id, True)
        changes = {k: v for k, v in model.dict(exclude_unset=True).items()
                   if k not in ("output_filename_template", "url") and v is not None}
        rebuild = set(changes) - {"active", "name"}
        paused = not changes.get("active", record["active"])
        if rebuild:  # what a run does changed: the schedule is made again, under the same name
            merged = CreateJobDefinition(**{**record, **changes, "input_uri": changes.get("input_uri") or
                                            record["input_filename"]})
            with tempfile.TemporaryDirectory(prefix="skein-jupyter-definition-") as stage:
                if changes.get("input_uri"):
                    input_path = self._input_path(changes["input_uri"])
                else:
                    self.store.fs.get([self.store.definition_input(job_definition_id)], stage)
                    input_path = os.path.join(stage, os.path.basename(self.store.definition_input(job_definition_id)))
                schedules.delete(job_definition_id)
                self._create_definition(merged, job_definition_id, record["create_time"], input_path)
            if paused:
                schedules.set_paused(job_definition_id, True)
        else:
            if "active" in changes and paused != (not record["active"]):
                schedules.set_paused(job_definition_id, paused)
            if "name" in changes:
                self.store.put_definition({**record, "name": changes["name"], "update_time": _now_ms()})
        self.store.forget_definitions()

    async def update_job_definition(self, job_definition_id: str,  # type: ignore[override]
                                    model: UpdateJobDefinition) -> None:
        await self._call(self._update_definition, job_definition_id, model)

    async def delete_job_definition(self, job_definition_id: str) -> None:  # type: ignore[override]
        """Delete the schedule; the runs it fired stay (as jobs, outputs on HDFS)."""
        from .. import schedules

        def delete() -> None:
            self._definition(job_definition_id, True)
            schedules.delete(job_definition_id)
            self.store.forget_definitions()
        await self._call(delete)

    async def create_job_from_definition(self, job_definition_id: str,  # type: ignore[override]
                                         model: CreateJobFromDefinition) -> str:
        """Fire the definition's schedule now, through your scheduler (its stored parameters)."""
        from .. import schedules

        def fire() -> str:
            self._definition(job_definition_id, True)
            return _PREFIX + schedules.trigger(job_definition_id, self.client)["app_id"]
        return await self._call(fire)
