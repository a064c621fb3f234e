"""Replay Banking77 as live traffic, collect what the worker publishes, the demo and benchmarks."""
