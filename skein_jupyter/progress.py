"""Progress reporting on stderr: shown only on a terminal, silenced by ``quiet``."""
from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """Report steps of a long operation on stderr.

    Parameters
    ----------
    enabled : bool, optional
        Show progress. Defaults to whether stderr is a terminal, so that
        pipes, cron jobs and CI logs get only the final result.
    stream : file, optional
        Where to write; stderr by default.
    """

    def __init__(self, enabled: bool | None = None, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = enabled
        self._start = time.monotonic()
        self._live = bool(enabled and getattr(self.stream, "isatty", lambda: False)())
        self._line = ""

    @classmethod
    def quiet(cls) -> Progress:
        """A reporter that prints nothing."""
        return cls(enabled=False)

    def step(self, message: str) -> None:
        """Announce a step, with the time elapsed since the reporter was made."""
        if self.enabled:
            self._clear()
            elapsed = time.monotonic() - self._start
            print(f"[{elapsed:6.1f}s] {message}", file=self.stream, flush=True)

    def status(self, line: str) -> None:
        """A line that replaces the previous one on a terminal (e.g. a progress bar); elsewhere
        printed as a step when it changes."""
        if not self.enabled or line == self._line:
            return
        self._line = line
        if self._live:
            elapsed = time.monotonic() - self._start
            self.stream.write(f"\r\x1b[K[{elapsed:6.1f}s] {line}")
            self.stream.flush()
        else:
            self.step(line)

    def _clear(self) -> None:
        if self._live and self._line:
            self.stream.write("\r\x1b[K")
            self._line = ""

    def done(self) -> None:
        """End a status line."""
        self._clear()
