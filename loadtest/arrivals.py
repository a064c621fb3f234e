"""Arrival processes: when each replayed ticket is due, as seconds after the replay starts."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from typing import Literal

__all__ = ["Arrival", "arrival_offsets"]

Arrival = Literal["constant", "poisson", "burst"]


def arrival_offsets(arrival: Arrival, rate: float | None, seed: int, burst_size: int = 50) -> Iterator[float]:
    """The send offset of ticket 0, 1, 2, ... for an average of ``rate`` tickets per second (None: all at once).

    ``constant`` spaces tickets evenly; ``poisson`` draws exponential gaps (real users arrive independently),
    seeded so a run can be repeated exactly; ``burst`` sends ``burst_size`` tickets at once, then waits so the
    mean rate holds.
    """
    if rate is not None and rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    if burst_size < 1:
        raise ValueError(f"burst_size must be at least 1, got {burst_size}")
    if rate is None:
        return itertools.repeat(0.0)
    if arrival == "constant":
        return (index / rate for index in itertools.count())
    if arrival == "burst":
        return ((index // burst_size) * burst_size / rate for index in itertools.count())
    if arrival == "poisson":
        rng = random.Random(seed)
        return itertools.accumulate((rng.expovariate(rate) for _ in itertools.count()), initial=0.0)
    raise ValueError(f"unknown arrival process {arrival!r}; use constant, poisson or burst")
