"""jupyter-scheduler's Job Definitions on YARN: each is a schedule of yours, fired by your scheduler.

A definition is the schedule ``js-<8 hex digits>`` (its id) with its record beside it
(:mod:`.store`); editing what a run does makes the schedule again under the same name, keeping the
runs it fired. The half of :class:`~.backend.YarnScheduler` that serves definitions, and what the
two halves share.
"""
from __future__ import annotations

import os
import secrets
import time
from typing import TYPE_CHECKING, Any

from jupyter_scheduler.exceptions import SchedulerError
from jupyter_scheduler.models import (CreateJobDefinition, CreateJobFromDefinition, DescribeJobDefinition,
                                      ListJobDefinitionsQuery, ListJobDefinitionsResponse, UpdateJobDefinition)

if TYPE_CHECKING:
    from .store import Store

__all__ = ["DefinitionsMixin", "definition_changes", "no_input_folder", "now_ms", "JOB_ID_PREFIX", "RECORD_FIELDS"]

#: A job's id is ``yarn-<YARN application id>``.
JOB_ID_PREFIX = "yarn-"
#: What a job's (and a definition's) record keeps of the model the UI sent.
RECORD_FIELDS = ("name", "input_filename", "runtime_environment_name", "runtime_environment_parameters",
                 "output_formats", "parameters", "tags", "compute_type", "output_filename_template")


def now_ms() -> int:
    return int(time.time() * 1000)


def no_input_folder(model: Any) -> None:
    if getattr(model, "package_input_folder", False):
        raise SchedulerError("'Run job with input folder' is not supported on YARN: a job ships its notebook "
                             "only; untick it (put the files the notebook reads on HDFS)")


def definition_changes(record: dict, update: dict) -> dict:
    """What an update of a job definition changes: the keys of ``update`` whose value differs from ``record``.

    JupyterLab's edit form sends the schedule, the time zone and ``input_uri`` (the definition's
    ``input_filename``) on every Save: an ``input_uri`` naming the same file is no change.
    """
    changes = {}
    for key, value in update.items():
        if key in ("output_filename_template", "url") or value is None:
            continue
        if key == "input_uri":
            if os.path.basename(value) != record.get("input_filename"):
                changes[key] = value
        elif key == "timezone":
            if (value or "UTC") != (record.get("timezone") or "UTC"):
                changes[key] = value
        elif value != record.get(key):
            changes[key] = value
    return changes


class DefinitionsMixin:
    """Job Definitions for :class:`~.backend.YarnScheduler`, which gives the client, the store and the helpers."""

    if TYPE_CHECKING:
        store: Store

        @property
        def client(self) -> Any: ...

        async def _call(self, function: Any, *args: Any) -> Any: ...

        def _input_path(self, input_uri: str) -> str: ...

        def _recipe(self, input_path: str, model: Any) -> Any: ...

    def _create_definition(self, model: CreateJobDefinition, name: str | None = None,
                           create_time: int | None = None, input_path: str | None = None,
                           paused: bool = False) -> str:
        from .. import schedules

        if not model.schedule:
            raise SchedulerError("a job definition here needs a schedule (a cron expression)")
        no_input_folder(model)
        name = name or f"js-{secrets.token_hex(4)}"
        input_path = input_path or self._input_path(model.input_uri)
        schedules.create(name, model.schedule, self._recipe(input_path, model), model.input_filename, self.client,
                         tz=model.timezone or "UTC", paused=paused)
        record = {key: getattr(model, key, None) for key in (*RECORD_FIELDS, "schedule", "timezone")}
        record.update(job_definition_id=name, create_time=create_time or now_ms(), update_time=now_ms(),
                      output_formats=model.output_formats or ["ipynb"])
        try:
            self.store.put_definition(record, input_path)
        except BaseException:
            schedules.delete(name)
            raise
        return name

    async def create_job_definition(self, model: CreateJobDefinition) -> str:
        return await self._call(self._create_definition, model)

    def _definition(self, job_definition_id: str, fresh: bool = False) -> dict:
        record = self.store.definitions(fresh).get(job_definition_id)
        if record is None and not fresh:
            return self._definition(job_definition_id, True)
        if record is None:
            raise SchedulerError(f"no job definition {job_definition_id}")
        return record

    async def get_job_definition(self, job_definition_id: str) -> DescribeJobDefinition:
        return DescribeJobDefinition(**await self._call(self._definition, job_definition_id))

    async def list_job_definitions(self, query: ListJobDefinitionsQuery
                                   ) -> ListJobDefinitionsResponse:
        records = await self._call(lambda: list(self.store.definitions().values()))  # read again after 15 s
        found = [DescribeJobDefinition(**r) for r in records if not query.name or r["name"].startswith(query.name)]
        found.sort(key=lambda d: d.create_time, reverse=True)
        return ListJobDefinitionsResponse(job_definitions=found, total_count=len(found))

    def _update_definition(self, job_definition_id: str, model: UpdateJobDefinition) -> None:
        import tempfile

        from .. import schedules

        record = self._definition(job_definition_id, True)
        changes = definition_changes(record, model.dict(exclude_unset=True))
        rebuild = set(changes) - {"active", "name"}
        paused = not changes.get("active", record["active"])
        if rebuild:  # what a run does changed: the schedule is made again, under the same name
            new_input = changes.get("input_uri")  # a new notebook: its name is shown (and listed) from now on
            merged = CreateJobDefinition(**{**record, **changes, "input_uri": new_input or record["input_filename"],
                                            "input_filename": os.path.basename(new_input) if new_input
                                            else record["input_filename"]})
            with tempfile.TemporaryDirectory(prefix="skein-jupyter-definition-") as stage:
                if changes.get("input_uri"):
                    input_path = self._input_path(changes["input_uri"])
                else:
                    self.store.fs.get([self.store.definition_input(job_definition_id)], stage)
                    input_path = os.path.join(stage, os.path.basename(self.store.definition_input(job_definition_id)))
                # every check that needs no change on the cluster, before anything changes
                schedules.check_new(job_definition_id, merged.schedule, merged.timezone or "UTC", "run-once", "skip")
                no_input_folder(merged)
                self._recipe(input_path, merged)
                self._replace_definition(job_definition_id, merged, record["create_time"], input_path, paused)
        else:
            if "active" in changes and paused != (not record["active"]):
                schedules.set_paused(job_definition_id, paused)
            if "name" in changes:
                self.store.put_definition({**record, "name": changes["name"], "update_time": now_ms()})
        self.store.forget_definitions()

    def _replace_definition(self, name: str, model: CreateJobDefinition, create_time: int, input_path: str,
                            paused: bool) -> None:
        """Make the schedule ``name`` again; the old one is set aside and put back if that fails.

        Its fires (``history/``) move into the new one, so the runs it fired stay in the panel.
        """
        from ..runtime.scheduler import HISTORY
        from ..schedules import schedules_dir
        from .store import base_dir

        fs = self.store.fs
        directory = f"{schedules_dir()}/{name}"
        aside = f"{base_dir()}/edits/{name}-{secrets.token_hex(4)}"  # outside the schedules: it never fires
        fs.mkdir(aside.rsplit("/", 1)[0])
        fs.run("-mv", directory, aside)
        try:
            self._create_definition(model, name, create_time, input_path, paused)
        except BaseException:
            fs.run("-rm", "-r", "-f", "-skipTrash", directory, check=False)
            fs.run("-mv", aside, directory)
            raise
        fs.run("-mv", f"{aside}/{HISTORY}/*", f"{directory}/{HISTORY}/", check=False)  # none yet: nothing to move
        fs.run("-rm", "-r", "-f", "-skipTrash", aside, check=False)

    async def update_job_definition(self, job_definition_id: str,
                                    model: UpdateJobDefinition) -> None:
        await self._call(self._update_definition, job_definition_id, model)

    async def delete_job_definition(self, job_definition_id: str) -> None:
        """Delete the schedule; the runs it fired stay (as jobs, outputs on HDFS)."""
        from .. import schedules

        def delete() -> None:
            self._definition(job_definition_id, True)
            schedules.delete(job_definition_id)
            self.store.forget_definitions()
        await self._call(delete)

    async def create_job_from_definition(self, job_definition_id: str,
                                         model: CreateJobFromDefinition) -> str:
        """Fire the definition's schedule now, through your scheduler (its stored parameters)."""
        from .. import schedules

        def fire() -> str:
            record = self._definition(job_definition_id, True)
            if model.parameters and model.parameters != (record.get("parameters") or {}):
                raise SchedulerError("a run of a job definition takes the definition's parameters; edit the job "
                                     "definition to change them, or create a job from the notebook")
            return JOB_ID_PREFIX + schedules.trigger(job_definition_id, self.client)["app_id"]
        return await self._call(fire)
