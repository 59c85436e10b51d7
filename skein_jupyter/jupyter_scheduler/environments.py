"""The environments the Create Job form offers: the published ones and your own (``env list``)."""
from __future__ import annotations

import asyncio
import time

from jupyter_scheduler.environments import EnvironmentManager, EnvironmentRetrievalError
from jupyter_scheduler.models import RuntimeEnvironment

from ..exceptions import SkeinJupyterError

from .profiles import load_profiles

__all__ = ["YarnEnvironments"]

_TTL = 60.0


class YarnEnvironments(EnvironmentManager):
    """Environments by name, newest upload first; each offers the admin's profiles as compute types."""

    def __init__(self) -> None:
        self._cached: tuple[float, list[RuntimeEnvironment]] | None = None

    async def list_environments(self) -> list[RuntimeEnvironment]:
        """Read in a worker thread (HDFS), never on the server's event loop; errors shown in the form."""
        if self._cached and time.monotonic() - self._cached[0] < _TTL:
            return self._cached[1]
        try:
            found = await asyncio.to_thread(self._read)
        except SkeinJupyterError as exc:
            raise EnvironmentRetrievalError(str(exc)) from None
        self._cached = (time.monotonic(), found)
        return found

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
