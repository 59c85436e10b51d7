"""The job: the one typed contract between the client and the container.

Shared by both sides (the client imports it as ``skein_jupyter.runtime.job``,
the container as ``skein_jupyter_runtime.job``), so it uses the standard
library only.
"""
import datetime
import string

__all__ = ["OUTPUT_PLACEHOLDERS", "check_output_template", "expand_output"]

#: The placeholders an output location may use, and nothing else.
OUTPUT_PLACEHOLDERS = ("user", "app_id", "name", "date")


def check_output_template(template: str) -> None:
    """Raise ValueError naming the problem unless ``template`` uses only :data:`OUTPUT_PLACEHOLDERS`.

    >>> check_output_template("/data/{user}/{date}")
    >>> check_output_template("/data/{team}")
    Traceback (most recent call last):
    ...
    ValueError: {team} is not a placeholder of an output location; use only {user}, {app_id}, {name}, {date}
    """
    allowed = ", ".join("{%s}" % name for name in OUTPUT_PLACEHOLDERS)
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"{template!r} is not a valid output location ({exc}); write a literal brace as "
                         f"{{{{ or }}}}, and use only {allowed}") from None
    for _, name, spec, conversion in fields:
        if name is None:
            continue
        if name not in OUTPUT_PLACEHOLDERS or spec or conversion:
            shown = "{" + name + ("!" + conversion if conversion else "") + (":" + spec if spec else "") + "}"
            raise ValueError(f"{shown} is not a placeholder of an output location; use only {allowed}")


def expand_output(template: str, user: str, app_id: str, name: str,
                  when: datetime.datetime | None = None) -> str:
    """Fill in ``{user}``, ``{app_id}``, ``{name}`` and ``{date}`` (UTC, YYYY-MM-DD).

    >>> expand_output("/r/{user}/{name}-{date}", "alice", "application_1_0001", "nightly",
    ...               datetime.datetime(2026, 11, 22))
    '/r/alice/nightly-2026-11-22'
    """
    check_output_template(template)
    when = when or datetime.datetime.now(datetime.timezone.utc)
    return template.format(user=user, app_id=app_id, name=name, date=when.strftime("%Y-%m-%d"))
