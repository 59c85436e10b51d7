"""The "Download job files" action: a job's outputs and input, fetched from HDFS into ``jobs/`` locally."""
from __future__ import annotations

import asyncio
from typing import Any

from jupyter_scheduler.exceptions import SchedulerError
from jupyter_scheduler.job_files_manager import JobFilesManager

from ..exceptions import SkeinJupyterError

__all__ = ["YarnJobFiles"]


class YarnJobFiles(JobFilesManager):
    """Downloads with ``hdfs dfs -get`` (the user's own credentials); the request returns once done."""

    async def copy_from_staging(self, job_id: str, redownload: bool | None = False) -> None:
        scheduler: Any = self.scheduler
        job = await scheduler.get_job(job_id, False)
        try:
            await asyncio.to_thread(scheduler.download, job, str(redownload).lower() in ("true", "1"))  # a query string
        except SkeinJupyterError as exc:
            raise SchedulerError(str(exc)) from None
