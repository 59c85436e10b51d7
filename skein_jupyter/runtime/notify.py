"""Notifications when a run, sweep or flow ends: a webhook POST and an email over SMTP.

Runs in the container with the standard library only. The job says when
and whom to tell (:class:`~.job.NotifyJob`: events, webhook names, email
addresses); the secrets (webhook URLs, the SMTP server and its login) come in
a file of their own, ``notify.json``, which the client resolved from the
user's private notifications file and shipped like ``job.json`` (localized
privately, readable by the user only).

Sending never changes how the job ends: every network call has a timeout,
the whole has a deadline, failures are retried a couple of times and then
only logged, and a log line names a channel, never its URL or password.
Messages name the notebook's failing cell and exception, never parameter
values or exception messages (which may hold them).
"""
from __future__ import annotations

import json
import os
import smtplib
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Dict, Optional, Set

from .common import log
from .cron import SCHEDULE_TAG  # the tag of an application a schedule fired
from .job import NOTIFY_EVENTS, Job

__all__ = ["NOTIFY_FILE", "EVENT_OF_STATUS", "SCHEDULE_TAG", "events_of", "wanted", "subject", "message_text",
           "webhook_body", "email_message", "send", "read_secrets", "schedule_of", "notify_end"]

#: The secrets file's name in the container's working directory.
NOTIFY_FILE = "notify.json"
#: The event a final status is.
EVENT_OF_STATUS = {"succeeded": "success", "failed": "failure", "timed_out": "timeout", "stopped": "stopped"}
#: Seconds for all notifications of one end, for one network call, and the attempts of each channel.
DEADLINE, CALL_TIMEOUT, ATTEMPTS = 60.0, 15.0, 3
#: At most this many HTML files, of at most this many bytes together, go with an email.
MAX_ATTACHMENTS, MAX_ATTACHED_BYTES = 5, 10 * 1024 * 1024
assert set(EVENT_OF_STATUS.values()) == set(NOTIFY_EVENTS)


# ----------------------------------------------------------------- what to say

def events_of(summary: Mapping[str, Any]) -> Set[str]:
    """The events an end is: its status's, plus ``timeout``/``failure`` for sets or steps that ended so."""
    events = {EVENT_OF_STATUS.get(summary.get("status", ""), "failure")}
    counts = summary.get("counts") or {}
    if counts.get("timed_out"):
        events.add("timeout")
    if counts.get("failed"):
        events.add("failure")
    return events


def wanted(job: Job, summary: Mapping[str, Any]) -> bool:
    """Whether the job asks to be told of this end."""
    notify = job.notify
    return notify is not None and bool(notify.webhooks or notify.emails) \
        and bool(events_of(summary) & set(notify.when))


def _status_phrase(summary):
    status = summary.get("status", "ended")
    words = {"succeeded": "succeeded", "failed": "failed", "timed_out": "timed out", "stopped": "was stopped"}
    return words.get(status, status)


def subject(summary: Mapping[str, Any]) -> str:
    """``[skein-jupyter] run nightly failed (application_…)``."""
    notebook = f" ({summary['notebook']})" if summary.get("notebook") else ""
    return (f"[skein-jupyter] {summary.get('kind', 'job')} {summary.get('name', '')}{notebook} "
            f"{_status_phrase(summary)} ({summary.get('app_id', '')})")


def _duration(seconds):
    if seconds is None:
        return ""
    seconds = float(seconds)
    return f"{seconds:.1f}s" if seconds < 60 else f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def message_text(summary: Mapping[str, Any]) -> str:
    """The plain-text message: what ended, how, where its outputs are; a table of steps for a flow."""
    lines = [f"{summary.get('kind', 'job').capitalize()} {summary.get('name', '')} {_status_phrase(summary)}."]
    where = ""
    if summary.get("cell") is not None:
        where = f" in cell {int(summary['cell']) + 1}"
    if summary.get("ename"):
        where += f" ({summary['ename']})"
    rows = [("notebook", summary.get("notebook")), ("application", summary.get("app_id")), ("user", summary.get("user")),
            ("status", f"{summary.get('status', '')}{where}"),
            ("schedule", summary.get("schedule"))]
    counts = summary.get("counts") or {}
    if summary.get("sets") and summary.get("kind") != "run":
        rows.append(("sets", f"{summary['sets']} ("
                             + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) + ")"))
    rows += [("duration", _duration(summary.get("duration"))), ("output", summary.get("output"))]
    lines += [f"{label}: {value}" for label, value in rows if value]
    steps = summary.get("steps") or []
    if steps:
        lines += ["", "steps:"]
        table = [("step", "status", "attempts", "duration", "output")]
        table += [(str(s.get("name", "")), str(s.get("status", "")), str(s.get("attempts", "")),
                   _duration(s.get("duration")), str(s.get("output") or "")) for s in steps]
        widths = [max(len(row[i]) for row in table) for i in range(4)]
        lines += ["  " + "  ".join(cell.ljust(widths[i]) if i < 4 else cell for i, cell in enumerate(row)).rstrip()
                  for row in table]
    return "\n".join(lines) + "\n"


#: The summary's fields a JSON webhook receives (no parameter values, no exception messages).
_BODY_FIELDS = ("kind", "name", "notebook", "app_id", "user", "status", "duration", "output", "sets", "counts", "cell",
                "ename", "schedule", "steps")


def webhook_body(summary: Mapping[str, Any], fmt: str = "json") -> bytes:
    """The POST body: the summary's fields, the event and the text (``json``), or ``{"text": …}`` (``slack``)."""
    text = message_text(summary)
    if fmt == "slack":
        return json.dumps({"text": f"*{subject(summary)}*\n{text}"}).encode()
    body: Dict[str, Any] = {key: summary[key] for key in _BODY_FIELDS if summary.get(key) is not None}
    body.update(event=EVENT_OF_STATUS.get(summary.get("status", ""), "failure"), events=sorted(events_of(summary)),
                subject=subject(summary), text=text)
    return json.dumps(body, sort_keys=True).encode()


def email_message(summary: Mapping[str, Any], sender: str, recipients: Sequence[str],
                  attachments: Iterable[str | os.PathLike[str]] = ()) -> EmailMessage:
    """The email: subject, the text, and the HTML outputs attached (as many as :data:`MAX_ATTACHMENTS` allow)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject(summary)
    message.set_content(message_text(summary))
    total, attached = 0, 0
    for path in attachments:
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            log(f"notification: {path.name} not attached: {exc.strerror or type(exc).__name__}")
            continue
        if attached >= MAX_ATTACHMENTS or total + len(data) > MAX_ATTACHED_BYTES:
            log(f"notification: {path.name} not attached (at most {MAX_ATTACHMENTS} files, "
                f"{MAX_ATTACHED_BYTES // 2**20} MiB)")
            continue
        # As bytes (base64), so the file arrives exactly as written; nbconvert writes UTF-8.
        message.add_attachment(data, maintype="text", subtype="html", filename=path.name,
                               params={"charset": "utf-8"})
        total, attached = total + len(data), attached + 1
    return message


# ----------------------------------------------------------------- sending

def read_secrets(path: str | os.PathLike[str] = NOTIFY_FILE) -> Dict[str, Any]:
    """The channels' secrets: ``{"webhooks": {name: {"url", "format"}}, "smtp": {...} or None}``."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict) or not isinstance(data.get("webhooks", {}), dict):
        raise ValueError(f"{NOTIFY_FILE} is not a notifications file of this runtime")
    return data


def _scrub(text: str, secrets: Iterable[Optional[str]]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        return f"{type(reason).__name__}: {reason}" if isinstance(reason, BaseException) else str(reason)
    return f"{type(exc).__name__}: {exc}"


def _retrying(what: str, call, deadline: float, secrets: Sequence[Optional[str]]) -> bool:
    """``call(timeout)`` up to :data:`ATTEMPTS` times within ``deadline`` (monotonic); logs, never raises."""
    for attempt in range(1, ATTEMPTS + 1):
        left = deadline - time.monotonic()
        if left <= 1:
            log(f"notification: {what} not sent: no time left")
            return False
        try:
            call(min(CALL_TIMEOUT, left))
            log(f"notification: sent to {what}")
            return True
        except Exception as exc:
            final = attempt == ATTEMPTS or (isinstance(exc, urllib.error.HTTPError)
                                            and 400 <= exc.code < 500 and exc.code != 429)
            reason = _scrub(_reason(exc), secrets)
            if final:
                log(f"notification: {what} not sent after {attempt} attempt(s): {reason}")
                return False
            log(f"notification: {what}: attempt {attempt} failed ({reason}); retrying")
            time.sleep(min(2.0 * attempt, max(0.0, deadline - time.monotonic() - 1)))
    return False


def _post(url: str, body: bytes, timeout: float) -> None:
    if not url.startswith(("http://", "https://")):  # the client checked; never open file: or ftp:
        raise ValueError("not an http(s) URL")
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": "skein-jupyter"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        response.read()


def _mail(smtp: Mapping[str, Any], message: EmailMessage, timeout: float) -> None:
    host, port, security = smtp["host"], int(smtp["port"]), smtp.get("security", "starttls")
    context = ssl.create_default_context()
    server: smtplib.SMTP
    if security == "ssl":
        server = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        server = smtplib.SMTP(host, port, timeout=timeout)
    with server:
        if security == "starttls":
            server.starttls(context=context)
        if smtp.get("user"):
            server.login(smtp["user"], smtp.get("password") or "")
        server.send_message(message)


def send(job: Job, summary: Mapping[str, Any], attachments: Iterable[str | os.PathLike[str]] = (),
         secrets_path: str | os.PathLike[str] = NOTIFY_FILE, deadline: float = DEADLINE) -> Dict[str, bool]:
    """Tell the job's channels that it ended, if it asks to be told of this end; never raises.

    Parameters
    ----------
    job : Job
        Its ``notify`` says on which events, and to which webhooks and addresses.
    summary : mapping
        How it ended: ``status`` (``succeeded``, ``failed``, ``timed_out``,
        ``stopped``), ``kind`` (``run``, ``sweep``, ``flow``), ``name``,
        ``app_id``, ``user``, ``duration``, ``output``; optionally ``sets`` and
        ``counts``, the failing ``cell`` and ``ename``, a ``schedule``, and
        ``steps`` (a flow's: dicts of ``name``, ``status``, ``attempts``,
        ``duration``, ``output``), shown as a table.
    attachments : paths
        HTML files to attach to the email (when the job's ``attach_html``).
    secrets_path : path
        The secrets file (``notify.json``).
    deadline : float
        Seconds for everything.

    Returns
    -------
    dict
        ``{"webhook NAME" | "email": sent?}``; empty when nothing was to be sent.
    """
    results: Dict[str, bool] = {}
    try:
        if not wanted(job, summary):
            return results
        assert job.notify is not None
        end = time.monotonic() + deadline
        try:
            secrets = read_secrets(secrets_path)
        except (OSError, ValueError) as exc:
            log(f"notification: not sent: cannot read {NOTIFY_FILE} ({type(exc).__name__})")
            return results
        for name in job.notify.webhooks:
            hook = (secrets.get("webhooks") or {}).get(name)
            if not isinstance(hook, dict) or not hook.get("url"):
                log(f"notification: webhook {name!r} not sent: not in {NOTIFY_FILE}")
                results[f"webhook {name}"] = False
                continue
            body = webhook_body(summary, hook.get("format", "json"))
            url = hook["url"]
            results[f"webhook {name}"] = _retrying(f"webhook {name!r}", lambda t, u=url, b=body: _post(u, b, t),
                                                   end, [url, url.split("://", 1)[-1].split("/", 1)[0]])
        if job.notify.emails:
            smtp = secrets.get("smtp")
            if not isinstance(smtp, dict) or not smtp.get("host"):
                log(f"notification: email not sent: no SMTP server in {NOTIFY_FILE}")
                results["email"] = False
            else:
                message = email_message(summary, smtp.get("from") or f"{job.user}@localhost", job.notify.emails,
                                        attachments if job.notify.attach_html else ())
                results["email"] = _retrying(f"email to {len(job.notify.emails)} address(es)",
                                             lambda t: _mail(smtp, message, t), end, [smtp.get("password")])
    except Exception as exc:  # a notification never changes how the job ends
        log(f"notification: not sent: {type(exc).__name__}")
    return results


def schedule_of(tags: Iterable[str]) -> Optional[str]:
    """The schedule that fired an application, from its tags, or None."""
    return next((tag[len(SCHEDULE_TAG):] for tag in tags if tag.startswith(SCHEDULE_TAG)), None)


def notify_end(worker: Any, summary: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> Dict[str, bool]:
    """Where a run or sweep (:class:`~.batch.Worker`) or a flow (:class:`~.flow.Coordinator`) ends: the summary
    completed, HTML found, sent. ``rows``: the sets', or the steps' (with ``step``, their name)."""
    job = worker.job
    full = dict(summary, kind=job.kind, name=job.name, app_id=worker.app_id, user=job.user)
    if job.run is not None:  # the application's name is often the default one: the notebook says which run
        full["notebook"] = job.run.notebook
    if job.kind == "run" and rows and rows[0].get("status") != "succeeded":
        full.update(cell=rows[0].get("cell"), ename=rows[0].get("ename"))
    if job.kind == "flow":
        full["steps"] = [{"name": r.get("step"), "status": r.get("status"), "attempts": r.get("attempts"),
                          "duration": r.get("duration"), "output": r.get("output")} for r in rows]
    if not wanted(job, full):
        return {}
    full["schedule"] = _schedule(worker)
    attachments = _html_files(worker, rows) if job.notify is not None and job.notify.attach_html else []
    return send(job, full, attachments)


def _schedule(worker: Any, wait: float = 10.0) -> Optional[str]:
    """The schedule that fired this application, asked of the master for at most ``wait`` seconds, or None."""
    found: list[Optional[str]] = []

    def ask() -> None:
        try:
            found.append(schedule_of(worker.app_client.get_specification().tags))
        except Exception:  # the schedule is a detail of the message; the master may be busy ending
            pass

    thread = threading.Thread(target=ask, name="notify-schedule", daemon=True)
    thread.start()
    thread.join(wait)
    return found[0] if found else None


def _html_files(worker, rows):
    """Local copies of the HTML outputs, those of sets that did not succeed first (fetched when not here)."""
    ordered = sorted((r for r in rows if r.get("html")), key=lambda r: r.get("status") == "succeeded")
    found, missing = [], []
    for row in ordered[:MAX_ATTACHMENTS]:
        local = Path(worker.workdir) / os.path.basename(row["html"])
        # A flow's steps may share a notebook's name: each step's file is fetched into its own directory.
        if local.is_file():
            found.append((local, row["html"]))
        else:
            missing.append((local, row["html"], row.get("step") or ""))
    if missing:  # another worker of a sweep (a flow's steps) made them: from the output directory
        from . import clusterfs

        fetched = Path(worker.workdir) / "notify-attachments"
        for sub in sorted({sub for _, _, sub in missing}):
            target = fetched / sub
            target.mkdir(parents=True, exist_ok=True)
            these = [(local, remote) for local, remote, s in missing if s == sub]
            try:
                clusterfs.ClusterFS(timeout=30).get([remote for _, remote in these], target)
                found += [(target / local.name, remote) for local, remote in these]
            except Exception as exc:
                log(f"notification: HTML of other workers not attached: {type(exc).__name__}")
    return [local for local, _ in found if local.is_file()]
