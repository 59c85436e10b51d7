"""The scheduler's loop on in-memory stand-ins for HDFS and YARN (pure logic, no cluster).

What these prove: a fire is matched only to the user's own application from
the same schedules directory (B1); a failed submission is retried within the
grace period and given up after it, never resubmitted when stale (S2-S4);
delete + create starts a new history (m2); history is pruned; exception
messages are recorded without URL queries (B2).
"""
from __future__ import annotations

import json
import types
from datetime import datetime, timezone

from skein_jupyter.runtime import cron, webhdfs
from skein_jupyter.runtime.scheduler import KEEP, Scheduler, prunable

UTC = timezone.utc
ROOT = "/user/alice/schedules"


def at(text):
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class Files:
    """An in-memory stand-in for :class:`~skein_jupyter.runtime.webhdfs.HDFS` (paths → bytes)."""

    def __init__(self):
        self.files: dict[str, bytes] = {}

    def write(self, path, data, overwrite=True, createparent=True):
        if not overwrite and path in self.files:
            raise FileExistsError(path)
        self.files[path] = data

    def rename(self, source, target, overwrite=False):
        if target in self.files and not overwrite:  # as HDFS: no rename onto an existing file
            return False
        self.files[target] = self.files.pop(source)
        return True

    def cat(self, path):
        if path not in self.files:
            raise FileNotFoundError(path)
        return self.files[path]

    def list(self, directory):
        names = {p[len(directory) + 1:].split("/")[0] for p in self.files if p.startswith(directory + "/")}
        if not names:
            raise FileNotFoundError(directory)
        return [{"pathSuffix": n} for n in sorted(names)]

    def delete(self, path, recursive=False):
        for p in [p for p in self.files if p == path or p.startswith(path + "/")]:
            del self.files[p]
        return True


class Yarn:
    """A stand-in for a Skein client: applications with user and tags; submissions can be made to fail."""

    def __init__(self):
        self.apps: list = []
        self.failures = 0

    def get_applications(self, states=None, user=None, started_begin=None, **_):
        return [a for a in self.apps if user is None or a.user == user]

    def submit(self, spec):
        if self.failures:
            self.failures -= 1
            raise ConnectionError("Max retries exceeded with url: /webhdfs/v1/x?op=OPEN&delegation=SECRET123")
        app = types.SimpleNamespace(id=f"application_1_{len(self.apps) + 1:04d}", user="alice", tags=set(spec.tags))
        self.apps.append(app)
        return app.id

    def application_report(self, app_id):
        return types.SimpleNamespace(state="RUNNING", final_status="UNDEFINED")


def scheduler(created="20261201T000000Z"):
    files, yarn = Files(), Yarn()
    d = cron.Definition(name="nightly", cron="0 6 * * *", not_before=created, created=created)
    files.files[f"{ROOT}/nightly/schedule.json"] = d.to_json().encode()
    files.files[f"{ROOT}/nightly/spec.yaml"] = b"name: x\nservices: {}\nmaster: {script: 'true'}\n"
    config = {"user": "alice", "directory": ROOT, "namenodes": [], "poll": 10, "grace": 60}
    return Scheduler(config, files, yarn), files, yarn


def records(files):
    return [json.loads(v) for p, v in sorted(files.files.items()) if "/history/" in p and p.endswith(".json")]


def test_another_users_or_directorys_fire_is_not_mine():
    s, files, yarn = scheduler()
    tag = cron.fire_tag("nightly", "20261201T060000Z")
    yarn.apps += [types.SimpleNamespace(id="application_1_9998", user="bob", tags={tag, cron.directory_tag(ROOT)}),
                  types.SimpleNamespace(id="application_1_9999", user="alice",
                                        tags={tag, cron.directory_tag("/user/alice/other")})]
    s.tick(at("2026-12-01T06:00:10"))
    [record] = records(files)
    assert record["state"] == "SUBMITTED" and record["app_id"] not in ("application_1_9998", "application_1_9999")
    mine = [a for a in yarn.apps if a.id == record["app_id"]][0]
    assert {tag, cron.directory_tag(ROOT), cron.schedule_tag("nightly")} <= mine.tags
    s.tick(at("2026-12-01T06:00:20"))  # fired already: not again
    assert len(yarn.apps) == 3


def test_a_failed_submission_is_retried_within_the_grace():
    s, files, yarn = scheduler()
    yarn.failures = 1
    s.tick(at("2026-12-01T06:00:10"))
    [record] = records(files)
    assert record["state"] == "submitting" and "SECRET123" not in record["error"]
    s.tick(at("2026-12-01T06:00:20"))
    [record] = records(files)
    assert record["state"] == "SUBMITTED" and len(yarn.apps) == 1 and "error" not in record


def test_a_fire_failing_past_the_grace_is_given_up_once():
    s, files, yarn = scheduler()
    yarn.failures = 10
    s.tick(at("2026-12-01T06:00:10"))
    s.tick(at("2026-12-01T06:01:30"))  # past the grace: looked up, not submitted again
    [record] = records(files)
    assert record["state"] == "not submitted" and not yarn.apps and yarn.failures == 9
    s.tick(at("2026-12-01T06:02:00"))
    assert records(files) == [record]


def test_a_stale_submitting_record_is_looked_up_not_resubmitted():
    s, files, yarn = scheduler()
    stale = {"scheduled": "2026-12-01T06:00:00Z", "how": "cron", "tag": cron.fire_tag("nightly", "20261201T060000Z"),
             "fired": "2026-12-01T06:00:05Z", "app_id": None, "state": "submitting"}
    files.files[f"{ROOT}/nightly/history/20261201T060000Z-cron.json"] = json.dumps(stale).encode()
    s.tick(at("2026-12-01T09:00:00"))
    [record] = records(files)
    assert record["state"] == "not submitted" and not yarn.apps


def test_delete_and_create_starts_a_new_history():
    s, files, yarn = scheduler()
    s.tick(at("2026-12-01T06:00:10"))
    files.delete(f"{ROOT}/nightly", recursive=True)
    s.tick(at("2026-12-01T06:00:20"))
    fresh, _, _ = scheduler(created="20261201T060030Z")
    files.files.update(fresh.hdfs.files)
    s.tick(at("2026-12-02T06:00:10"))  # the old schedule's run still runs: it does not block the new one
    assert [(r["scheduled"], r["state"]) for r in records(files)] == [("2026-12-02T06:00:00Z", "SUBMITTED")]


def test_prunable_keeps_records_in_flight():
    recs = {f"{i:04d}-cron.json": {"scheduled": f"{i:04d}", "state": "FINISHED"} for i in range(KEEP + 3)}
    recs["0000-cron.json"]["state"] = "submitting"
    assert prunable(recs, 3) == ["0001-cron.json", "0002-cron.json", "0003-cron.json"]


def test_short_drops_tokens_anywhere():
    exc = ConnectionError("HTTPConnectionPool(host='nn', port=1): Max retries exceeded with url: "
                          "/webhdfs/v1/a?op=OPEN&delegation=SECRET123 (Caused by x)\nurl=/b?delegation=SECRET456")
    assert "SECRET" not in webhdfs.short(exc)
    assert "SECRET" not in webhdfs.short("token=SECRET789 in a message")


def test_a_fire_claimed_by_another_scheduler_holds_and_no_half_record_is_left():
    s, files, yarn = scheduler()
    theirs = {"scheduled": "2026-12-01T06:00:00Z", "how": "cron", "app_id": "application_1_7", "state": "SUBMITTED"}
    path = f"{ROOT}/nightly/history/x.json"
    files.files[path] = json.dumps(theirs).encode()
    assert s._claim(path, {"state": "submitting"}) == theirs  # the one written first holds
    assert sorted(files.files) == sorted([path, f"{ROOT}/nightly/schedule.json", f"{ROOT}/nightly/spec.yaml"])
    mine = f"{ROOT}/nightly/history/y.json"
    assert s._claim(mine, {"state": "submitting"}) == {"state": "submitting"}
    assert json.loads(files.files[mine]) == {"state": "submitting"} and not [p for p in files.files if "tmp" in p]
