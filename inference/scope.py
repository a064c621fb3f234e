"""Out-of-scope score from the features of the same forward pass: how unlike any intent a text is.

A fine-tuned classifier puts every text into one of its intents, greetings and spam included. The
features it classifies from tell more. Three detectors read them, and training keeps the one that best
separates in-scope validation tickets from generated off-topic texts (``trainer.scope``):

- ``mahalanobis``: distance to the nearest intent mean, one shared covariance (Podolskiy et al., AAAI 2021);
  the best on a model trained on Banking77 alone;
- ``energy``: minus the log-sum-exp of the head's logits (Liu et al., NeurIPS 2020); the best on a model
  trained with outlier exposure (``trainer.exposure``), which leaves off-topic texts low logits everywhere;
- ``max_softmax``: minus the highest intent probability (Hendrycks & Gimpel, ICLR 2017), the baseline.

Each is turned into a ``scope_score`` in [0, 1] — the share of in-scope validation tickets that were at
least as unusual — so it reads the same for every checkpoint and method, and a threshold on it is the share
of real tickets one accepts to flag.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import structlog
from safetensors import safe_open
from safetensors.numpy import save_file
from threadpoolctl import ThreadpoolController

__all__ = ["METHODS", "SCOPE_FILE", "ScopeDetector"]

log = structlog.get_logger(__name__)

SCOPE_FILE = "scope.safetensors"
"""Inside a checkpoint: the method, what every method needs, and the calibration distances."""

METHODS = ("mahalanobis", "energy", "max_softmax")
"""The detectors a checkpoint can serve, each read from the head's input features alone."""


@functools.cache
def _blas() -> ThreadpoolController:
    """Found once: inspecting the loaded BLAS libraries costs more than the products themselves."""
    return ThreadpoolController()


class ScopeDetector:
    """How unusual a text's features are by one method, calibrated on in-scope validation texts.

    Args:
        method: One of ``METHODS``.
        whiten: (d, d) matrix W with W Wᵀ = Σ⁻¹, so the Mahalanobis distance is a Euclidean one after ``x @ W``.
        centres: (intents, d) intent means, already multiplied by W.
        head: The classification head's (intents, d) weight and (intents,) bias, for the logit methods;
            None in files written before those methods existed (Mahalanobis only).
        calibration: Distances of in-scope validation texts by ``method`` (any order).
    """

    def __init__(
        self,
        method: str,
        whiten: np.ndarray,
        centres: np.ndarray,
        head: tuple[np.ndarray, np.ndarray] | None,
        calibration: np.ndarray,
    ) -> None:
        if method not in METHODS or (head is None and method != "mahalanobis"):
            raise ValueError(f"unknown or unsupported scope method {method!r}")
        self.method = method
        self.whiten = np.asarray(whiten, dtype=np.float32)
        self.centres = np.asarray(centres, dtype=np.float32)
        self.head = None if head is None else (np.asarray(head[0], np.float32), np.asarray(head[1], np.float32))
        self.calibration = np.sort(np.asarray(calibration, dtype=np.float32))
        self._centre_norms = (self.centres**2).sum(axis=1)

    @classmethod
    def fit(
        cls,
        features: np.ndarray,
        labels: np.ndarray,
        head: tuple[np.ndarray, np.ndarray] | None,
        calibration_features: np.ndarray,
        method: str = "mahalanobis",
    ) -> ScopeDetector:
        """Intent means and a shrunk shared covariance from training features; distances of held-out ones.

        Args:
            features: (n, d) features of the texts the model was trained on.
            labels: (n,) intent ids of those texts.
            head: The classification head's weight and bias (rows in intent-id order), for the logit methods.
            calibration_features: Features of in-scope texts the model never saw (validation).
        """
        from sklearn.covariance import LedoitWolf

        x = np.asarray(features, dtype=np.float64)
        y = np.asarray(labels)
        classes = np.unique(y)
        means = np.stack([x[y == c].mean(axis=0) for c in classes])
        centred = x - means[np.searchsorted(classes, y)]
        precision = LedoitWolf(assume_centered=True).fit(centred).precision_
        whiten = np.linalg.cholesky((precision + precision.T) / 2)
        return cls("mahalanobis", whiten, means @ whiten, head, np.zeros(1)).using(method, calibration_features)

    def using(self, method: str, calibration_features: np.ndarray) -> ScopeDetector:
        """The same statistics read by ``method``, calibrated on ``calibration_features``."""
        detector = ScopeDetector(method, self.whiten, self.centres, self.head, np.zeros(1))
        detector.calibration = np.sort(detector.distances(calibration_features))
        return detector

    @property
    def methods(self) -> tuple[str, ...]:
        """The methods this detector can read: files from before the logit methods hold Mahalanobis only."""
        return METHODS if self.head is not None else ("mahalanobis",)

    @property
    def beyond_calibration(self) -> float:
        """The ``scope_score`` threshold below which a text is farther than every calibration text."""
        return 1.5 / (self.calibration.size + 1.0)

    def distances(self, features: np.ndarray, method: str | None = None) -> np.ndarray:
        """How unusual each row is by ``method`` (default: the detector's own); higher is more unusual.

        On one BLAS thread: these products are small, and OpenBLAS's threads spin after each call, taking
        the cores from the model's own threads: multi-threaded, they cut a 2-core worker's int8 throughput by
        about 40% (``triage bench batching``; see docs/benchmarks.md).
        """
        method = method or self.method
        with _blas().limit(limits=1, user_api="blas"):
            x = np.asarray(features, dtype=np.float32)
            if method == "mahalanobis":
                z = x @ self.whiten
                squared = (z**2).sum(axis=1, keepdims=True) - 2.0 * z @ self.centres.T + self._centre_norms
                result: np.ndarray = np.maximum(squared.min(axis=1), 0.0)
                return result
            assert self.head is not None, "checked in __init__ for the detector's own method"
            logits = x @ self.head[0].T + self.head[1]
            top = logits.max(axis=1)
            log_total = top + np.log(np.exp(logits - top[:, None]).sum(axis=1))
            return -log_total if method == "energy" else -np.exp(top - log_total)

    def scores(self, features: np.ndarray) -> np.ndarray:
        """``scope_score`` per row: (1 + calibration distances ≥ this one) / (calibration size + 1)."""
        distances = self.distances(features)
        at_least = self.calibration.size - np.searchsorted(self.calibration, distances, side="left")
        result: np.ndarray = (1.0 + at_least) / (self.calibration.size + 1.0)
        return result

    def save(self, folder: Path) -> Path:
        path = folder / SCOPE_FILE
        tensors = {"whiten": self.whiten, "centres": self.centres, "calibration": self.calibration}
        if self.head is not None:
            tensors |= {"head_weight": self.head[0], "head_bias": self.head[1]}
        save_file(tensors, str(path), metadata={"method": self.method, "feature": "classifier_input"})
        return path

    @classmethod
    def load(cls, folder: Path) -> ScopeDetector | None:
        """The detector saved in a checkpoint, or None for checkpoints trained before it existed."""
        path = folder / SCOPE_FILE
        if not path.is_file():
            log.warning("scope_detector_missing", path=str(folder), detail="out_of_scope is never set")
            return None
        with safe_open(str(path), framework="numpy") as handle:
            method = (handle.metadata() or {}).get("method", "mahalanobis")
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 (a safetensors handle, not a dict)
        head = (tensors["head_weight"], tensors["head_bias"]) if "head_weight" in tensors else None
        return cls(method, tensors["whiten"], tensors["centres"], head, tensors["calibration"])
