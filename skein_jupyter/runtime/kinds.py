"""The one table of job kinds and the one table of notebook frontends.

Shared by the client (``skein_jupyter.kinds`` re-exports it) and the
container (``skein_jupyter_runtime.kinds``), so it uses the standard library
only: the client picks a frontend's flag, checks its package and shows its
URL from the same row the container starts the server from.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable, Optional

__all__ = ["Kind", "Frontend", "KINDS", "FRONTENDS", "APP_TAG", "kind_of_tags"]

#: Every application this tool submits carries this tag, plus ``<APP_TAG>-<kind>``.
APP_TAG = "skein-jupyter"


@dataclasses.dataclass(frozen=True)
class Kind:
    """A kind of job: what its application looks like on YARN."""

    name: str           # also the argument of ``python -m skein_jupyter_runtime``
    service: str        # the Skein service that runs it (its log is ``<service>.log``)

    @property
    def tag(self) -> str:
        return f"{APP_TAG}-{self.name}"

    @property
    def log(self) -> str:
        """The name of the service's own log in ``yarn logs``."""
        return f"{self.service}.log"


@dataclasses.dataclass(frozen=True)
class Frontend:
    """A web frontend of a notebook server: how the client asks for it and the container serves it."""

    name: str
    flag: str           # the `notebook start` flag that picks it
    package: str        # the distribution the packed environment must have (metadata names)
    module: str         # what the container must be able to import to serve it
    url_path: str       # where a browser lands, below the server's base URL
    default_url: str    # jupyter_server's ``default_url``: where the base URL redirects
    title: str


KINDS = {kind.name: kind for kind in (
    Kind("notebook", service="jupyter"),
    Kind("run", service="papermill"),
    Kind("sweep", service="papermill"),
    Kind("flow", service="flow"),       # the coordinator; each step is a service of its own (``step-<name>``)
    Kind("kernel", service="kernel"),   # one Jupyter kernel, started by the kernel provisioner
)}

FRONTENDS = {frontend.name: frontend for frontend in (
    Frontend("lab", flag="--lab", package="jupyterlab", module="jupyterlab", url_path="lab",
             default_url="/lab", title="JupyterLab"),
    Frontend("notebook", flag="--notebook7", package="notebook", module="notebook", url_path="tree",
             default_url="/tree", title="Notebook 7"),
    Frontend("server", flag="--server", package="jupyter-server", module="jupyter_server", url_path="",
             default_url="/api/status", title="A plain jupyter_server (no web UI)"),
)}


def kind_of_tags(tags: Iterable[str]) -> Optional[str]:
    """The kind of a skein-jupyter application from its YARN tags, or None if it carries no kind tag."""
    tags = set(tags)
    return next((kind.name for kind in KINDS.values() if kind.tag in tags), None)
