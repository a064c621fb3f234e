"""Arrival processes: when each replayed ticket is due, as seconds after the replay starts."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Literal

__all__ = ["Arrival", "arrival_offsets"]

Arrival = Literal["constant", "poisson", "burst"]


def arrival_offsets(arrival: Arrival, rate: float | None, seed: int, burst_size: int = 50) -> Iterator[float]:
    """Yield the send offset of ticket 0, 1, 2, ... for an average of ``rate`` tickets per second.

    Args:
        arrival: ``constant`` spaces tickets evenly; ``poisson`` draws exponential gaps (real users arrive
            independently); ``burst`` sends ``burst_size`` tickets at once, then waits so the mean rate holds.
        rate: Mean tickets per second; ``None`` means as fast as the producer can go (every offset is 0).
        seed: Seeds the Poisson gaps, so a run can be repeated exactly.
        burst_size: Tickets per burst for ``burst``.
    """
    if rate is not None and rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    if burst_size < 1:
        raise ValueError(f"burst_size must be at least 1, got {burst_size}")
    rng = random.Random(seed)
    index = 0
    offset = 0.0
    while True:
        if rate is None:
            yield 0.0
        elif arrival == "constant":
            yield index / rate
        elif arrival == "poisson":
            yield offset
            offset += rng.expovariate(rate)
        elif arrival == "burst":
            yield (index // burst_size) * burst_size / rate
        else:
            raise ValueError(f"unknown arrival process {arrival!r}; use constant, poisson or burst")
        index += 1
