"""Sphinx configuration. Reference pages are generated from the code at build time."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

project = "skein-jupyter"
author = "the skein-jupyter developers"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx_click"]
exclude_patterns = ["_build"]
html_theme = "alabaster"
napoleon_numpy_docstring = True
napoleon_google_docstring = False
autodoc_member_order = "bysource"
nitpicky = False


def _literal_stars(app, ctx, lines):
    """Cron expressions in command help (``0 6 * * *``) are text, not RST emphasis."""
    import re

    lines[:] = [re.sub(r"(?<=[\s'])\*", r"\\*", line) for line in lines]


def setup(app):
    from generate import write_generated

    app.connect("sphinx-click-process-description", _literal_stars)

    write_generated(Path(app.srcdir) / "reference" / "_generated")
