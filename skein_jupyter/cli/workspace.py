"""``skein-jupyter workspace``: the HDFS directories notebook servers work in."""
import click

from .options import json_option
from .render import WORKSPACE_HEADER, echo_rows, workspace_line

__all__ = ["workspace"]


@click.group()
def workspace():
    """Workspaces: directories on HDFS that notebook servers work in.

    \b
    Example:
      skein-jupyter workspace list
      skein-jupyter notebook start --env analytics --workspace churn-study
    """


@workspace.command("list")
@json_option
def workspace_list(as_json):
    """List your named workspaces with their size, last use and the server using one.

    \b
    Example:
      skein-jupyter workspace list --json
    """
    from ..hdfs import HadoopFS
    from ..identity import hadoop_user
    from ..launch import skein_client
    from ..workspaces import list_workspaces

    with skein_client() as client:
        rows = list_workspaces(HadoopFS(), hadoop_user(), client)
    echo_rows(rows, as_json, "No workspaces yet: `skein-jupyter notebook start` makes `default`",
              WORKSPACE_HEADER, workspace_line)
