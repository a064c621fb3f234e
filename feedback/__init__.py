"""The feedback loop's streaming side: agents' final labels joined with what the worker published, live quality
metrics and drift, and the joined examples a next checkpoint trains on (``triage feedback consume``)."""

from feedback.join import Joined, Published, join
from feedback.settings import FeedbackSettings

__all__ = ["FeedbackSettings", "Joined", "Published", "join"]
