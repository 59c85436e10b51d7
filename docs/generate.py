"""Reference text generated from the code, so the docs cannot drift from it."""
import dataclasses
from pathlib import Path


def _recipe_schema():
    from skein_jupyter.config import env_var_name
    from skein_jupyter.recipe import Recipe, _SECTIONS, field_paths

    lines = []
    section = None
    for path, field in field_paths():
        head = path.split(".")[0] if "." in path else ""
        if head != section:
            section = head
            title = f"``{head}:``" if head else "Top level"
            doc = (_SECTIONS[head].__doc__ or "").strip() if head else (Recipe.__doc__ or "").strip()
            lines += ["", title, "~" * len(title), "", doc, ""]
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        lines += [f"``{path}``", f"   {field.metadata['doc']}", "",
                  f"   Default: ``{default!r}``. Environment variable: ``{env_var_name(path)}``.", ""]
    return "\n".join(lines + _step_schema()) + "\n"


def _step_schema():
    """The fields of one step of a flow (``flow.steps.<name>``): a mapping, so no environment variables."""
    from skein_jupyter.recipe import FlowStep

    title = "``flow.steps.<name>:``"
    lines = ["", title, "~" * len(title), "", (FlowStep.__doc__ or "").strip(), ""]
    for field in dataclasses.fields(FlowStep):
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        lines += [f"``flow.steps.<name>.{field.name}``", f"   {field.metadata['doc']}", "",
                  f"   Default: ``{default!r}``.", ""]
    return lines


def _keys():
    from skein_jupyter.runtime import keys

    return (keys.__doc__ or "").strip() + "\n"


def _exit_codes():
    """The table of :data:`skein_jupyter.exceptions.EXIT_CODES`, as a list-table."""
    from skein_jupyter.exceptions import EXIT_CODES

    lines = [".. list-table::", "   :header-rows: 1", "   :widths: 8 92", "", "   * - Code", "     - Meaning"]
    for code, text in sorted(EXIT_CODES.items()):
        lines += [f"   * - {code}", f"     - {text}"]
    return "\n".join(lines) + "\n"


def write_generated(directory):
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in (("recipe_schema.rst", _recipe_schema()), ("kv_keys.rst", _keys()),
                       ("exit_codes.rst", _exit_codes())):
        path = directory / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
