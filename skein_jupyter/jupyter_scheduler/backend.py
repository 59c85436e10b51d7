"""jupyter-scheduler's scheduler API on YARN: Jobs are skein-jupyter runs, Job Definitions are schedules.

Blocking work (YARN, HDFS) runs in a worker thread, never on the server's
event loop. The state shown is read from the cluster every time (YARN's
applications tagged :data:`JOB_TAG`, records on HDFS: :mod:`.store`); only
records that never change are cached in memory.
"""
from __future__ import annotations

import asyncio
import os
import threading
from datetime import datetime
from typing import Any

from jupyter_scheduler.exceptions import InputUriError, SchedulerError
from jupyter_scheduler.models import (CountJobsQuery, CreateJob, CreateJobFromDefinition, DescribeJob,
                                      ListJobsQuery, ListJobsResponse, Status, UpdateJob)
from jupyter_scheduler.scheduler import BaseScheduler
from traitlets import Bool, Unicode

from ..exceptions import SkeinJupyterError
from . import JOB_TAG
from .definitions import (JOB_ID_PREFIX, RECORD_FIELDS, DefinitionsMixin, definition_changes, no_input_folder,
                          now_ms)
from .driver import BackgroundClient
from .store import Store

__all__ = ["YarnScheduler", "job_status", "saved_status", "definition_changes"]  # definition_changes: .definitions

ALL_STATES = ["NEW", "NEW_SAVING", "SUBMITTED", "ACCEPTED", "RUNNING", "FINISHED", "FAILED", "KILLED"]
DRIVER_WAIT = 180.0  # how long a request waits for the driver the server started (tens of seconds when loaded)


def job_status(state: str, final_status: str) -> Status:
    """A YARN application's state as a jupyter-scheduler job status.

    A stopped run saves its output and ends FINISHED with final status KILLED (``runs.kill``), or is
    killed outright (state KILLED): both are Stopped.
    """
    if final_status == "KILLED" or state == "KILLED":
        return Status.STOPPED
    if state == "RUNNING":
        return Status.IN_PROGRESS
    if state == "FINISHED":
        return Status.COMPLETED if final_status == "SUCCEEDED" else Status.FAILED
    if state == "FAILED":
        return Status.FAILED
    return Status.QUEUED


def saved_status(status: str | None) -> Status:
    """The status a run saved in its summary (``succeeded``, ``stopped``, ...) as a job status."""
    return {"succeeded": Status.COMPLETED, "stopped": Status.STOPPED}.get(status or "", Status.FAILED)


def _ms(moment: datetime | None) -> int | None:
    return int(moment.timestamp() * 1000) if moment else None


def _fired(report: Any) -> bool:
    """Whether a schedule fired the application (its record is the definition's)."""
    from ..runtime.cron import SCHEDULE_TAG

    return any(t.startswith(SCHEDULE_TAG) for t in report.tags)


def _make_client() -> Any:
    from ..launch import skein_client

    return skein_client()


def _app_id(job_id: str) -> str:
    if not job_id.startswith(JOB_ID_PREFIX + "application_"):
        raise SchedulerError(f"no job {job_id}: jobs here are named yarn-<YARN application id>")
    return job_id[len(JOB_ID_PREFIX):]


class NotebookRefused(InputUriError, SchedulerError):
    """A job's notebook that is missing or outside the server's root: the panel shows why, on create and edit."""

    def __init__(self, input_uri: str, message: str) -> None:
        super().__init__(input_uri)
        self.message = message

    def __str__(self) -> str:
        return self.message


class YarnScheduler(DefinitionsMixin, BaseScheduler):
    """The scheduler class of ``SchedulerApp`` (see :mod:`skein_jupyter.jupyter_scheduler`)."""

    db_url = Unicode(help="Not used: the state is on the cluster.")
    warm_up = Bool(True, config=True, help="Start the Skein driver and read the environments when the server "
                                           "starts, in the background (False: on first use).")
    task_runner = None  # the user's scheduler application fires the definitions

    def __init__(self, root_dir: str, environments_manager: Any, config: Any = None, **kwargs: Any) -> None:
        super().__init__(root_dir=root_dir, environments_manager=environments_manager, config=config, **kwargs)
        self.store = Store()
        self._driver = BackgroundClient(_make_client)
        if self.warm_up:  # in the background: the first requests find the driver and the environments ready
            self._driver.start()
            getattr(environments_manager, "warm_up", lambda: None)()
        self._forgotten: dict[str, Status] = {}
        self._stopping: set[str] = set()  # stops this server asked for (the run saves its output, then ends)

    # ----------------------------------------------------------------- plumbing

    @property
    def client(self) -> Any:
        """The server's Skein client; waits (up to :data:`DRIVER_WAIT` s) only while its driver starts."""
        return self._driver.get(DRIVER_WAIT)

    async def _call(self, function: Any, *args: Any) -> Any:
        """Run ``function`` in a thread; skein-jupyter's errors become the scheduler's (shown in the UI)."""
        import skein

        try:
            return await asyncio.to_thread(function, *args)
        except SkeinJupyterError as exc:
            raise SchedulerError(str(exc)) from None
        except skein.exceptions.ConnectionError as exc:  # the driver is gone: a new one starts now
            self._driver.reset()
            raise SchedulerError(f"lost the connection to the Skein driver ({exc}); try again") from None
        except skein.exceptions.SkeinError as exc:
            raise SchedulerError(str(exc)) from None

    def _input_path(self, input_uri: str) -> str:
        """The notebook ``input_uri`` names, which must be a file under the server's root directory."""
        root = os.path.realpath(self.root_dir)
        path = os.path.realpath(os.path.join(root, input_uri))
        if os.path.commonpath([root, path]) != root:
            raise NotebookRefused(input_uri, f"{input_uri} is outside the server's root directory; jobs run "
                                             "notebooks under it: move or copy the notebook there")
        if not os.path.isfile(path):
            raise NotebookRefused(input_uri, f"{input_uri} does not exist under the server's root directory")
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

    async def create_job(self, model: CreateJob) -> str:
        if model.job_definition_id:
            return await self.create_job_from_definition(model.job_definition_id, CreateJobFromDefinition(
                parameters=model.parameters))
        return await self._call(self._create_job, model)

    def _create_job(self, model: CreateJob) -> str:
        from ..launch import kill_quietly
        from ..runs import start

        no_input_folder(model)
        input_path = self._input_path(model.input_uri)
        submission = start(self._recipe(input_path, model), self.client)
        record = {key: getattr(model, key) for key in RECORD_FIELDS}
        record.update(app_id=submission.app_id, create_time=now_ms(), output_formats=model.output_formats or
                      ["ipynb"])
        try:
            self.store.put_job(record, input_path)
        except BaseException:  # a job the panel would never show must not run
            kill_quietly(self.client, submission.app_id)
            raise
        return JOB_ID_PREFIX + submission.app_id

    def _describe(self, report: Any, record: dict | None, definitions: dict[str, dict]) -> DescribeJob | None:
        from ..runtime.cron import SCHEDULE_TAG

        definition_id = next((t[len(SCHEDULE_TAG):] for t in report.tags if t.startswith(SCHEDULE_TAG)), None)
        if record is None and definition_id in definitions:
            record = dict(definitions[definition_id], job_definition_id=definition_id,
                          create_time=_ms(report.start_time) or now_ms())
        if record is None or record.get("deleted"):
            return None
        state, final = str(report.state), str(report.final_status)
        status = job_status(state, final)
        if status in (Status.QUEUED, Status.IN_PROGRESS) and report.id in self._stopping:
            status = Status.STOPPING
        message = (report.diagnostics or "").strip()[:500] or None if status == Status.FAILED else None
        ended = state in ("FINISHED", "FAILED", "KILLED")
        return DescribeJob(**{key: record.get(key) for key in RECORD_FIELDS if record.get(key) is not None},
                           job_id=JOB_ID_PREFIX + report.id, url=f"/jobs/{JOB_ID_PREFIX + report.id}",
                           job_definition_id=record.get("job_definition_id"), create_time=record["create_time"],
                           update_time=_ms(report.finish_time) or now_ms(),
                           start_time=_ms(report.start_time) if state != "ACCEPTED" else None,
                           end_time=_ms(report.finish_time) if ended else None, status=status,
                           status_message=message)

    def _jobs(self) -> list[DescribeJob]:
        from ..identity import hadoop_user

        reports = [r for r in self.client.get_applications(states=ALL_STATES, user=hadoop_user())
                   if JOB_TAG in r.tags]
        records = self.store.job_records({r.id for r in reports if not _fired(r)})
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

        status = self._forgotten.get(app_id)
        if status is None:
            _, saved = _saved_summary(app_id, hadoop_user(), self.store.fs)
            status = saved_status(saved.get("status") if isinstance(saved, dict) else None)
            if isinstance(saved, dict):  # a saved summary is final; without one, look again next time
                self._forgotten[app_id] = status
        return DescribeJob(**{key: record.get(key) for key in RECORD_FIELDS if record.get(key) is not None},
                           job_id=JOB_ID_PREFIX + app_id, url=f"/jobs/{JOB_ID_PREFIX + app_id}",
                           create_time=record["create_time"], update_time=record["create_time"],
                           status=status,
                           status_message="YARN no longer lists this application; status from its saved summary")

    def _job(self, job_id: str) -> DescribeJob:
        app_id = _app_id(job_id)
        try:
            report = self.client.application_report(app_id)
        except ValueError:  # Skein's word for an id the ResourceManager does not know (any more)
            record = self.store.job_records({app_id}).get(app_id)
            if record is None or record.get("deleted"):
                raise SchedulerError(f"no job {job_id}") from None
            return self._forgotten_job(app_id, record)
        record = self.store.job_records(set() if _fired(report) else {app_id}).get(app_id)
        job = self._describe(report, record, self.store.definitions()) if JOB_TAG in report.tags else None
        if job is None:
            raise SchedulerError(f"no job {job_id}")
        return job

    async def get_job(self, job_id: str, job_files: bool | None = True) -> DescribeJob:
        job = await self._call(self._job, job_id)
        if job_files:
            self.add_job_files(job)
        return job

    async def list_jobs(self, query: ListJobsQuery) -> ListJobsResponse:
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
        offset = int(query.next_token) if (query.next_token or "").isdigit() else 0
        page = jobs[offset: offset + query.max_items] if query.max_items else jobs[offset:]
        for job in page:
            self.add_job_files(job)
        following = offset + len(page)
        return ListJobsResponse(jobs=page, total_count=len(jobs),
                                next_token=str(following) if following < len(jobs) else None)

    async def count_jobs(self, query: CountJobsQuery) -> int:
        return sum(1 for job in await self._call(self._jobs) if job.status == query.status)

    def _update_record(self, job_id: str, **changes: Any) -> None:
        job = self._job(job_id)
        app_id = _app_id(job_id)
        record = dict(self.store.job_records().get(app_id) or
                      {key: getattr(job, key) for key in (*RECORD_FIELDS, "job_definition_id", "create_time")})
        record.update(app_id=app_id, **changes)
        self.store.put_job(record)

    async def update_job(self, job_id: str, model: UpdateJob) -> None:
        if model.status == Status.STOPPED:
            await self.stop_job(job_id)
        if model.name:
            await self._call(lambda: self._update_record(job_id, name=model.name))

    def _stop(self, job_id: str) -> None:
        from ..runs import kill

        app_id = _app_id(job_id)
        try:
            if str(self.client.application_report(app_id).state) in ("FINISHED", "FAILED", "KILLED"):
                return
        except ValueError:  # YARN forgot it: it ended long ago
            return

        def stop() -> None:  # the run saves its output, then ends KILLED (or is killed outright)
            try:
                kill(self.client, app_id)
            except Exception as exc:
                self.log.warning("stopping %s: %s", app_id, exc)

        self._stopping.add(app_id)
        threading.Thread(target=stop, name=f"stop-{app_id}", daemon=True).start()

    async def stop_job(self, job_id: str) -> None:
        await self._call(self._stop, job_id)

    async def delete_job(self, job_id: str) -> None:
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
        outcome, info = status(self.client, app_id)
        # the files the run saved, by their exact paths (an output directory may be shared by several runs);
        # the run's output directory only when it saved no result yet
        exact = {fmt: row.get(key) for row in outcome.results[:1] for fmt, key in (("ipynb", "output"),
                                                                                    ("html", "html")) if row.get(key)}
        sources = list(exact.values()) or ([f"{info['output'].rstrip('/')}/*"] if info.get("output") else [])
        sources.append(self.store.definition_input(job.job_definition_id) if job.job_definition_id and
                       app_id not in self.store.job_records() else self.store.job_input(app_id))
        with tempfile.TemporaryDirectory(prefix="skein-jupyter-download-") as stage:
            # outputs and input in separate directories: an output may have the input copy's name
            places = [os.path.join(stage, "out"), os.path.join(stage, "in")]
            for place in places:
                os.mkdir(place)
            for source in sources:  # one at a time: a missing one (no output yet) must not hide the others
                try:
                    self.store.fs.get([source], places[source == sources[-1]])
                except SkeinJupyterError:
                    continue
            found = os.listdir(places[0])
            input_name = os.path.basename(sources[-1])
            chosen = {"input": os.path.join(places[1], input_name)}
            for fmt in ("ipynb", "html"):
                name = os.path.basename(exact[fmt]) if fmt in exact else next(
                    (n for n in sorted(found) if n.endswith("." + fmt)), None)
                if name:
                    chosen[fmt] = os.path.join(places[0], name)
            os.makedirs(target, exist_ok=True)
            for fmt, path in wanted.items():
                if fmt in chosen and os.path.isfile(chosen[fmt]):
                    shutil.copyfile(chosen[fmt], path)
