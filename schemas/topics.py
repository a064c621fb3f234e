"""The topic contract between the worker and everything around it: names, routing topics, layout."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field

from schemas.taxonomy import load_taxonomy, slug

__all__ = ["TopicSettings"]


class TopicSettings(BaseModel):
    """Topic names (created at start when missing) and the layout of the topics the worker creates."""

    incoming: str = Field(default="tickets.incoming", description="Topic the worker consumes tickets from.")
    enriched: str = Field(default="tickets.enriched", description="Every triaged ticket, whatever its route.")
    route_prefix: str = Field(
        default="tickets.route.",
        description="Prefix of the per-category routing topics: <prefix><category slug>, e.g. "
        "tickets.route.account-login; the categories are the served checkpoint's.",
    )
    oncall: str = Field(default="tickets.oncall", description="Every High-priority ticket.")
    review: str = Field(
        default="tickets.review", description="Tickets whose category confidence is below the threshold."
    )
    deadletter: str = Field(
        default="tickets.deadletter", description="Messages that could not be triaged, with the raw payload and reason."
    )
    feedback: str = Field(
        default="tickets.feedback",
        description="Agents' final label of each closed or corrected ticket (read by `triage feedback consume`).",
    )
    partitions: int = Field(default=3, ge=1, description="Partitions of topics the worker creates.")
    replication_factor: int = Field(default=1, ge=1, description="Replication factor of topics the worker creates.")
    create: bool = Field(default=True, description="Create missing topics at start (needs the CreateTopics ACL).")

    def route(self, category: str) -> str:
        """The routing topic of one category (the served taxonomy's categories are checked at training)."""
        return f"{self.route_prefix}{slug(category)}"

    def outputs(self, categories: Iterable[str] | None = None) -> list[str]:
        """Every topic the worker writes to while serving a checkpoint with these categories (None: the
        default taxonomy's, ``schemas/taxonomy.csv``)."""
        chosen = load_taxonomy().categories if categories is None else categories
        routes = [self.route(category) for category in chosen]
        return [self.enriched, *routes, self.oncall, self.review, self.deadletter]

    @classmethod
    def namespaced(cls, namespace: str, **overrides: Any) -> TopicSettings:
        """Topics ``<namespace>.incoming``, ``<namespace>.route.<slug>``, ...: one private set per test or run."""
        kinds = ("incoming", "enriched", "oncall", "review", "deadletter", "feedback")
        names = {name: f"{namespace}.{name}" for name in kinds}
        return cls(**{**names, "route_prefix": f"{namespace}.route.", **overrides})
