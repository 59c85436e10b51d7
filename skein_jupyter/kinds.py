"""The two tables the client consults instead of scattered if/else: job kinds and server frontends.

They live in the runtime (:mod:`skein_jupyter.runtime.kinds`), which the
container imports too, so the client and the container read the same rows;
this module is the client's name for them.
"""
from .runtime.kinds import APP_TAG, FRONTENDS, KINDS, Frontend, Kind, kind_of_tags

__all__ = ["Kind", "Frontend", "KINDS", "FRONTENDS", "APP_TAG", "kind_of_tags"]
