"""Follow YARN applications: wait for them with a deadline, read their logs.

Logs are read with ``yarn logs`` (Hadoop's LogsCLI): Skein's own reader
looks for the pre-3.3 aggregated layout and reports that aggregation has not
completed on Hadoop 3.3 and later, where logs live under
``<root>/<user>/bucket-logs-tfile/<NNNN>/<appId>``.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import time
from typing import TYPE_CHECKING

from .exceptions import ApplicationError, UsageError

if TYPE_CHECKING:
    import skein
    import skein.model

__all__ = ["FINAL_STATES", "wait_for_final_state", "application_logs", "log_sections", "check_app_id",
           "get_report"]

FINAL_STATES = frozenset({"FINISHED", "FAILED", "KILLED"})
_APP_ID = re.compile(r"^application_\d+_\d+$")
# Aggregation has ended (or will never run) in these states.
_AGGREGATION_DONE = frozenset({"SUCCEEDED", "FAILED", "TIME_OUT", "DISABLED"})


def check_app_id(app_id: str) -> str:
    """Raise :class:`UsageError` unless ``app_id`` looks like ``application_<ts>_<n>``."""
    if not _APP_ID.match(app_id or ""):
        raise UsageError(f"{app_id!r} is not a YARN application id; "
                         "ids look like application_1700000000000_0001")
    return app_id


def get_report(client: skein.Client, app_id: str, listing: str) -> skein.model.ApplicationReport:
    """The report of ``app_id``; an unknown id is an error that points at ``listing`` (a command)."""
    check_app_id(app_id)
    try:
        return client.application_report(app_id)
    except ValueError:  # Skein's word for an id the ResourceManager does not know
        raise UsageError(f"no application {app_id} on this cluster; see `{listing}`") from None


def wait_for_final_state(client: skein.Client, app_id: str, timeout: float,
                         poll: float = 0.5) -> skein.model.ApplicationReport:
    """Poll until the application is FINISHED, FAILED or KILLED.

    Parameters
    ----------
    client : skein.Client
    app_id : str
    timeout : float
        Seconds to wait at most.

    Returns
    -------
    skein.model.ApplicationReport
        The final report.

    Raises
    ------
    ApplicationError
        The deadline passed first; the message gives the state it was in.
    """
    deadline = time.monotonic() + timeout
    while True:
        report = client.application_report(app_id)
        if str(report.state) in FINAL_STATES:
            return report
        if time.monotonic() > deadline:
            raise ApplicationError(f"{app_id} is still {report.state} after {timeout:g}s; "
                                   f"see `yarn application -status {app_id}`")
        time.sleep(poll)


def _yarn(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    yarn = shutil.which("yarn")
    if yarn is None:
        raise ApplicationError("`yarn` is not on PATH; run on a Hadoop edge node, or "
                               'eval "$(skein-jupyter sandbox env)" for the sandbox')
    return subprocess.run([yarn, *args], capture_output=True, text=True, timeout=timeout)


def _status_fields(app_id: str) -> dict[str, str]:
    proc = _yarn("application", "-status", app_id)
    if proc.returncode != 0 or "Application Report" not in proc.stdout:
        raise ApplicationError(f"YARN does not know application {app_id}; list applications "
                               "with `yarn application -list -appStates ALL`")
    fields = {}
    for line in proc.stdout.splitlines():
        key, sep, value = line.partition(" : ")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def application_logs(app_id: str, timeout: float = 120, poll: float = 1.0) -> str:
    """All container logs of an application, as ``yarn logs -applicationId`` prints them.

    For a finished application this waits (up to ``timeout`` seconds) for
    log aggregation to end, so that the logs are complete; a running
    application's logs are read from its NodeManagers as they are.

    Raises
    ------
    ApplicationError
        Unknown application, or no logs to be had by the deadline.
    """
    check_app_id(app_id)
    deadline = time.monotonic() + timeout
    while True:
        fields = _status_fields(app_id)
        state = fields.get("State", "")
        aggregation = fields.get("Log Aggregation Status", "")
        if state not in FINAL_STATES or aggregation in _AGGREGATION_DONE:
            break
        if time.monotonic() > deadline:
            break  # return what there is; the check below says if that is nothing
        time.sleep(poll)
    proc = _yarn("logs", "-applicationId", app_id)
    if proc.returncode != 0 or "LogType:" not in proc.stdout:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise ApplicationError(f"no logs for {app_id} yet (log aggregation: {aggregation or 'unknown'}): "
                               f"{detail[-1] if detail else 'yarn logs printed nothing'}")
    return proc.stdout


def log_sections(logs: str, log_type: str) -> list[str]:
    """The contents of every ``LogType:<log_type>`` section of ``yarn logs`` output, one per container."""
    sections = []
    # Anchored at a line start: the end marker "End of LogType:x" contains "LogType:x" too.
    for chunk in ("\n" + logs).split(f"\nLogType:{log_type}\n")[1:]:
        body = chunk.split("LogContents:\n", 1)[-1]
        sections.append(body.split(f"\nEnd of LogType:{log_type}", 1)[0].rstrip("\n"))
    return sections
