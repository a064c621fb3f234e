"""Write the JSON Schema of every message so non-Python producers and consumers share the contract."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from schemas.messages import DeadLetter, EnrichedTicket, Ticket, Triage

__all__ = ["MESSAGE_TYPES", "export_json_schemas"]

MESSAGE_TYPES: dict[str, type[BaseModel]] = {
    "ticket": Ticket,
    "triage": Triage,
    "enriched_ticket": EnrichedTicket,
    "dead_letter": DeadLetter,
}


def export_json_schemas(out_dir: Path) -> list[Path]:
    """Write ``<name>.schema.json`` for each message type and return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in MESSAGE_TYPES.items():
        path = out_dir / f"{name}.schema.json"
        schema = model.model_json_schema(mode="serialization")
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    return written
