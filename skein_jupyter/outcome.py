"""How a run, sweep or flow ended, and what that means for its caller: the exit-code decision, in the library.

A notebook that failed, timed out or was stopped is :class:`NotebookFailed`
(exit 1: a retry repeats it); an application that ended without a result
(a lost container, a dead application master) is :class:`ApplicationError`
(exit 3: a retry may help).
"""
import dataclasses

from .exceptions import ApplicationError, NotebookFailed, SkeinJupyterError
from .runtime.dag import FAILED_STATES

__all__ = ["RunOutcome", "outcome_error", "raise_for_outcome"]

_FINAL_STATES = frozenset({"FINISHED", "FAILED", "KILLED"})
#: A flow step's errors that are the cluster's, not the notebook's (a retry may help).
INFRASTRUCTURE_ERRORS = frozenset({"ContainerLost", "NotAllocated"})


@dataclasses.dataclass
class RunOutcome:
    """How a run, sweep or flow ended (or stands): the application's state and the runtime's results."""

    app_id: str
    kind: str
    state: str
    final_status: str
    summary: dict | None = None          # the runtime's summary; None if it never got that far
    results: list = dataclasses.field(default_factory=list)
    diagnostics: str = ""

    @property
    def status(self) -> str:
        if self.summary:
            return self.summary["status"]
        if self.state in _FINAL_STATES:
            return "killed" if self.state == "KILLED" else "failed"
        return self.state.lower()

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    @property
    def ended(self) -> bool:
        return self.state in _FINAL_STATES

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "status": self.status}


def outcome_error(outcome: RunOutcome) -> SkeinJupyterError | None:
    """The error an ended, unsuccessful outcome stands for (None if it succeeded or still runs)."""
    if outcome.succeeded or not outcome.ended:
        return None
    logs = f"logs: skein-jupyter logs {outcome.app_id}"
    if outcome.summary and outcome.kind == "flow":
        bad = [r for r in outcome.results if r["status"] not in ("succeeded", "skipped", "cancelled")]
        shown = ", ".join(f"{r['step']} {r['status'].replace('_', ' ')}" for r in bad) or outcome.status
        where = f"outputs of every step are in {outcome.summary['output']}; {logs}"
        # Infrastructure (exit 3) when every step that failed failed for want of a container; steps stopped
        # because of them do not count.
        failed = [r for r in bad if r["status"] in FAILED_STATES]
        if failed and all(r.get("ename") in INFRASTRUCTURE_ERRORS for r in failed):
            return ApplicationError(f"flow {outcome.app_id} {outcome.status}: {shown} (containers lost or not "
                                    f"allocated); {where}")
        return NotebookFailed(f"flow {outcome.app_id} {outcome.status} ({shown}); {where}")
    if outcome.summary and outcome.kind == "sweep":
        counts = ", ".join(f"{n} {s}" for s, n in sorted(outcome.summary["counts"].items()))
        return NotebookFailed(f"sweep {outcome.app_id} {outcome.status} ({counts}); outputs of every set are "
                              f"in {outcome.summary['output']}; {logs}")
    if outcome.summary and outcome.results:
        r = outcome.results[0]
        where = f" in cell {r['cell'] + 1}" if r.get("cell") is not None else ""
        saved = f"with what ran is at {r['output']}" if r.get("output") else "was not saved"
        return NotebookFailed(f"run {outcome.app_id} {r['status'].replace('_', ' ')}{where} ({r['ename']}); "
                              f"the output notebook {saved}; {logs}")
    if outcome.state == "KILLED":
        return NotebookFailed(f"{outcome.kind} {outcome.app_id} was killed ({outcome.final_status}) before it "
                              f"recorded a result; {logs}")
    return ApplicationError(f"{outcome.kind} {outcome.app_id} ended {outcome.state} ({outcome.final_status}) "
                            f"without a result; see `skein-jupyter logs {outcome.app_id}`")


def raise_for_outcome(outcome: RunOutcome) -> None:
    """Raise :func:`outcome_error` of ``outcome``, if any: what ``run`` and ``status`` exit with."""
    error = outcome_error(outcome)
    if error is not None:
        raise error
