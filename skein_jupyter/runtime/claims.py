"""The workers' protocol in the Skein key-value store: who runs which set, and who ends the application.

Every container of a run's service is a worker; they share nothing but the
key-value store of the application master, whose transactions are atomic.

- **Fresh sets** come from a cursor, ``run.next``: a worker claims set ``c``
  by moving the cursor from ``c`` to ``c + 1`` in the same transaction that
  writes ``run.claim.<c>`` (owned by the worker's container) and
  ``run.started.<c>``. One transaction per claim, whatever the number of
  sets (a lost race is retried with the new cursor).
- **Takeover**: a claim goes with its container; a set with ``run.started``
  but no claim is an orphan, and the next worker to look (a replacement
  container, or any other) claims it. Only in-flight sets have these keys,
  so looking costs two small reads.
- **Results**: recording one also drops the set's claim and started marker,
  in one transaction.
- **Stop**: the cursor is moved to the end (sets never started stay without
  a result and count as ``cancelled``), and orphans get a ``cancelled`` result.
- **The end**: once the cursor is at the end and no set is in flight, the
  first worker to take ``run.finalize`` writes the summary.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import keys

if TYPE_CHECKING:
    import skein.kv

__all__ = ["Claims", "cancelled_record"]


def cancelled_record(index: int, parameters: dict, why: str = "not started: the run was stopped") -> dict:
    """The result of a set that never ran to any end."""
    return {"set": index, "parameters": parameters, "status": "cancelled", "cell": None,
            "execution_count": None, "ename": None, "evalue": why, "duration": 0, "attempt": 0,
            "output": None, "html": None, "host": "", "started": None, "finished": None}


class Claims:
    """The protocol for one worker (``container``) over ``kv``, a Skein key-value store.

    Parameters
    ----------
    kv : skein.kv.KeyValueStore
    container : str
        This worker's Skein container id (``SKEIN_CONTAINER_ID``).
    n_sets : int
        How many parameter sets the application runs.
    """

    def __init__(self, kv: skein.kv.KeyValueStore, container: str, n_sets: int) -> None:
        self.kv, self.container, self.n_sets = kv, container, n_sets

    def publish_sets(self) -> None:
        """Say how many sets there are, for the client (the same value from every worker)."""
        self.kv[keys.RUN_SETS] = str(self.n_sets).encode()

    # -- claims

    def orphans(self) -> list:
        """Sets started by a container that is gone: started, not finished, claimed by no one."""
        started = self.kv.get_prefix(keys.RUN_STARTED)
        claimed = self.kv.get_prefix(keys.RUN_CLAIM)
        return sorted(int(key[len(keys.RUN_STARTED):]) for key in started
                      if keys.RUN_CLAIM + key[len(keys.RUN_STARTED):] not in claimed)

    def _take_over(self, index: int) -> bool:
        from skein import kv

        claim, started = keys.RUN_CLAIM + str(index), keys.RUN_STARTED + str(index)
        return self.kv.transaction(
            conditions=[kv.exists(started), kv.missing(claim)],
            on_success=[kv.put(claim, self.container.encode(), owner=self.container)]).succeeded

    def claim(self) -> int | None:
        """The set this worker runs next (an orphan first, else the next fresh one); None when none is left."""
        from skein import kv

        for index in self.orphans():
            if self._take_over(index):
                return index
        while True:
            current = self.kv.get(keys.RUN_NEXT)
            index = int(current) if current is not None else 0
            if index >= self.n_sets:
                return None
            condition = kv.missing(keys.RUN_NEXT) if current is None else kv.value(keys.RUN_NEXT) == current
            claim, started = keys.RUN_CLAIM + str(index), keys.RUN_STARTED + str(index)
            won = self.kv.transaction(
                conditions=[condition],
                on_success=[kv.put(keys.RUN_NEXT, str(index + 1).encode()),
                            kv.put(claim, self.container.encode(), owner=self.container),
                            kv.put(started, self.container.encode())])
            if won.succeeded:
                return index

    def next_attempt(self, index: int) -> int:
        """Count one more start of set ``index`` (this worker holds its claim) and return the count."""
        key = keys.RUN_ATTEMPTS + str(index)
        attempt = int(self.kv.get(key, b"0")) + 1
        self.kv[key] = str(attempt).encode()
        return attempt

    def record(self, result: dict) -> None:
        """Publish the result of a set; the set is no longer in flight."""
        from skein import kv

        index = str(result["set"])
        self.kv.transaction(on_success=[kv.put(keys.RUN_RESULT + index, json.dumps(result).encode()),
                                        kv.discard(keys.RUN_STARTED + index),
                                        kv.discard(keys.RUN_CLAIM + index)])

    # -- stop and end

    def close(self, parameters_of: Callable[[int], dict]) -> None:
        """After a stop: no fresh set starts, and orphans get a ``cancelled`` result.

        ``parameters_of(index)`` gives the parameters of a set, for its record.
        """
        from skein import kv

        while True:
            current = self.kv.get(keys.RUN_NEXT)
            if current is not None and int(current) >= self.n_sets:
                break
            condition = kv.missing(keys.RUN_NEXT) if current is None else kv.value(keys.RUN_NEXT) == current
            if self.kv.transaction(conditions=[condition],
                                   on_success=[kv.put(keys.RUN_NEXT, str(self.n_sets).encode())]).succeeded:
                break
        for index in self.orphans():
            claim, started = keys.RUN_CLAIM + str(index), keys.RUN_STARTED + str(index)
            record = cancelled_record(index, parameters_of(index),
                                      "not finished: its container was lost and the run was stopped")
            self.kv.transaction(
                conditions=[kv.exists(started), kv.missing(claim)],
                on_success=[kv.put(keys.RUN_RESULT + str(index), json.dumps(record).encode()),
                            kv.discard(started)])

    def finished(self) -> bool:
        """No set left to start and none in flight."""
        from skein import kv

        current, in_flight = self.kv.transaction(
            on_success=[kv.get(keys.RUN_NEXT), kv.count(prefix=keys.RUN_STARTED)]).results
        return current is not None and int(current) >= self.n_sets and in_flight == 0

    def take_finalize(self) -> bool:
        """True for the one worker that writes the summary and ends the application.

        The key is owned by this container: if it is lost before the summary is written, the key goes
        with it and the replacement container finalizes instead.
        """
        from skein import kv

        return self.kv.transaction(
            conditions=[kv.missing(keys.RUN_FINALIZE)],
            on_success=[kv.put(keys.RUN_FINALIZE, self.container.encode(), owner=self.container)]).succeeded

    def results(self, parameters_of: Callable[[int], dict]) -> list:
        """Every set's result in order; a set without one was never started (``cancelled``)."""
        found = {int(key[len(keys.RUN_RESULT):]): json.loads(value)
                 for key, value in self.kv.get_prefix(keys.RUN_RESULT).items()}
        return [found.get(index) or cancelled_record(index, parameters_of(index)) for index in range(self.n_sets)]
