"""``zoo showcase``: every registered entry, loaded with its pretrained weights and run.

An entry's module may define ``showcase(out_dir) -> dict`` returning ``task`` (what it did),
``metric``, ``value`` and optionally ``paper`` (the paper's number for the same metric), and
saving its plots under ``out_dir``. A module without it is checked against its export probe.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from zoo import registry
from zoo._format import number, table

__all__ = ["run_showcase"]


def run_showcase(out: str | Path, *, pattern: str = "*") -> list[dict[str, Any]]:
    """Loads and runs the default weights of each entry matching ``pattern``; prints a table.

    Returns:
        One row per weight set.
    """
    import zoo
    from zoo.checkpoint import verify_probe

    out = Path(out)
    matching = set(registry.list_models(pattern))
    names = [f"{e.name}.{e.default.tag}" for e in registry.entries()]
    names = [name for name in names if name in matching]
    if not names:
        print(f"no registered weight sets match {pattern!r}; nothing to showcase")
        return []
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in names:
        start = time.perf_counter()
        model = zoo.load(name)
        showcase = getattr(model, "showcase", None)
        if callable(showcase):
            result = dict(showcase(out / name))
        else:
            verify_probe(model)
            result = {"task": "reload and probe check", "metric": "probe", "value": "ok"}
        result.update(
            name=name, source=model.zoo_origin.source, seconds=time.perf_counter() - start
        )
        rows.append(result)
        print(f"  {name}: {result.get('task', '')} ({result['seconds']:.1f} s)", flush=True)
    headers = ["name", "source", "task", "metric", "value", "paper", "seconds"]
    print(table(headers, [[number(r.get(h)) for h in headers] for r in rows]))
    print(f"plots: {out.resolve()}")
    return rows
