"""Model cards, rendered from the one template in ``model_cards/template.md``.

An export folder's ``README.md`` is that template filled with the export's own record (metrics,
provenance) and, for a registered entry, the entry's hand-written card ``model_cards/<entry>.md``
(what it is, how it was trained, its limits).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from zoo import registry
from zoo._paths import model_cards_root
from zoo.errors import UnknownModelError

__all__ = ["render_card"]

_FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.DOTALL)
_FIGURE = re.compile(r"!\[([^\]]*)\]\((figures/[^)]+)\)")


def render_card(config: Mapping[str, Any], record: Mapping[str, Any]) -> str:
    """Renders the ``README.md`` of an export folder.

    Args:
        config: The folder's ``config.json``.
        record: The folder's ``zoo.json``.

    Returns:
        Markdown with YAML front matter holding a ``model-index`` of the metrics.
    """
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    name = config["name"]
    try:
        entry, weights = registry.get(name)
    except UnknownModelError:
        entry = weights = None

    metrics = [_metric_row(m) for m in record.get("metrics", [])]
    card_data = ModelCardData(
        model_name=name,
        library_name="zoo",
        license=entry.license if entry else None,
        tags=["zoo", "pytorch-lightning", *([entry.name] if entry else [])],
        eval_results=[
            EvalResult(
                task_type=entry.name if entry else "other",
                dataset_type=_slug(m["dataset"] or "unspecified"),
                dataset_name=m["dataset"] or "unspecified",
                metric_type=_slug(m["name"]),
                metric_name=m["name"],
                metric_value=m["value"],
            )
            for m in metrics
        ]
        or None,
    )
    body = ""
    if entry is not None:
        path = model_cards_root() / f"{entry.name}.md"
        if path.is_file():
            body = _FRONT_MATTER.sub("", path.read_text()).strip()
            # Figures live beside the entry's card in the repository, not in the export.
            body = _FIGURE.sub(r"(Figure: \1, `model_cards/\2` in the zoo repository.)", body)
    card = ModelCard.from_template(
        card_data,
        template_path=str(model_cards_root() / "template.md"),
        name=name,
        summary=(weights.description if weights else "") or (entry.summary if entry else ""),
        paper=_paper(entry),
        metrics=metrics,
        class_path=config["class_path"],
        provenance=_Defaulting(record.get("provenance", {})),
        versions=", ".join(f"{k} {v}" for k, v in config.get("versions", {}).items()),
        body=body,
    )
    return str(card)


def _metric_row(metric: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": metric["name"],
        "value": float(metric["value"]),
        "unit": metric.get("unit", ""),
        "dataset": metric.get("dataset", ""),
        "paper": metric.get("paper"),
        "command": metric.get("command", ""),
    }


def _paper(entry: registry.Entry | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    paper = entry.paper
    return {
        "title": paper.title,
        "authors": paper.authors,
        "venue": paper.venue,
        "arxiv": paper.arxiv,
        "url": paper.url,
    }


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unspecified"


class _Defaulting(dict):
    """A dict whose missing keys read as ``None`` in the template."""

    def __getattr__(self, key: str) -> Any:
        return self.get(key)
