"""The server's Skein client, started in the background when the server starts.

Starting a Skein driver takes seconds (tens on a loaded edge node). It starts in a thread of its own
as soon as the scheduler is made, so the first request finds it running; a request that comes
earlier waits for that one start, never for another request's work (a submission, a listing).
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout  # the builtin one only from Python 3.11
from typing import Any

from ..exceptions import InfrastructureError

__all__ = ["BackgroundClient", "DriverStarting", "in_thread"]


def in_thread(function: Callable[[], Any], name: str) -> Future:
    """``function()`` in a daemon thread of its own; its result, or its exception, in the future returned."""
    future: Future = Future()

    def run() -> None:
        try:
            future.set_result(function())
        except BaseException as exc:  # given to whoever waits (each request says it)
            future.set_exception(exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


class DriverStarting(InfrastructureError):
    """The driver did not start within the time a request waits for it."""


class BackgroundClient:
    """A Skein client made by ``make`` in a background thread; made again after :meth:`reset`.

    A start that failed is not retried by itself: the next :meth:`get` starts again (and raises that
    start's error if it fails too), so a request shows the reason, and a fixed cause needs no restart.
    """

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._lock = threading.Lock()  # held only to look at or replace the current start, never during one
        self._start: Future | None = None

    def start(self) -> Future:
        """The current start (a new one if there is none, or the last one failed)."""
        with self._lock:
            start = self._start
            if start is None or (start.done() and start.exception() is not None):
                start = self._start = in_thread(self._make, "skein-jupyter-driver-start")
            return start

    def get(self, timeout: float) -> Any:
        """The client, once started (waits up to ``timeout`` seconds for the start under way)."""
        start = self.start()
        try:
            return start.result(timeout)
        except FutureTimeout:
            raise DriverStarting(f"the Skein driver is still starting after {timeout:.0f}s; try again in a "
                                 "moment") from None

    def reset(self) -> None:
        """The client lost its driver: start another now (in the background), unless one is starting."""
        with self._lock:
            if self._start is not None and self._start.done():
                self._start = None
        self.start()
