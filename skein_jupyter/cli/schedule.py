"""``skein-jupyter schedule …`` (cron definitions) and ``skein-jupyter scheduler …`` (the application firing them)."""
import click

from .options import json_option, progress, quiet_option, recipe_options
from .render import echo_json

__all__ = ["schedule", "scheduler"]

#: The options of ``run`` a schedule's target takes (the rest, --detach and such, are about following a run).
RUN_OPTIONS = ("typed", "raw", "yamls", "files", "kernel", "engine", "cell_timeout", "start_timeout", "timeout",
               "output", "html", "retries", "retry_failed_cells", "sweep_file", "parallel", "notify_on", "webhooks",
               "emails")


def _run_options(command):
    from .run import run_command

    shared = [param for param in run_command.params if param.name in RUN_OPTIONS]
    command.params.extend(shared)
    return command


@click.group()
def schedule():
    """Cron schedules of runs, sweeps and flows, fired by your scheduler application.

    \b
    Example:
      skein-jupyter schedule create nightly --cron '0 6 * * *' --timezone Europe/Paris report.ipynb --env analytics
      skein-jupyter schedule list
    """


@_run_options
@schedule.command("create")
@click.argument("schedule_name", metavar="NAME")
@click.argument("target", metavar="NOTEBOOK|RECIPE")
@click.option("--cron", "cron_expr", metavar="EXPR", help="When to fire (required): a cron expression, "
              "minute hour day-of-month month day-of-week, as in the examples.")
@click.option("--timezone", "tz", default="UTC", show_default=True, metavar="TZ",
              help="IANA time zone the cron expression is read in, e.g. Europe/Paris.")
@click.option("--misfire", type=click.Choice(["run-once", "skip"]), default="run-once", show_default=True,
              help="Fire times missed while the scheduler was down: fire once for all, or skip them.")
@click.option("--overlap", type=click.Choice(["skip", "allow"]), default="skip", show_default=True,
              help="A fire time while the previous run still runs: skip it (recorded), or fire anyway.")
@recipe_options
@json_option
@quiet_option
def create_command(schedule_name, target, cron_expr, tz, misfire, overlap, as_json, quiet, **options):
    """Schedule a notebook (with run flags), a run or sweep recipe, or a flow recipe.

    TARGET and its flags are read exactly as `skein-jupyter run` reads them and
    checked the same way; the job's files are uploaded privately into the
    schedule's directory on HDFS. Nothing is written if a check fails.

    \b
    Example:
      skein-jupyter schedule create nightly --cron '0 6 * * *' report.ipynb --env analytics -p alpha 0.5 --html
      skein-jupyter schedule create weekly --cron '0 7 * * 1' --timezone Europe/Paris recipes/nightly-report.yaml
    """
    from ..launch import skein_client
    from ..schedules import check_new, create
    from .run import run_recipe

    name = schedule_name
    check_new(name, cron_expr, tz, misfire, overlap)  # before anything reads files or starts a driver
    recipe = run_recipe(target, **options)
    with skein_client(recipe) as client:
        definition = create(name, cron_expr, recipe, target, client, tz=tz, misfire=misfire, overlap=overlap,
                            progress=progress(quiet))
    if as_json:
        echo_json(_definition_row(definition))
    else:
        click.echo(f"Created schedule {name}: {cron_expr} ({tz}); next fire {_row_next(definition)}")


def _row_next(definition):
    from ..schedules import next_fires

    upcoming = next_fires(definition)
    return upcoming[0].strftime("%Y-%m-%dT%H:%M:%SZ") if upcoming else "none (paused)"


def _definition_row(definition):
    import dataclasses

    return {**dataclasses.asdict(definition), "next": _row_next(definition)}


@schedule.command("list")
@json_option
def list_command(as_json):
    """List your schedules with their next fire time.

    \b
    Example:
      skein-jupyter schedule list --json
    """
    from ..schedules import list_schedules

    rows = [_definition_row(d) for d in list_schedules()]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("No schedules; create one with `skein-jupyter schedule create`")
        return
    click.echo(f"{'NAME':<24} {'CRON':<16} {'TIME ZONE':<16} {'NEXT FIRE':<30} TARGET")
    for row in rows:
        state = "paused" if row["paused"] else str(row["next"])
        click.echo(f"{row['name']:<24} {row['cron']:<16} {row['timezone']:<16} {state:<30} {row['target']['target']}")


@schedule.command("show")
@click.argument("name")
@json_option
def show_command(name, as_json):
    """Show a schedule: cron, time zone, policies, target, next fire times.

    \b
    Example:
      skein-jupyter schedule show nightly
    """
    from ..schedules import load, next_fires

    definition = load(name)
    row = _definition_row(definition)
    row["next_fires"] = [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in next_fires(definition, 5)]
    if as_json:
        echo_json(row)
        return
    from ..runtime.cron import parse_stamp

    shown = dict(row, paused="yes" if row["paused"] else "no",
                 created=parse_stamp(row["created"]).strftime("%Y-%m-%dT%H:%M:%SZ") if row["created"] else "-")
    for key in ("name", "cron", "timezone", "misfire", "overlap", "paused", "created", "next_fires"):
        value = ", ".join(shown[key]) if isinstance(shown[key], list) else shown[key]
        click.echo(f"{key + ':':<12} {value}")
    for key, value in row["target"].items():
        if value is not None:
            click.echo(f"{'target.' + key + ':':<12} {value}")


@schedule.command("pause")
@click.argument("name")
def pause_command(name):
    """Stop firing a schedule until it is resumed.

    \b
    Example:
      skein-jupyter schedule pause nightly
    """
    from ..schedules import load, set_paused

    if load(name).paused:
        click.echo(f"{name} was already paused")
        return
    set_paused(name, True)
    click.echo(f"Paused {name}")


@schedule.command("resume")
@click.argument("name")
def resume_command(name):
    """Fire a paused schedule again, from now on (what was missed while paused does not fire).

    \b
    Example:
      skein-jupyter schedule resume nightly
    """
    from ..schedules import set_paused

    definition = set_paused(name, False)
    click.echo(f"Resumed {name}; next fire {_row_next(definition)}")


@schedule.command("trigger")
@click.argument("name")
@click.option("--timeout", default=300, show_default=True, help="Seconds to wait for the scheduler to fire it.")
@json_option
@quiet_option
def trigger_command(name, timeout, as_json, quiet):
    """Fire a schedule now, through your scheduler (recorded in its history; even while paused).

    \b
    Example:
      skein-jupyter schedule trigger nightly
    """
    from ..launch import skein_client
    from ..schedules import trigger

    with skein_client() as client:
        record = trigger(name, client, wait=timeout, progress=progress(quiet))
    if as_json:
        echo_json(record)
    else:
        click.echo(record.get("app_id") or f"not submitted: {record.get('error')}")


@schedule.command("delete")
@click.argument("name")
def delete_command(name):
    """Delete a schedule, its stored job and its history (the runs it fired keep their outputs).

    \b
    Example:
      skein-jupyter schedule delete nightly
    """
    from ..schedules import delete

    delete(name)
    click.echo(f"Deleted {name}")


@schedule.command("history")
@click.argument("name")
@json_option
def history_command(name, as_json):
    """List a schedule's fires: scheduled time, fired time, how, application and its final status.

    \b
    Example:
      skein-jupyter schedule history nightly --json
    """
    from ..schedules import history

    records = history(name)
    if as_json:
        echo_json(records)
        return
    if not records:
        click.echo(f"{name} has not fired yet")
        return
    click.echo(f"{'SCHEDULED':<21} {'FIRED':<21} {'HOW':<8} {'APPLICATION':<32} STATUS")
    for r in records:
        click.echo(f"{r.get('scheduled') or '-':<21} {r.get('fired') or '-':<21} {r.get('how') or '-':<8} "
                   f"{r.get('app_id') or '-':<32} {r.get('final_status') or r.get('state')}"
                   + (f": {r['reason']}" if r.get("reason") else ""))


@click.group()
def scheduler():
    """Your scheduler: the long-running YARN application that fires your schedules.

    \b
    Example:
      skein-jupyter scheduler start --env analytics
      skein-jupyter scheduler status
    """


@scheduler.command("start")
@click.option("--env", "environment", metavar="ENV", help="Environment the scheduler runs in (needs skein) "
              "[default: your config's environment].")
@click.option("--queue", help="YARN queue of the scheduler application.")
@click.option("--poll", type=float, default=30, show_default=True, help="Seconds between two looks at the "
              "schedules.")
@click.option("--keytab", help="Kerberized clusters: a keytab the scheduler logs in with to submit runs.")
@click.option("--principal", help="Kerberized clusters: the keytab's principal.")
@quiet_option
def start_command(environment, queue, poll, keytab, principal, quiet):
    """Start your scheduler (one per user); prints its application id.

    \b
    Example:
      skein-jupyter scheduler start --env analytics
    """
    from ..launch import skein_client
    from ..scheduler_app import start

    with skein_client() as client:
        app_id = start(client, environment, queue, poll, keytab, principal, progress(quiet))
    click.echo(app_id)


@scheduler.command("status")
@json_option
def status_command(as_json):
    """Show your scheduler's application and state, and your schedules' next fire times.

    \b
    Example:
      skein-jupyter scheduler status
    """
    from ..launch import skein_client
    from ..scheduler_app import status

    with skein_client() as client:
        result = status(client)
    if as_json:
        echo_json(result.to_dict())
        return
    click.echo(f"Scheduler: {result.app_id} ({result.state})" if result.app_id else
               "Scheduler: not running (start it with `skein-jupyter scheduler start --env ENV`)")
    if result.last_pass:
        click.echo(f"Last pass: {result.last_pass}")
    for row in result.schedules:
        click.echo(f"  {row['name']:<24} {'paused' if row['paused'] else 'next ' + str(row['next'])}")


@scheduler.command("stop")
def stop_command():
    """Stop your scheduler; schedules stay, and fire again once it is started.

    \b
    Example:
      skein-jupyter scheduler stop
    """
    from ..launch import skein_client
    from ..scheduler_app import stop

    with skein_client() as client:
        app_id = stop(client)
    click.echo(f"Stopped {app_id}" if app_id else "Your scheduler was not running; nothing to stop")
