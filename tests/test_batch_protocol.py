"""The workers' key-value protocol (runtime/claims.py) over an in-memory store. No cluster.

The store below is a small dict-backed stand-in for the part of Skein's
key-value store the protocol uses (atomic transactions of skein.kv conditions
and operations, owned keys that go with their container), for pure protocol
logic only; the integration tests in test_runs.py run the real thing.
"""
import json

import pytest
from skein import kv

from skein_jupyter.runtime import keys
from skein_jupyter.runtime.claims import Claims


class MemoryStore:
    """Keys to ``(value, owner)``; every transaction is atomic (there is one thread per test)."""

    def __init__(self):
        self.data = {}
        self.transactions = 0

    # -- the mapping interface the protocol uses
    def get(self, key, default=None):
        return self.data[key][0] if key in self.data else default

    def __setitem__(self, key, value):
        self.data[key] = (value, None)

    def get_prefix(self, prefix):
        return {k: v for k, (v, _) in sorted(self.data.items()) if k.startswith(prefix)}

    # -- transactions of skein.kv objects
    def _holds(self, condition):
        if isinstance(condition, kv.exists):
            return condition.key in self.data
        if isinstance(condition, kv.missing):
            return condition.key not in self.data
        assert isinstance(condition, kv.comparison) and condition.operator == "=="
        value, owner = self.data.get(condition.key, (None, None))
        return (value if condition.field == "value" else owner) == condition.rhs

    def _apply(self, op):
        if isinstance(op, kv.put):
            self.data[op.key] = (op.value, op.owner or None)
            return None
        if isinstance(op, kv.get):
            return self.get(op.key, op.default)
        if isinstance(op, kv.discard):
            return self.data.pop(op.key, None) is not None
        if isinstance(op, kv.count):
            return sum(1 for k in self.data if k.startswith(op.prefix))
        raise NotImplementedError(op)

    def transaction(self, conditions=(), on_success=(), on_failure=()):
        self.transactions += 1
        succeeded = all(self._holds(c) for c in conditions or ())
        results = [self._apply(op) for op in (on_success if succeeded else on_failure) or ()]
        return kv.TransactionResult(succeeded, results)

    def lose(self, container):
        """What the application master does when a container goes: its owned keys go too."""
        self.data = {k: (v, o) for k, (v, o) in self.data.items() if o != container}


C1, C2, C3 = "container_1_0001_01_000002", "container_1_0001_01_000003", "container_1_0001_01_000004"


def result(index, status="succeeded"):
    return {"set": index, "status": status, "parameters": {"i": index}}


def params(index):
    return {"i": index}


def test_workers_claim_every_set_once_in_order():
    store = MemoryStore()
    a, b = Claims(store, C1, 5), Claims(store, C2, 5)
    claimed = [a.claim(), b.claim(), a.claim(), b.claim(), a.claim(), b.claim(), a.claim()]
    assert claimed == [0, 1, 2, 3, 4, None, None]
    assert store.get(keys.RUN_NEXT) == b"5"


def test_a_claim_costs_a_constant_number_of_store_calls_however_many_sets():
    store = MemoryStore()
    worker = Claims(store, C1, 10_000)
    for _ in range(50):
        worker.record(result(worker.claim()))
    before = store.transactions
    for _ in range(50):
        worker.record(result(worker.claim()))
    assert store.transactions - before == 100  # one to claim, one to record, per set


def test_a_lost_race_for_the_cursor_is_retried():
    store = MemoryStore()
    a, b = Claims(store, C1, 3), Claims(store, C2, 3)
    real_get = store.get

    def racing_get(key, default=None):  # b claims between a's read of the cursor and a's transaction
        value = real_get(key, default)
        if key == keys.RUN_NEXT and not racing_get.done:
            racing_get.done = True
            assert b.claim() == 0
        return value
    racing_get.done = False
    store.get = racing_get
    assert a.claim() == 1


def test_recording_a_result_ends_the_claim_and_the_last_one_finishes():
    store = MemoryStore()
    a = Claims(store, C1, 2)
    assert a.claim() == 0 and a.claim() == 1
    a.record(result(0))
    assert not a.finished()
    a.record(result(1, "failed"))
    assert a.finished()
    assert store.get_prefix(keys.RUN_CLAIM) == {} and store.get_prefix(keys.RUN_STARTED) == {}
    assert [r["status"] for r in a.results(params)] == ["succeeded", "failed"]


def test_a_replacement_container_takes_over_the_set_of_a_lost_one():
    store = MemoryStore()
    lost, other = Claims(store, C1, 3), Claims(store, C2, 3)
    assert lost.claim() == 0 and lost.next_attempt(0) == 1
    assert other.claim() == 1
    store.lose(C1)
    assert other.orphans() == [0]
    replacement = Claims(store, C3, 3)
    assert replacement.claim() == 0  # the orphan before any fresh set
    assert replacement.next_attempt(0) == 2
    assert other.claim() == 2 and other.claim() is None
    for index in (0, 1, 2):
        other.record(result(index))
    assert other.finished()


def test_a_set_claimed_by_a_live_container_is_not_taken_over():
    store = MemoryStore()
    a, b = Claims(store, C1, 1), Claims(store, C2, 1)
    assert a.claim() == 0
    assert b.orphans() == [] and b.claim() is None


def test_only_one_worker_finalizes():
    store = MemoryStore()
    a, b = Claims(store, C1, 1), Claims(store, C2, 1)
    a.record(result(a.claim()))
    assert a.finished() and b.finished()
    assert [a.take_finalize(), b.take_finalize()] == [True, False]


def test_a_finalizer_lost_before_the_summary_leaves_finalizing_to_its_replacement():
    store = MemoryStore()
    a = Claims(store, C1, 1)
    a.record(result(a.claim()))
    assert a.take_finalize()
    store.lose(C1)
    replacement = Claims(store, C3, 1)
    assert replacement.finished() and replacement.take_finalize()


def test_a_stop_before_the_first_set_cancels_every_set_and_finishes():
    store = MemoryStore()
    worker = Claims(store, C1, 10_000)
    worker.close(params)
    assert worker.finished() and worker.claim() is None
    rows = worker.results(params)
    assert len(rows) == 10_000 and {r["status"] for r in rows} == {"cancelled"}
    assert rows[7]["parameters"] == {"i": 7}
    assert store.get_prefix(keys.RUN_RESULT) == {}  # nothing written per set: the summary says it


def test_a_stop_keeps_results_cancels_the_rest_and_waits_for_running_sets():
    store = MemoryStore()
    a, b = Claims(store, C1, 5), Claims(store, C2, 5)
    a.record(result(a.claim()))          # set 0 done
    assert b.claim() == 1                # set 1 running in b
    assert a.claim() == 2
    store.lose(C1)                       # set 2 lost with its container
    b.close(params)
    assert not b.finished()              # set 1 still runs
    b.record(result(1, "stopped"))
    assert b.finished()
    assert [r["status"] for r in b.results(params)] == ["succeeded", "stopped", "cancelled", "cancelled",
                                                        "cancelled"]
    assert "container was lost" in json.loads(store.get(keys.RUN_RESULT + "2"))["evalue"]


def test_close_is_idempotent_and_a_late_claim_gets_nothing():
    store = MemoryStore()
    a, b = Claims(store, C1, 3), Claims(store, C2, 3)
    a.close(params)
    b.close(params)
    assert store.get(keys.RUN_NEXT) == b"3" and b.claim() is None


@pytest.mark.parametrize("n", [1, 3])
def test_publish_sets(n):
    store = MemoryStore()
    Claims(store, C1, n).publish_sets()
    assert store.get(keys.RUN_SETS) == str(n).encode()


class AppClient:
    def __init__(self, store):
        self.kv = store


@pytest.mark.parametrize("kind, statuses, expected", [
    ("run", ["cancelled"], "stopped"),          # stopped before its one set started: KILLED with a summary
    ("run", ["timed_out"], "timed_out"),
    ("sweep", ["succeeded", "cancelled"], "stopped"),
    ("sweep", ["succeeded", "failed"], "failed"),
    ("sweep", ["succeeded", "succeeded"], "succeeded"),
    ("sweep+stop", ["succeeded", "succeeded"], "succeeded"),  # the stop came after every set ended
])
def test_summary_status(kind, statuses, expected, tmp_path, monkeypatch):
    from skein_jupyter.runtime.batch import FINAL_STATUS, Worker
    from skein_jupyter.runtime.job import Job, RunJob

    monkeypatch.chdir(tmp_path)
    kind, _, stop = kind.partition("+")
    job = Job(kind=kind, name="n", user="u", run=RunJob(notebook="nb.ipynb", sets=[{}] * len(statuses)))
    worker = Worker(job, AppClient(MemoryStore()))
    if stop:
        worker.stop_requested.set()
    rows = [{"set": i, "status": s, "started": None, "finished": None} for i, s in enumerate(statuses)]
    summary = worker.summarize(rows)
    assert summary["status"] == expected and summary["status"] in FINAL_STATUS
