"""What a run leaves on the cluster filesystem: output names, interrupted notebooks marked, HTML, the sweep table.

Pure functions of local files and result records; the worker uploads what they make.
"""
import csv
import io
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_OUTPUT", "RUNS_INDEX", "output_names", "annotate", "export_html", "span", "table_csv",
           "final_diagnostics"]

#: Where a run's outputs go unless the recipe says otherwise.
DEFAULT_OUTPUT = "/user/{user}/skein-jupyter/runs/{app_id}"
#: A record per application pointing at its outputs, for `status` and `fetch` after the end.
RUNS_INDEX = "/user/{user}/.skein-jupyter/runs"


def output_names(notebook: str, n_sets: int, index: int) -> str:
    """Base name of the output files of set ``index`` (``report`` or ``report-07``)."""
    stem = os.path.basename(notebook)
    stem = stem[:-len(".ipynb")] if stem.endswith(".ipynb") else stem
    if n_sets == 1:
        return stem
    return f"{stem}-{index:0{max(2, len(str(n_sets - 1)))}d}"


# ----------------------------------------------------------------- output notebook annotation

_BANNER = ('<span style="color:red; font-family:Helvetica Neue, Helvetica, Arial, sans-serif; font-size:2em;">'
           "{message}</span>")


def annotate(path: str | os.PathLike[str], status: str, message: str, cell: int | None = None) -> bool:
    """Mark an interrupted notebook: the cell it stopped in gets an error output, a banner goes on top.

    Papermill does this itself for a cell that raised; a timeout or a stop
    interrupts it, so the saved notebook would not say why it ends there.
    ``cell`` is the index of the cell that was running (the last one started
    when not given).
    """
    try:
        nb = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return False
    cells = nb.get("cells", [])
    started = [i for i, c in enumerate(cells) if c.get("metadata", {}).get("papermill", {}).get("start_time")]
    if cell is None or not 0 <= cell < len(cells):
        cell = started[-1] if started else None
    for index, item in enumerate(cells):
        meta = item.setdefault("metadata", {}).setdefault("papermill", {})
        if index == cell:
            meta.update(status="failed", exception=True)
            if item.get("cell_type") == "code":
                item.setdefault("outputs", []).append({
                    "output_type": "error", "ename": "RunTimeout" if status == "timed_out" else "RunStopped",
                    "evalue": message, "traceback": [message]})
        elif cell is not None and index > cell:
            meta.update(status="pending", start_time=None, end_time=None, duration=None)
    nb.setdefault("metadata", {}).setdefault("papermill", {})["exception"] = True
    banner = {"cell_type": "markdown", "id": "skein-jupyter-interrupted",
              "metadata": {"tags": ["papermill-error-cell-tag"]},
              "source": [_BANNER.format(message=message.replace("<", "&lt;"))]}
    if nb.get("nbformat_minor", 0) < 5:
        banner.pop("id")
    cells.insert(0, banner)
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(nb, indent=1))
    tmp.replace(path)
    return True


def export_html(notebook_path: str | os.PathLike[str], html_path: str | os.PathLike[str]) -> None:
    """HTML of the output notebook with nbconvert (from the environment)."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_filename(str(notebook_path))
    Path(html_path).write_text(body, encoding="utf-8")


def span(rows: Iterable[Mapping[str, Any]]) -> float:
    """Seconds from the first set's start to the last set's end."""
    started = [row["started"] for row in rows if row.get("started")]
    finished = [row["finished"] for row in rows if row.get("finished")]
    return round(max(finished) - min(started), 2) if started and finished else 0


def final_diagnostics(summary: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], output: str,
                      prefix: str = "") -> str:
    """The application's diagnostics as it ends (YARN's and JupyterLab's status line).

    The outcome and its counts, the first set or step that did not succeed
    with its exception's name and cell, and where the outputs are. Never the
    exception's message: YARN shows diagnostics to whoever may view the
    application, and a message can hold the notebook's data.

    >>> final_diagnostics({"status": "failed", "counts": {"failed": 1}},
    ...                   [{"set": 0, "status": "failed", "ename": "ValueError", "cell": 2}], "/out")
    'failed: 1 failed; ValueError in cell 3; outputs in /out'
    """
    counts = ", ".join(f"{n} {status}" for status, n in sorted(summary["counts"].items()))
    text = f"{prefix}{summary['status']}: {counts}"
    first = next((row for row in rows if row.get("status") != "succeeded" and row.get("ename")), None)
    if first is not None:
        which = f"step {first['step']}: " if "step" in first else f"set {first['set']}: " if len(rows) > 1 else ""
        where = f" in cell {first['cell'] + 1}" if first.get("cell") is not None else ""
        text += f"; {which}{str(first['ename'])[:100]}{where}"
    return f"{text}; outputs in {output}"


def table_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    """The sweep table as CSV: one row per set, one column per parameter."""
    names = list(dict.fromkeys(name for row in rows for name in row["parameters"]))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["set", "status", "duration", "attempt", "cell", "error", "output", "html", *names])
    for row in rows:
        error = f"{row['ename']}: {row['evalue']}" if row.get("ename") else ""
        writer.writerow([row["set"], row["status"], row["duration"], row["attempt"], row["cell"], error,
                         row["output"] or "", row["html"] or "",
                         *(json.dumps(row["parameters"][n]) if n in row["parameters"] else "" for n in names)])
    return buffer.getvalue()
