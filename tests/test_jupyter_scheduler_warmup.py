"""The JupyterLab backend's driver and environments, started in the background (no cluster)."""
import asyncio
import threading

import pytest

from skein_jupyter.exceptions import ApplicationError


def test_the_driver_starts_once_in_the_background_and_a_failed_start_is_tried_again():
    from skein_jupyter.jupyter_scheduler.driver import BackgroundClient, DriverStarting

    broken, release, made = [True], threading.Event(), []

    def make():
        made.append(threading.current_thread().name)
        if broken[0]:
            raise ApplicationError("cannot start the Skein driver: `yarn` is not on PATH")
        release.wait(10)
        return f"client-{len(made)}"

    driver = BackgroundClient(make)
    assert isinstance(driver.start().exception(5), ApplicationError)  # the server's start fails
    with pytest.raises(ApplicationError, match="not on PATH"):  # a request starts it again and says why
        driver.get(5)
    assert len(made) == 2
    broken[0] = False  # fixed (`yarn` on PATH): no server restart needed
    with pytest.raises(DriverStarting, match="still starting"):
        driver.get(0.1)
    release.set()
    assert driver.get(5) == "client-3" and driver.get(5) == "client-3"  # one start serves every request
    assert made == ["skein-jupyter-driver-start"] * 3
    driver.reset()  # its driver was lost: another starts
    assert driver.get(5) == "client-4"


def test_the_environments_are_read_at_start_and_served_at_once_when_old(monkeypatch):
    pytest.importorskip("jupyter_scheduler")
    from skein_jupyter.jupyter_scheduler import environments

    reads, release = [], threading.Event()

    def read(self):
        reads.append(1)
        if len(reads) > 1:
            release.wait(10)
        return [f"list-{len(reads)}"]

    monkeypatch.setattr(environments.YarnEnvironments, "_read", read)
    manager = environments.YarnEnvironments()
    manager.warm_up()
    assert asyncio.run(manager.list_environments()) == ["list-1"]  # the read the server started
    assert len(reads) == 1
    monkeypatch.setattr(environments, "_TTL", 0.0)
    assert asyncio.run(manager.list_environments()) == ["list-1"]  # old: served at once, read again meanwhile
    release.set()
    assert manager._reading.result(10) == ["list-2"]
    monkeypatch.setattr(environments, "_TTL", 60.0)
    assert asyncio.run(manager.list_environments()) == ["list-2"] and len(reads) == 2


def test_a_listing_reads_the_job_records_again_at_most_every_few_seconds(monkeypatch):
    """An application without a record (another server's job) costs one `hdfs dfs` read, not one per listing."""
    from skein_jupyter.jupyter_scheduler import store

    class Records:  # only what Store calls: counts the reads, fails a write when asked
        def __init__(self):
            self.reads, self.fail = 0, False

        def cat(self, *patterns):
            self.reads += 1
            return ""

        def mkdir(self, path):
            pass

        def put(self, sources, target):
            if self.fail:
                raise ApplicationError("put failed")

    monkeypatch.setenv(store.DIR_VARIABLE, "/base")
    fs = Records()
    records = store.Store(fs)  # type: ignore[arg-type]
    for _ in range(3):
        assert records.job_records({"application_1_0009"}) == {}
    assert fs.reads == 1
    records.put_job({"app_id": "application_1_0001"})  # this server's own job: listed at once
    assert "application_1_0001" in records.job_records({"application_1_0001"}) and fs.reads == 1
    fs.fail = True
    with pytest.raises(ApplicationError):
        records.put_job({"app_id": "application_1_0002"})
    assert "application_1_0002" not in records.job_records()
    monkeypatch.setattr(store, "_UNKNOWN_TTL", 0.0)
    records.job_records({"application_1_0009"})
    assert fs.reads == 2
