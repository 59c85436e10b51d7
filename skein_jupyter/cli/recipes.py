"""Commands about recipes themselves: the spec a recipe makes, and the merged configuration."""
from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ..kinds import KINDS
from .options import json_option, recipe_flags, recipe_options
from .render import show_settings

if TYPE_CHECKING:
    from ..recipe import Recipe

__all__ = ["spec_command", "config", "print_spec"]


#: Heads every printed spec: the job file it names does not exist, on purpose.
JOB_NOTE = ("# job.json (the job: parameters, environment values) is written only by a launch\n"
            "# (mode 600, removed once submitted); nothing was written here.\n")


def print_spec(model: Recipe) -> None:
    """Print the spec a launch of ``model`` would submit (``spec`` and every ``--dry-run``)."""
    from ..launch import render_spec
    from ..spec import JOB_FILE, spec_to_yaml

    click.echo(JOB_NOTE + spec_to_yaml(render_spec(model), job_source=JOB_FILE), nl=False)


@click.command("spec")
@click.argument("recipe", type=click.Path(dir_okay=False))
@recipe_options
def spec_command(recipe, **options):
    """Print the Skein application spec a recipe makes, as YAML.

    Read what a launch would submit. Environment names are resolved on the
    cluster; nothing is uploaded, submitted or written. The job file the
    spec names, job.json (parameters and environment values), is written
    only by a launch (`run`, `notebook start`), privately, and removed once
    submitted, so this spec is for reading, not for `skein application
    submit`. Specs hold no secrets.

    \b
    Example:
      skein-jupyter spec recipes/nightly-report.yaml --memory 4GiB
    """
    from ..config import load_recipe

    model, _ = load_recipe(recipe, flags=recipe_flags(**options))
    print_spec(model)


@click.group()
def config():
    """Inspect the configuration layers.

    Layers, lowest first: packaged defaults, the user config file,
    SKEIN_JUPYTER_* environment variables, the recipe, then flags.

    \b
    Example:
      SKEIN_JUPYTER_QUEUE=etl skein-jupyter config show --kind run
    """


@config.command("show")
@click.argument("recipe", required=False, type=click.Path(dir_okay=False))
@click.option("--kind", type=click.Choice(list(KINDS)),
              help="Kind of job to show settings for, without a recipe [default: notebook].")
@recipe_options
@json_option
def config_show(recipe, kind, as_json, **options):
    """Show every setting of a job, merged, and where each value came from.

    \b
    Example:
      skein-jupyter config show recipes/notebook-server.yaml --memory 8GiB
    """
    from ..config import explain, load_recipe, user_config_path

    if recipe is None and kind is None:
        kind = "notebook"
    model, sources = load_recipe(recipe, kind=kind, flags=recipe_flags(**options))
    show_settings(explain(model, sources), user_config_path(), as_json)
