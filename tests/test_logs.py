"""Reading sections of `yarn logs` output. No cluster."""
from skein_jupyter.applications import check_app_id, log_sections

LOGS = """Container: container_1_0001_01_000002 on host_8041
LogAggregationType: AGGREGATED
====
LogType:jupyter.log
LogLastModifiedTime:Sun Nov 22 03:32:50 +0000 2026
LogLength:12
LogContents:
first
second

End of LogType:jupyter.log
****
LogType:jupyter.log.old
LogContents:
not this one
End of LogType:jupyter.log.old
LogType:launch_container.sh
LogContents:
echo LogType:jupyter.log
End of LogType:launch_container.sh
"""


def test_log_sections_take_the_named_log_only():
    assert log_sections(LOGS, "jupyter.log") == ["first\nsecond"]
    assert log_sections(LOGS, "launch_container.sh") == ["echo LogType:jupyter.log"]
    assert log_sections(LOGS, "missing.log") == []


def test_application_ids():
    assert check_app_id("application_1700000000000_0042") == "application_1700000000000_0042"
    for bad in ("app_1_2", "application_1", "", "application_x_1"):
        try:
            check_app_id(bad)
        except Exception as exc:
            assert exc.exit_code == 2
        else:
            raise AssertionError(f"{bad!r} was accepted")
