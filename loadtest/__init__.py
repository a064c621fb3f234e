"""Replay a data folder's tickets (Banking77 by default) as live traffic, collect what the worker publishes,
the demo and benchmarks."""
