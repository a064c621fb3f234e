"""Benchmarks behind ``triage bench``: the model offline, and the worker end to end on a real broker."""
