"""``skein-jupyter env``: pack Python environments and publish them on the cluster filesystem."""
import click

from ..exceptions import UsageError
from .options import json_option, one_of, progress, quiet_option
from .render import ENV_HEADER, echo_json, echo_rows, env_line, show_packed

__all__ = ["env"]


def _check_directory(flag, directory):
    from ..validation import check_filesystem_url

    if directory is not None:
        try:
            check_filesystem_url(directory)
        except ValueError as exc:
            raise UsageError(f"{flag}: {exc}") from None


@click.group()
def env():
    """Pack Python environments for YARN and publish them on HDFS.

    \b
    Example:
      skein-jupyter env pack --prefix ~/venvs/analytics -o analytics.tar.gz
      skein-jupyter env upload analytics.tar.gz --to hdfs:///apps/skein-jupyter/environments --public
    """


@env.command("pack")
@click.option("--conda", metavar="NAME", help="Pack the conda environment of this name (conda-pack).")
@click.option("--prefix", metavar="PATH", help="Pack the conda environment or virtualenv at PATH.")
@click.option("--venv", metavar="PATH", help="Pack the virtualenv at PATH (venv-pack); same as --prefix.")
@click.option("-o", "--output", required=True, metavar="FILE", help="Archive to write: .tar.gz, .tgz, .zip or .tar.")
@click.option("--for", "job", type=click.Choice(["all", "notebook", "run", "kernel"]), default="all", show_default=True,
              help="Jobs the environment must run; their packages are checked before packing.")
@click.option("--name", help="Name in `env list` and for --env NAME: letters, digits, '.', '_' and '-' "
              "[default: the archive's name].")
@click.option("--compress-level", default=4, show_default=True, help="Compression, 0 (fast) to 9 (small).")
@click.option("--threads", default=1, show_default=True, help="Compression threads (conda-pack only; -1: all cores).")
@click.option("--exclude", multiple=True, metavar="PATTERN", help="Leave out files matching this glob (repeatable).")
@click.option("--force", is_flag=True, help="Replace an existing output file.")
@json_option
@quiet_option
def env_pack(conda, prefix, venv, output, job, name, compress_level, threads, exclude, force, as_json, quiet):
    """Pack an environment with its Jupyter kernelspecs patched for YARN.

    Packs the running Python's environment unless --conda, --prefix or
    --venv names another. Writes FILE and its metadata record FILE.json.

    \b
    Example:
      skein-jupyter env pack --conda analytics -o analytics.tar.gz --for notebook
    """
    from ..packing import pack

    one_of({"--conda": conda, "--prefix": prefix, "--venv": venv}, "pack one environment at a time")
    result = pack(output, conda=conda, prefix=prefix or venv, job=job, compress_level=compress_level,
                  n_threads=threads, exclude=exclude, force=force, name=name, progress=progress(quiet))
    show_packed(result, as_json)


@env.command("upload")
@click.argument("archive", type=click.Path(dir_okay=False))
@click.option("--to", "directory", metavar="DIR",
              help="Directory on the cluster filesystem (hdfs://, viewfs://, s3a://, ...) "
                   "[default: hdfs:///user/<you>/.skein-jupyter/environments].")
@click.option("--public", is_flag=True, help="World-readable, shared by YARN's public localization cache.")
@json_option
@quiet_option
def env_upload(archive, directory, public, as_json, quiet):
    """Upload a packed environment, unless the same content is there already.

    \b
    Example:
      skein-jupyter env upload analytics.tar.gz --to hdfs:///apps/skein-jupyter/environments --public
    """
    from ..envstore import upload

    _check_directory("--to", directory)
    result = upload(archive, to=directory, public=public, progress=progress(quiet))
    if as_json:
        echo_json({"url": result.url, "uploaded": result.uploaded, "public": result.public,
                   "seconds": round(result.seconds, 2)})
    elif result.uploaded:
        click.echo(f"Uploaded {result.url}{' (public)' if public else ''} in {result.seconds:.1f}s")
    else:
        click.echo(f"Already uploaded: {result.url} (same content); nothing transferred")


@env.command("list")
@click.argument("directory", required=False, metavar="[DIR]")
@json_option
def env_list(directory, as_json):
    """List the packed environments in a directory on the cluster.

    DIR defaults to your own (hdfs:///user/<you>/.skein-jupyter/environments);
    admins publish in hdfs:///apps/skein-jupyter/environments. A DIR given
    that does not exist is an error (exit 2); your own is empty until your
    first upload.

    \b
    Example:
      skein-jupyter env list hdfs:///apps/skein-jupyter/environments
    """
    from ..envstore import PUBLISHED_DIR, default_upload_dir, list_environments

    _check_directory("DIR", directory)
    where = (directory or default_upload_dir()).rstrip("/")
    empty = f"No environments in {where}"
    if where != PUBLISHED_DIR:
        empty += f"; the published ones: skein-jupyter env list {PUBLISHED_DIR}"
    echo_rows(list_environments(directory), as_json, empty, ENV_HEADER, env_line)
