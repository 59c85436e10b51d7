"""The flow figure: a 4-step flow in one application against its 4 notebooks as 4 runs, one after another."""
import tempfile
from pathlib import Path

from .harness import measure
from .scenarios import _bare_app, _trivial_notebook

#: A diamond: a, then b and c side by side, then d.
DIAMOND = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}


def flow_speedup(context, runs):
    """The same 4 trivial notebooks: one flow application (parallel 2), against 4 applications one after
    another (what a scheduler that submits one run per task does). Both share one Skein driver."""
    import skein
    import yaml

    from skein_jupyter.config import load_recipe
    from skein_jupyter.runs import follow, start

    with tempfile.TemporaryDirectory() as tmp:
        notebook = _trivial_notebook(tmp)
        flow_file = Path(tmp) / "flow.yaml"
        flow_file.write_text(yaml.safe_dump({
            "kind": "flow", "name": "bench-flow", "environment": context.url, "resources": {"memory": "512 MiB"},
            "flow": {"parallel": 2, "steps": {name: {"notebook": str(notebook), "depends_on": deps,
                                                     "parameters": {"x": i}}
                                              for i, (name, deps) in enumerate(DIAMOND.items())}}}))
        flow, _ = load_recipe(flow_file, environ={}, config_path=Path(tmp) / "none.yaml")
        _bare_app(context.url)  # warm YARN's cache of the unpacked environment

        def run(x):
            model, _ = load_recipe(kind="run", environ={}, config_path=Path(tmp) / "none.yaml", flags={
                "environment": context.url, "resources.memory": "512 MiB", "run.notebook": str(notebook),
                "run.parameters": {"x": x}})
            return model

        with skein.Client(log=False) as client:
            def one_flow():
                outcome = follow(client, start(flow, client).app_id, timeout=1800)
                assert outcome.succeeded, outcome

            def one_after_another():
                for x in range(len(DIAMOND)):
                    outcome = follow(client, start(run(x), client).app_id, timeout=900)
                    assert outcome.succeeded, outcome

            flow_figure = measure("one flow app, 4 steps (diamond, parallel 2)", one_flow, runs)
            serial = measure("4 run apps, one after another", one_after_another, runs)
    return ("Flow of 4 steps against 4 separate runs", [flow_figure, serial],
            [("one after another / flow", serial.name, flow_figure.name)])
