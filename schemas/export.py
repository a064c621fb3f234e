"""Write the JSON Schema of every message so non-Python producers and consumers share the contract."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from schemas.feedback import Feedback
from schemas.messages import DeadLetter, EnrichedTicket, Ticket, Triage
from schemas.taxonomy import Taxonomy

__all__ = ["MESSAGE_TYPES", "export_json_schemas"]

MESSAGE_TYPES: dict[str, type[BaseModel]] = {
    "ticket": Ticket,
    "triage": Triage,
    "enriched_ticket": EnrichedTicket,
    "dead_letter": DeadLetter,
    "feedback": Feedback,
}


def export_json_schemas(out_dir: Path, taxonomy: Taxonomy) -> list[Path]:
    """Write ``<name>.schema.json`` for each message type and return the paths.

    Args:
        taxonomy: Its categories become the enum of ``Triage.category`` (a checkpoint's, or the default).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in MESSAGE_TYPES.items():
        path = out_dir / f"{name}.schema.json"
        schema = _with_categories(model.model_json_schema(mode="serialization"), taxonomy.categories)
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    return written


def _with_categories(schema: dict[str, Any], categories: tuple[str, ...]) -> dict[str, Any]:
    """Close ``Triage.category`` (top level or under ``$defs``) to the taxonomy's categories."""
    triage = schema.get("$defs", {}).get("Triage", schema if schema.get("title") == "Triage" else None)
    if triage is not None:
        triage["properties"]["category"]["enum"] = list(categories)
    return schema
