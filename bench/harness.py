"""Run each figure several times and report median, min and max next to its baseline."""
import dataclasses
import json
import statistics
import sys
import time


@dataclasses.dataclass
class Figure:
    name: str
    unit: str
    samples: list

    @property
    def median(self):
        return statistics.median(self.samples)

    def row(self):
        return {"name": self.name, "unit": self.unit, "median": round(self.median, 3),
                "min": round(min(self.samples), 3), "max": round(max(self.samples), 3), "runs": len(self.samples)}


def measure(name, function, runs, unit="s"):
    """Call ``function`` ``runs`` times; it returns a value, or None to be timed itself."""
    samples = []
    for i in range(runs):
        start = time.monotonic()
        value = function()
        samples.append(time.monotonic() - start if value is None else value)
        print(f"  {name} [{i + 1}/{runs}]: {samples[-1]:.2f} {unit}", file=sys.stderr, flush=True)
    return Figure(name, unit, samples)


def table(groups):
    """Print ``[(title, [Figure], [(label, numerator name, denominator name)])]`` as text."""
    lines = []
    for title, figures, ratios in groups:
        lines.append(f"\n{title}")
        lines.append(f"  {'figure':44} {'median':>9} {'min':>9} {'max':>9}")
        by_name = {f.name: f for f in figures}
        for f in figures:
            lines.append(f"  {f.name:44} {f.median:8.2f}{f.unit:1} {min(f.samples):8.2f}{f.unit:1} "
                         f"{max(f.samples):8.2f}{f.unit:1}")
        for label, top, bottom in ratios:
            lines.append(f"  ratio {label:38} {by_name[top].median / by_name[bottom].median:8.2f}x")
    return "\n".join(lines)


def to_json(groups):
    return json.dumps([{"title": title, "figures": [f.row() for f in figures],
                        "ratios": [{"label": label, "value": round(by[top].median / by[bottom].median, 3)}
                                   for label, top, bottom in ratios
                                   for by in [{f.name: f for f in figures}]]}
                       for title, figures, ratios in groups], indent=2)
