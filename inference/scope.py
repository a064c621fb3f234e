"""Out-of-scope score from the features of the same forward pass: Mahalanobis distance to the intents.

A fine-tuned classifier puts every text into one of its intents, greetings and spam included. The
features it classifies from tell more: banking tickets sit close to the mean of their intent, other
text does not (Podolskiy et al., AAAI 2021). The distance is turned into a ``scope_score`` in [0, 1] —
the share of in-scope validation tickets that were at least as far — so it reads the same for every
checkpoint, and a threshold on it is the share of real tickets one accepts to flag.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import structlog
from safetensors.numpy import load_file, save_file
from threadpoolctl import ThreadpoolController

__all__ = ["SCOPE_FILE", "ScopeDetector"]

log = structlog.get_logger(__name__)

SCOPE_FILE = "scope.safetensors"
"""Inside a checkpoint: whitening matrix, whitened intent means and calibration distances."""


@functools.cache
def _blas() -> ThreadpoolController:
    """Found once: inspecting the loaded BLAS libraries costs more than the products themselves."""
    return ThreadpoolController()


class ScopeDetector:
    """Minimum Mahalanobis distance to the intent means (shared covariance), calibrated on validation.

    Args:
        whiten: (d, d) matrix W with W Wᵀ = Σ⁻¹, so the distance is a Euclidean one after ``x @ W``.
        centres: (intents, d) intent means, already multiplied by W.
        calibration: Distances of in-scope validation texts (any order).
    """

    def __init__(self, whiten: np.ndarray, centres: np.ndarray, calibration: np.ndarray) -> None:
        self.whiten = np.asarray(whiten, dtype=np.float32)
        self.centres = np.asarray(centres, dtype=np.float32)
        self.calibration = np.sort(np.asarray(calibration, dtype=np.float32))
        self._centre_norms = (self.centres**2).sum(axis=1)

    @classmethod
    def fit(cls, features: np.ndarray, labels: np.ndarray, calibration_features: np.ndarray) -> ScopeDetector:
        """Intent means and a shrunk shared covariance from training features; distances of held-out ones.

        Args:
            features: (n, d) features of the texts the model was trained on.
            labels: (n,) intent ids of those texts.
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
        detector = cls(whiten, means @ whiten, np.zeros(1))
        detector.calibration = np.sort(detector.distances(calibration_features))
        return detector

    @property
    def beyond_calibration(self) -> float:
        """The ``scope_score`` threshold below which a text is farther than every calibration text."""
        return 1.5 / (self.calibration.size + 1.0)

    def distances(self, features: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance of each row to its nearest intent mean.

        On one BLAS thread: these products are small, and OpenBLAS's threads spin after each call, taking
        the cores from the model's own threads: multi-threaded, they cut a 2-core worker's int8 throughput by
        about 40% (``triage bench batching``, README performance section).
        """
        with _blas().limit(limits=1, user_api="blas"):
            z = np.asarray(features, dtype=np.float32) @ self.whiten
            squared = (z**2).sum(axis=1, keepdims=True) - 2.0 * z @ self.centres.T + self._centre_norms
        result: np.ndarray = np.maximum(squared.min(axis=1), 0.0)
        return result

    def scores(self, features: np.ndarray) -> np.ndarray:
        """``scope_score`` per row: (1 + calibration distances ≥ this one) / (calibration size + 1)."""
        distances = self.distances(features)
        at_least = self.calibration.size - np.searchsorted(self.calibration, distances, side="left")
        result: np.ndarray = (1.0 + at_least) / (self.calibration.size + 1.0)
        return result

    def save(self, folder: Path) -> Path:
        path = folder / SCOPE_FILE
        save_file(
            {"whiten": self.whiten, "centres": self.centres, "calibration": self.calibration},
            str(path),
            metadata={"method": "mahalanobis", "feature": "classifier_input"},
        )
        return path

    @classmethod
    def load(cls, folder: Path) -> ScopeDetector | None:
        """The detector saved in a checkpoint, or None for checkpoints trained before it existed."""
        path = folder / SCOPE_FILE
        if not path.is_file():
            log.warning("scope_detector_missing", path=str(folder), detail="out_of_scope is never set")
            return None
        tensors = load_file(str(path))
        return cls(tensors["whiten"], tensors["centres"], tensors["calibration"])

