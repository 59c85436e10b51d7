"""The environments the Create Job form offers: the published ones and your own (``env list``).

They are read from HDFS (seconds: a ``hdfs dfs`` JVM) when the server starts, in the background
(:meth:`YarnEnvironments.warm_up`), and again in the background when the form asks for them after
:data:`_TTL` seconds: the form gets the last list at once. jupyter-scheduler's form (2.12) puts back
the job name it proposed over one typed while it waits for the environments; answering at once keeps
the name the user types.
"""
from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Future

from jupyter_scheduler.environments import EnvironmentManager, EnvironmentRetrievalError
from jupyter_scheduler.models import RuntimeEnvironment

from ..exceptions import SkeinJupyterError

from .driver import in_thread
from .profiles import load_profiles

__all__ = ["YarnEnvironments"]

_TTL = 60.0


class YarnEnvironments(EnvironmentManager):
    """Environments by name, newest upload first; each offers the admin's profiles as compute types."""

    def __init__(self) -> None:
        self._cached: tuple[float, list[RuntimeEnvironment]] | None = None
        self._lock = threading.Lock()  # held only to look at or replace the read under way
        self._reading: Future | None = None

    def warm_up(self) -> None:
        """Read them now, in the background (when the server starts): the form finds them ready."""
        self._refresh()

    def _refresh(self) -> Future:
        """The read under way, or a new one in a worker thread (HDFS, never on the server's event loop)."""
        with self._lock:
            reading = self._reading
            if reading is None or reading.done():
                reading = self._reading = in_thread(self._read_and_keep, "skein-jupyter-environments")
            return reading

    def _read_and_keep(self) -> list[RuntimeEnvironment]:
        found = self._read()
        self._cached = (time.monotonic(), found)
        return found

    async def list_environments(self) -> list[RuntimeEnvironment]:
        """The last list read (read again in the background when older than :data:`_TTL`); errors shown in
        the form."""
        cached = self._cached
        if cached and time.monotonic() - cached[0] < _TTL:
            return cached[1]
        reading = self._refresh()
        if cached:
            return cached[1]
        try:
            return await asyncio.wrap_future(reading)
        except SkeinJupyterError as exc:
            raise EnvironmentRetrievalError(str(exc)) from None

    def _read(self) -> list[RuntimeEnvironment]:
        from ..envstore import PUBLISHED_DIR, _records, default_upload_dir
        from ..hdfs import HadoopFS

        profiles, default = load_profiles()
        seen, found = set(), []
        for record in _records([default_upload_dir(), PUBLISHED_DIR], HadoopFS()):
            name = record.get("name")
            if not name or name in seen:
                continue
            seen.add(name)
            public = " (published)" if record.get("public") else ""
            found.append(RuntimeEnvironment(
                name=name, label=name, file_extensions=["ipynb"], output_formats=["ipynb", "html"],
                description=f"{name}{public}: Python {record.get('python', '?')}, uploaded "
                            f"{record.get('uploaded', '?')}",
                metadata={"url": str(record.get("url", ""))}, compute_types=list(profiles),
                default_compute_type=default, utc_only=False))
        return found

    def manage_environments_command(self) -> str:
        return "skein-jupyter env list"

    def output_formats_mapping(self) -> dict[str, str]:
        return {"ipynb": "Notebook", "html": "HTML"}
