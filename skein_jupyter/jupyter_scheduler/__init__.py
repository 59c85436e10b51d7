"""JupyterLab scheduling on YARN: jupyter-scheduler's UI, skein-jupyter's runs and schedules behind it.

Enable it with this ONE line of server options (``jupyter lab ...`` or ``jupyter server ...``)::

    --SchedulerApp.scheduler_class=skein_jupyter.jupyter_scheduler.YarnScheduler --SchedulerApp.environment_manager_class=skein_jupyter.jupyter_scheduler.YarnEnvironments --SchedulerApp.job_files_manager_class=skein_jupyter.jupyter_scheduler.YarnJobFiles

(the same as ``c.SchedulerApp.scheduler_class = "skein_jupyter.jupyter_scheduler.YarnScheduler"`` and so
on in a ``jupyter_server_config.py``; :data:`SERVER_OPTIONS` holds the three options as a list).
Needs ``pip install skein-jupyter[scheduler]`` and, for job definitions, your scheduler application
(``skein-jupyter scheduler start --env ENV``). The admin's resource profiles: :mod:`.profiles`.

- A **Job** is a skein-jupyter run (tagged :data:`JOB_TAG`); its id is ``yarn-<application id>``.
- A **Job Definition** is a schedule named ``js-<8 hex digits>`` (its id), fired by your scheduler.
- What the panel shows is read from YARN (applications tagged :data:`JOB_TAG`) and HDFS (a record per
  job under ``/user/<you>/skein-jupyter/jupyter-scheduler/``, the schedules): no local database.
"""  # noqa: E501 (the one line above is one line on purpose)
from __future__ import annotations

from typing import Any

__all__ = ["YarnScheduler", "YarnEnvironments", "YarnJobFiles", "JOB_TAG", "SERVER_OPTIONS"]

#: Every application a Job (or a Job Definition's fire) runs carries this YARN tag.
JOB_TAG = "skein-jupyter-jupyterlab"

SERVER_OPTIONS = [
    "--SchedulerApp.scheduler_class=skein_jupyter.jupyter_scheduler.YarnScheduler",
    "--SchedulerApp.environment_manager_class=skein_jupyter.jupyter_scheduler.YarnEnvironments",
    "--SchedulerApp.job_files_manager_class=skein_jupyter.jupyter_scheduler.YarnJobFiles",
]

_WHERE = {"YarnScheduler": ".backend", "YarnEnvironments": ".environments", "YarnJobFiles": ".files"}


def __getattr__(name: str) -> Any:
    # Lazy, so that importing the package (docs, ``SERVER_OPTIONS``) needs no jupyter-scheduler.
    if name in _WHERE:
        import importlib

        try:
            module = importlib.import_module(_WHERE[name], __name__)
        except ModuleNotFoundError as exc:
            if exc.name != "jupyter_scheduler":
                raise
            raise ModuleNotFoundError(f"skein_jupyter.jupyter_scheduler.{name} needs jupyter-scheduler, the optional "
                                      "extra: pip install 'skein-jupyter[scheduler]'", name=exc.name) from None
        return getattr(module, name)
    raise AttributeError(name)
