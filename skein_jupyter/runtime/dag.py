"""The steps of a flow as a graph: validation, order, and what may start or is skipped.

Pure functions over ``{step: [steps it depends on]}``, shared by the client
(which refuses a bad flow before submitting) and the flow's coordinator in the
container (which starts steps as the graph allows), so it uses the standard
library only.
"""
from __future__ import annotations

import re
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Set

__all__ = ["STEP_NAME", "check_step_name", "find_cycle", "check_graph", "topological_order", "downstream",
           "ready", "goes_on", "upstream", "DONE", "FAILED_STATES"]

#: A step name: it names a Skein service, a directory of outputs and a key in the key-value store.
STEP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
#: Step states after which a step never runs again.
DONE = frozenset({"succeeded", "failed", "timed_out", "stopped", "skipped", "cancelled"})
#: Step states that count as a failure of the step.
FAILED_STATES = frozenset({"failed", "timed_out"})


def check_step_name(name: object) -> None:
    """Raise ValueError unless ``name`` is a step name (letters, digits, ``_`` and ``-``; up to 64).

    >>> check_step_name("load-data")
    >>> check_step_name("a.b")
    Traceback (most recent call last):
    ...
    ValueError: 'a.b' is not a step name; use letters, digits, '_' and '-' (up to 64, starting with a letter or digit)
    """
    if not isinstance(name, str) or not STEP_NAME.match(name):
        raise ValueError(f"{name!r} is not a step name; use letters, digits, '_' and '-' (up to 64, starting "
                         "with a letter or digit)")


def find_cycle(graph: Mapping[str, Sequence[str]]) -> Optional[List[str]]:
    """A cycle of ``graph`` as a closed path ``[a, b, c, a]``, or None when it has none.

    >>> find_cycle({"a": ["c"], "b": ["a"], "c": ["b"]})
    ['a', 'c', 'b', 'a']
    >>> find_cycle({"a": [], "b": ["a"]}) is None
    True
    """
    state: Dict[str, int] = {}    # 1: on the current path, 2: explored

    def visit(node: str, path: List[str]) -> Optional[List[str]]:
        state[node] = 1
        path.append(node)
        for dep in graph.get(node, ()):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep in graph and dep not in state:
                found = visit(dep, path)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in graph:
        if node not in state:
            found = visit(node, [])
            if found:
                return found
    return None


def check_graph(graph: Mapping[str, Sequence[str]]) -> None:
    """Raise ValueError naming the problem: a dependency on a missing step, on itself, or a cycle.

    The cycle is named in the order the steps run into each other (``a -> b -> a``: ``b`` depends on
    ``a`` and ``a`` on ``b``).
    """
    for name, deps in graph.items():
        for dep in deps:
            if dep == name:
                raise ValueError(f"step {name} depends on itself; remove {name} from its depends_on")
            if dep not in graph:
                raise ValueError(f"step {name} depends on {dep!r}, which is not a step of the flow; "
                                 f"steps: {', '.join(graph)}")
    cycle = find_cycle(graph)
    if cycle:
        shown = " -> ".join(reversed(cycle))   # found along "depends on"; shown in the order steps would run
        raise ValueError(f"the steps' depends_on make a cycle: {shown}; remove one of these dependencies")


def topological_order(graph: Mapping[str, Sequence[str]]) -> List[str]:
    """Every step after the steps it depends on; steps are otherwise kept in the order given.

    >>> topological_order({"d": ["b", "c"], "b": ["a"], "c": ["a"], "a": []})
    ['a', 'b', 'c', 'd']
    """
    done: List[str] = []
    seen: Set[str] = set()
    while len(done) < len(graph):
        progressed = False
        for name, deps in graph.items():
            if name not in seen and all(d in seen for d in deps):
                done.append(name)
                seen.add(name)
                progressed = True
                break
        if not progressed:
            raise ValueError("the graph has a cycle")
    return done


def upstream(graph: Mapping[str, Sequence[str]], name: str) -> Set[str]:
    """Every step ``name`` depends on, directly or through others."""
    out: Set[str] = set()
    todo = list(graph.get(name, ()))
    while todo:
        dep = todo.pop()
        if dep not in out:
            out.add(dep)
            todo.extend(graph.get(dep, ()))
    return out


def downstream(graph: Mapping[str, Sequence[str]], names: Iterable[str]) -> Set[str]:
    """Every step that depends on one of ``names``, directly or through others."""
    names = set(names)
    return {step for step in graph if upstream(graph, step) & names}


def ready(graph: Mapping[str, Sequence[str]], states: Mapping[str, str]) -> List[str]:
    """Steps still ``pending`` whose every dependency has succeeded, in the order of ``graph``."""
    return [name for name, deps in graph.items()
            if states.get(name) == "pending" and all(states.get(d) == "succeeded" for d in deps)]


def goes_on(graph: Mapping[str, Sequence[str]], states: Mapping[str, str], live: bool, retrying: bool,
            stopping: bool) -> bool:
    """Whether a flow is still waiting for something: a live container, a step to retry, or a step ready.

    Pending steps whose upstream did not succeed wait for nothing: the flow ends and they are skipped.

    >>> goes_on({"a": [], "b": ["a"]}, {"a": "failed", "b": "pending"}, False, False, False)
    False
    >>> goes_on({"a": [], "b": ["a"]}, {"a": "succeeded", "b": "pending"}, False, False, False)
    True
    >>> goes_on({"a": [], "b": ["a"]}, {"a": "succeeded", "b": "pending"}, False, False, True)
    False
    """
    return live or retrying or (not stopping and bool(ready(graph, states)))
