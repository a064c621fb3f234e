"""Shared core of ticket-triage: the inference core, checkpoints, logging, the embedded broker and the CLI."""
