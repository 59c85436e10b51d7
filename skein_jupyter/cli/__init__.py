"""The ``skein-jupyter`` command line: parse, call one library function, render.

Each module holds one group of commands (``env``, ``notebook``, ``run`` and
its companions, ``sandbox``, recipes); :mod:`.render` holds the human
output. Imports of the library happen inside the commands so ``--help``
stays fast. Every error ends in :class:`_Group`, the one place that turns it
into a single ``Error: …`` line and an exit code from
:data:`~skein_jupyter.exceptions.EXIT_CODES`.
"""
import os
import subprocess
import sys
import warnings

import click

from ..exceptions import EXIT_CODES, InfrastructureError, SkeinJupyterError, SkeinJupyterWarning
from . import env, kernel, notebook, recipes, run, sandbox, schedule, workspace

__all__ = ["cli", "main", "infrastructure_error", "EXIT_CODES"]


def _first_line(text, last=False):
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return (lines[-1] if last else lines[0])[:300] if lines else ""


def infrastructure_error(exc: BaseException) -> InfrastructureError | None:
    """A Skein or Hadoop failure as an :class:`InfrastructureError` (one line), or None for anything else."""
    if isinstance(exc, subprocess.CalledProcessError):
        command = " ".join(str(part) for part in exc.cmd[:2]) if isinstance(exc.cmd, (list, tuple)) else exc.cmd
        reason = _first_line(exc.stderr or exc.output or "", last=True) or f"exit status {exc.returncode}"
        return InfrastructureError(f"`{command}` failed: {reason}; check that the cluster is up and try again")
    if isinstance(exc, subprocess.TimeoutExpired):
        command = " ".join(str(part) for part in exc.cmd[:2]) if isinstance(exc.cmd, (list, tuple)) else exc.cmd
        return InfrastructureError(f"`{command}` did not answer within {exc.timeout:g}s; check that the cluster "
                                   "is up and try again")
    if _from_skein(exc):
        reason = _first_line(exc) or type(exc).__name__
        return InfrastructureError(f"Skein: {reason}; check the cluster (`yarn node -list`) and try again")
    return None


def _from_skein(exc):
    """Whether Skein (or its gRPC channel) raised ``exc``: its own class, or a builtin raised in its code."""
    if (type(exc).__module__ or "").split(".")[0] in ("skein", "grpc"):
        return True
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    filename = tb.tb_frame.f_code.co_filename if tb is not None else ""
    return any(f"{os.sep}{package}{os.sep}" in filename for package in ("skein", "grpc"))


class _ReportedError(click.ClickException):
    """A library error shown as one ``Error: …`` line with its own exit code."""

    def __init__(self, error):
        super().__init__(str(error))
        self.exit_code = error.exit_code


class _Group(click.Group):
    def main(self, *args, **kwargs):
        """Click's own mistakes (an unknown option, a bad value) as one ``Error:`` line too, exit 2."""
        if not kwargs.pop("standalone_mode", True):
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else "skein-jupyter"
            click.echo(f"Error: {exc.format_message().rstrip('.')}; see `{where} --help`", err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx):
        with warnings.catch_warnings():  # the library's warnings as `Warning: …` lines; others as Python shows them
            shown = warnings.showwarning

            def show(message, category, filename, lineno, file=None, line=None):
                if issubclass(category, SkeinJupyterWarning):
                    click.echo(f"Warning: {message}", err=True)
                else:
                    shown(message, category, filename, lineno, file, line)

            warnings.simplefilter("always", SkeinJupyterWarning, append=True)  # a user's -W or PYTHONWARNINGS wins
            warnings.showwarning = show
            return self._invoke(ctx)

    def _invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SkeinJupyterError as error:
            details = getattr(error, "details", None)
            if details:  # context such as the end of a container log, before the one-line error
                click.echo(details, err=True)
            raise _ReportedError(error) from None
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            reported = infrastructure_error(exc)
            if reported is None:
                raise
            raise _ReportedError(reported) from None


def _exit_codes_epilog():
    lines = ["\b", "Exit codes:"] + [f"  {code}  {text}" for code, text in sorted(EXIT_CODES.items())]
    return "\n".join(lines)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]}, epilog=_exit_codes_epilog())
@click.version_option(package_name="skein-jupyter")
def cli():
    """Run Jupyter servers and papermill batch runs on Hadoop YARN through Skein.

    \b
    Example:
      skein-jupyter sandbox up      # a local Hadoop to try things on
    """


for _command in (recipes.spec_command, recipes.config, notebook.notebook, run.run_command, run.status_command,
                 run.logs_command, run.kill_command, run.fetch_command, env.env, workspace.workspace,
                 sandbox.sandbox, schedule.schedule, schedule.scheduler, kernel.kernel):
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="skein-jupyter")
