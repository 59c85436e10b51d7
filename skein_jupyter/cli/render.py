"""Human rendering of results, in one place: tables, summaries, JSON on request."""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ..notebook import ServerInfo, StopWarning, Tunnel
    from ..outcome import RunOutcome
    from ..packing import PackResult
    from ..sandbox import DaemonStatus

__all__ = ["echo_json", "echo_rows", "show_server", "server_line", "SERVER_HEADER", "workspace_line",
           "WORKSPACE_HEADER", "show_outcome",
           "show_settings", "show_packed", "env_line", "ENV_HEADER", "show_sandbox_status"]


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def echo_rows(rows: Sequence[Any], as_json: bool, empty: str, header: str, line: Callable[[Any], str]) -> None:
    """A listing: JSON, a sentence when there is nothing, or ``header`` and one ``line(row)`` per row."""
    if as_json:
        echo_json(rows)
    elif not rows:
        click.echo(empty)
    else:
        click.echo(header)
        for row in rows:
            click.echo(line(row))


def show_settings(rows: Sequence[tuple[str, Any, str]], config_file: str | os.PathLike[str], as_json: bool) -> None:
    """``config show``: every field, its value and where it came from."""
    from ..config import env_var_name

    if as_json:
        echo_json({"config_file": str(config_file),
                   "settings": [{"field": p, "value": v, "source": s, "env_var": env_var_name(p)}
                                for p, v, s in rows]})
        return
    click.echo(f"# config file: {config_file}")
    width = max(len(p) for p, _, _ in rows)
    for path, value, source in rows:
        click.echo(f"{path:{width}}  {json.dumps(value):40}  {source}")


def show_server(server: ServerInfo, way: Tunnel, as_json: bool, warning: StopWarning | None = None) -> None:
    """A server's address and the SSH tunnel ``way`` to it; first, the ``warning`` that it stops soon."""
    if as_json:
        echo_json({**server.to_dict(), "url": server.url(), "tunnel_command": way.command, "tunnel_url": way.url,
                   "warning": warning.to_dict() if warning else None})
        return
    click.echo(f"Jupyter ({server.frontend}) running in {server.app_id} on {server.host}:{server.port}")
    if warning:
        click.echo(f"  Warning: {warning.line()}")
    click.echo(f"  URL on the cluster network: {server.url()}")
    if server.tls_fingerprint:
        click.echo(f"  TLS certificate SHA-256:    {server.tls_fingerprint}")
    click.echo(f"  From your laptop, open a tunnel:  {way.command}")
    click.echo(f"  then browse to:                   {way.url}")
    click.echo(f"  Stop it with: skein-jupyter notebook stop {server.app_id}")


def server_line(r: Mapping[str, Any]) -> str:
    from ..units import format_duration

    idle = format_duration(r["idle_seconds"]) if r["idle_seconds"] is not None else "-"
    return (f"{r['app_id']:32} {r['name'][:24]:24} {r['state']:9} {format_duration(r['age_seconds']):>8} "
            f"{r['memory_mb']:>6}Mi {r['vcores']:>6} {idle:>8} {r.get('workspace') or '-'}")


SERVER_HEADER = (f"{'APPLICATION':32} {'NAME':24} {'STATE':9} {'AGE':>8} {'MEMORY':>8} {'VCORES':>6} {'IDLE':>8} "
                 "WORKSPACE")


def _size(size: int) -> str:
    """``2048`` -> ``2.0Ki``: bytes in the largest binary unit under 1024."""
    value, unit = float(size), ""
    for unit in ("", "Ki", "Mi", "Gi", "Ti"):
        if value < 1024 or unit == "Ti":
            break
        value /= 1024
    return f"{value:.1f}{unit}" if unit else f"{int(value)}B"


def workspace_line(r: Mapping[str, Any]) -> str:
    import datetime

    used = datetime.datetime.fromtimestamp(r["last_used"]).strftime("%Y-%m-%d %H:%M") if r["last_used"] else "-"
    return f"{r['name'][:24]:24} {_size(r['bytes']):>10} {used:16} {r['server'] or '-':32} {r['path']}"


WORKSPACE_HEADER = f"{'NAME':24} {'SIZE':>10} {'LAST USED':16} {'SERVER':32} PATH"


def show_outcome(outcome: RunOutcome, as_json: bool, info: Mapping[str, Any] | None = None) -> None:
    """Where a run, sweep or flow stands or how it ended: one line, then its sets or its cell error and outputs."""
    from ..units import format_duration

    if as_json:
        echo_json({**outcome.to_dict(), **(info or {})})
        return
    summary = outcome.summary or {}
    duration = f" in {format_duration(summary['duration'])}" if summary.get("duration") else ""
    click.echo(f"{outcome.kind.title()} {outcome.app_id} {outcome.status.replace('_', ' ')}{duration} "
               f"(YARN: {outcome.state}, {outcome.final_status})")
    if info and info.get("line") and not summary:
        click.echo(f"  {info['line']}")
    if outcome.kind == "flow" and outcome.results:
        click.echo(f"  {'STEP':16} {'STATUS':10} {'ATTEMPTS':>8} {'DURATION':>9}  OUTPUT")
        for r in outcome.results:
            click.echo(f"  {r['step'][:16]:16} {r['status']:10} {r['attempts']:>8} "
                       f"{format_duration(r['duration']) if r['duration'] else '-':>9}  {r['output'] or '-'}")
            _error_line(r, 17)
    if outcome.kind == "sweep" and outcome.results:
        click.echo(f"  {'SET':>4}  {'STATUS':10} {'DURATION':>9}  OUTPUT")
        for r in outcome.results:
            click.echo(f"  {r['set']:>4}  {r['status']:10} {format_duration(r['duration']):>9}  {r['output'] or '-'}")
            _error_line(r, 6)
    for r in outcome.results if outcome.kind == "run" else []:
        if r["status"] != "succeeded":
            where = f" in cell {r['cell'] + 1}" if r.get("cell") is not None else ""
            click.echo(f"  {r['status'].replace('_', ' ')}{where}: {r['ename']}: {r['evalue']}")
        if r.get("output"):
            click.echo(f"  output notebook: {r['output']}")
        if r.get("html"):
            click.echo(f"  HTML:            {r['html']}")
    if summary.get("table") and outcome.kind in ("sweep", "flow"):
        click.echo(f"  table: {summary['table']}" + (" (and .csv)" if outcome.kind == "sweep" else ""))
    elif not summary and outcome.ended:
        last = outcome.diagnostics.strip().splitlines()[-1] if outcome.diagnostics.strip() else "-"
        click.echo(f"  no result recorded: {last}")
    if info and info.get("output"):
        click.echo(f"  outputs: {info['output']}")


def _error_line(row: Mapping[str, Any], indent: int) -> None:
    """Under a failed or timed-out step or set of a table: its exception and the cell it stopped in."""
    if row["status"] in ("failed", "timed_out") and row.get("ename"):
        where = f" in cell {row['cell'] + 1}" if row.get("cell") is not None else ""
        lines = str(row.get("evalue") or "").strip().splitlines()
        click.echo(f"  {'':{indent}}{row['ename']}{where}: {lines[0][:200] if lines else ''}")


def show_packed(result: PackResult, as_json: bool) -> None:
    """``env pack``: the archive, its size and time, its Python, and the kernelspecs it patched."""
    meta = result.metadata
    if as_json:
        echo_json({"archive": str(result.archive), "seconds": round(result.seconds, 2), **meta})
        return
    click.echo(f"Packed {meta['kind']} environment {meta['prefix']} into {result.archive} "
               f"({meta['size'] / 2**20:.1f} MiB, {result.seconds:.1f}s)")
    click.echo(f"  python {meta['python']} on {meta['platform']}, {len(meta['packages'])} packages, "
               f"sha256 {meta['sha256'][:16]}")
    for patch in result.patched_kernels:
        click.echo(f"  kernel {patch.name}: {patch.original} -> {patch.patched}")


ENV_HEADER = f"{'NAME':20} {'SHA256':16} {'SIZE':>9} {'PYTHON':8} {'PACKER':18} UPLOADED"


def env_line(r: Mapping[str, Any]) -> str:
    return (f"{r.get('name', '?'):20} {r.get('sha256', '?')[:16]:16} {r.get('size', 0) / 2**20:7.1f}Mi "
            f"{r.get('python', '?'):8} {r.get('packer', '?'):18} {r.get('uploaded', '?')}"
            f"{'  public' if r.get('public') else ''}")


def show_sandbox_status(root: str | os.PathLike[str], statuses: Sequence[DaemonStatus],
                        nodes: Sequence[Mapping[str, Any]], as_json: bool) -> None:
    if as_json:
        echo_json({"root": str(root), "daemons": [s.to_dict() for s in statuses], "nodes": nodes})
        return
    for s in statuses:
        state = f"up (pid {s.pid})" if s.running else "down" + (" (stale pid file)" if s.stale_pid_file else "")
        click.echo(f"{s.name:16} {state:18} {s.url}")
    for node in nodes:
        health = f" - {node['health']}" if node["health"] else ""
        click.echo(f"node {node['id']:11} {node['state']}{health}")
