"""Options several commands share, and the mapping of flags onto recipe fields."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..exceptions import UsageError

if TYPE_CHECKING:
    from ..progress import Progress

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["quiet_option", "json_option", "recipe_options", "recipe_flags", "set_fields", "tunnel_options",
           "progress", "one_of"]

quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


def _apply(command: F, options: Sequence[Callable[[F], F]]) -> F:
    for option in reversed(options):
        command = option(command)
    return command


def progress(quiet: bool) -> Progress:
    """Progress on stderr (only on a terminal), or none with ``--quiet``."""
    from ..progress import Progress

    return Progress.quiet() if quiet else Progress()


def recipe_options(command: F) -> F:
    """Options every launch command shares; each sets one recipe field (the highest layer)."""
    return _apply(command, [
        click.option("--env", "environment", metavar="ENV",
                     help="Packed environment: a local .tar.gz, an hdfs:// archive, or a published name."),
        click.option("--name", help="Application name."),
        click.option("--queue", help="YARN queue."),
        click.option("--memory", help="Container memory, e.g. 4GiB (a bare number is MiB)."),
        click.option("--vcores", type=int, help="Container virtual cores."),
        click.option("--gpus", type=int, help="Container GPUs (yarn.io/gpu)."),
        click.option("--node-label", help="YARN node label expression."),
        click.option("--tag", "tags", multiple=True, help="YARN application tag (repeatable)."),
        click.option("--set", "settings", multiple=True, metavar="FIELD=VALUE",
                     help="Set any recipe field by its dotted path, e.g. --set notebook.idle_timeout=2h "
                          "(value read as YAML; repeatable)."),
    ])


_FLAG_FIELDS = {"environment": "environment", "name": "name", "queue": "queue", "memory": "resources.memory",
                "vcores": "resources.vcores", "gpus": "resources.gpus", "node_label": "node_label"}


def recipe_flags(settings: Iterable[str] = (), tags: Sequence[str] = (), **options: Any) -> dict:
    """Recipe options -> ``{dotted path: value}``; a field set twice is a usage error."""
    import difflib

    import yaml

    from ..recipe import field_paths

    flags = {_FLAG_FIELDS[key]: value for key, value in options.items() if value is not None}
    if tags:
        flags["tags"] = list(tags)
    known = [path for path, _ in field_paths()]
    for setting in settings:
        path, sep, text = setting.partition("=")
        path = path.strip()
        if not sep or path not in known:
            close = difflib.get_close_matches(path, known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise UsageError(f"--set {setting!r}: unknown field{hint}; use --set FIELD=VALUE with a recipe "
                             "field such as notebook.idle_timeout (see `skein-jupyter config show`)")
        if path in flags:
            raise UsageError(f"{path} is given twice on the command line (--set {path} and its own flag); "
                             "give it once")
        try:
            flags[path] = yaml.safe_load(text)
        except yaml.YAMLError:
            flags[path] = text
    return flags


def set_fields(flags: dict, fields: Iterable[tuple[str, Any]]) -> dict:
    """Add ``(dotted path, value)`` pairs of a command's own flags; None is "not given"."""
    for path, value in fields:
        if value is not None:
            if path in flags:
                raise UsageError(f"{path} is given twice on the command line; give it once")
            flags[path] = value
    return flags


def one_of(given: dict, why: str) -> str | None:
    """The one flag of ``{flag: value}``, exclusive flags, that was given, or None; two or more conflict."""
    chosen = [flag for flag, value in given.items() if value]
    if len(chosen) > 1:
        raise UsageError(f"{' and '.join(chosen)} conflict ({why}); give one of them")
    return chosen[0] if chosen else None


def tunnel_options(command: F) -> F:
    return _apply(command, [
        click.option("--local-port", type=int,
                     help="Laptop port of the SSH tunnel [default: the server's port if free]."),
        click.option("--ssh-user", help="User for the SSH tunnel [default: $SKEIN_JUPYTER_SSH_USER or you]."),
        click.option("--edge-host", help="This edge node's name as the laptop reaches it "
                                         "[default: $SKEIN_JUPYTER_EDGE_HOST or this host's name]."),
    ])
