"""The Faust streaming worker: consume tickets, triage in micro-batches, route, dead-letter."""
