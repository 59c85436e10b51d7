"""The two tables the client consults instead of scattered if/else: job kinds and server frontends.

The runtime in the container keeps its own small table of what each
frontend imports and serves (it cannot import the client); these are the
client's side of the same names.
"""
import dataclasses
from collections.abc import Collection

__all__ = ["Kind", "Frontend", "KINDS", "FRONTENDS", "APP_TAG", "kind_of_tags"]

#: Every application this tool submits carries this tag, plus ``<APP_TAG>-<kind>``.
APP_TAG = "skein-jupyter"


@dataclasses.dataclass(frozen=True)
class Kind:
    """A kind of job: what its application looks like on YARN."""

    name: str
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
    """A web frontend of a notebook server."""

    name: str
    flag: str           # the `notebook start` flag that picks it
    package: str        # the distribution the packed environment must have (metadata names)
    url_path: str       # where a browser lands, below the server's base URL
    title: str


KINDS = {kind.name: kind for kind in (
    Kind("notebook", service="jupyter"),
    Kind("run", service="papermill"),
    Kind("sweep", service="papermill"),
)}

FRONTENDS = {frontend.name: frontend for frontend in (
    Frontend("lab", flag="--lab", package="jupyterlab", url_path="lab", title="JupyterLab"),
    Frontend("notebook", flag="--notebook7", package="notebook", url_path="tree", title="Notebook 7"),
    Frontend("server", flag="--server", package="jupyter-server", url_path="",
             title="A plain jupyter_server (no web UI)"),
)}


def kind_of_tags(tags: Collection[str]) -> str | None:
    """The kind of a skein-jupyter application from its YARN tags, or None if it carries no kind tag."""
    tags = set(tags)
    return next((kind.name for kind in KINDS.values() if kind.tag in tags), None)
