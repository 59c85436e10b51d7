"""A first job on the sandbox: a bare Skein application with one ``echo`` service.

Its time from submission to FINISHED is the floor every launch on this
cluster is compared to; reading its stdout back through ``yarn logs``
checks log aggregation end to end.
"""
from __future__ import annotations

import dataclasses
import os
import time
import uuid
from typing import TYPE_CHECKING

from ..applications import application_logs, wait_for_final_state
from ..exceptions import ApplicationError
from ..progress import Progress

if TYPE_CHECKING:
    import skein

    from .cluster import Sandbox

__all__ = ["CheckResult", "echo_spec", "run_check"]


@dataclasses.dataclass(frozen=True)
class CheckResult:
    app_id: str
    final_status: str
    seconds_to_finished: float
    seconds_to_logs: float
    message: str


def echo_spec(message: str, name: str = "skein-jupyter-check") -> skein.ApplicationSpec:
    """A Skein spec with one service that prints ``message`` and exits."""
    import skein

    return skein.ApplicationSpec(
        name=name,
        queue="default",
        master=skein.Master(resources=skein.Resources(memory="256 MiB", vcores=1)),
        services={"echo": skein.Service(resources=skein.Resources(memory="64 MiB", vcores=1),
                                        script=f"echo {message}")},
    )


def run_check(sandbox: Sandbox, timeout: float = 300, progress: Progress | None = None) -> CheckResult:
    """Submit the echo application to ``sandbox``, wait for it, and find its output in the logs."""
    import skein

    progress = progress or Progress.quiet()
    os.environ.update(sandbox.env())
    message = f"skein-jupyter-check-{uuid.uuid4().hex[:12]}"
    progress.step("starting a Skein driver")
    with skein.Client(log=str(sandbox.config.log_dir / "skein-driver.log")) as client:
        progress.step("submitting an application with one echo service")
        start = time.monotonic()
        app_id = client.submit(echo_spec(message))
        try:
            report = wait_for_final_state(client, app_id, timeout)
        except BaseException:
            client.kill_application(app_id)
            raise
        finished = time.monotonic() - start
    progress.step(f"{app_id} {report.state} in {finished:.1f}s; reading its logs")
    logs = application_logs(app_id, timeout=timeout)
    with_logs = time.monotonic() - start
    if str(report.final_status) != "SUCCEEDED":
        raise ApplicationError(f"the check application {app_id} ended {report.final_status}: "
                               f"{report.diagnostics.strip()[:300]}; see `yarn logs -applicationId {app_id}`")
    if message not in logs:
        raise ApplicationError(f"the check application {app_id} succeeded but its output is missing "
                               f"from `yarn logs -applicationId {app_id}`")
    return CheckResult(app_id, str(report.final_status), finished, with_logs, message)
