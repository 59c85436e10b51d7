"""Progress reporting on stderr: shown only on a terminal, silenced by ``quiet``."""
import sys
import time

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

    def __init__(self, enabled=None, stream=None):
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = enabled
        self._start = time.monotonic()

    @classmethod
    def quiet(cls):
        """A reporter that prints nothing."""
        return cls(enabled=False)

    def step(self, message):
        """Announce a step, with the time elapsed since the reporter was made."""
        if self.enabled:
            elapsed = time.monotonic() - self._start
            print(f"[{elapsed:6.1f}s] {message}", file=self.stream, flush=True)
