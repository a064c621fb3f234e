"""The out-of-scope detector on synthetic features: distances, calibrated scores, save and load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from inference.scope import METHODS, SCOPE_FILE, ScopeDetector


def _clusters(seed: int, per_class: int = 200, dim: int = 16, classes: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian clusters around well separated means, one per intent."""
    rng = np.random.default_rng(seed)
    means = np.eye(classes, dim) * 10.0
    labels = np.repeat(np.arange(classes), per_class)
    return means[labels] + rng.normal(size=(labels.size, dim)), labels


def test_mahalanobis_distance_matches_the_textbook_formula() -> None:
    features, labels = _clusters(0)
    detector = ScopeDetector.fit(features, labels, None, features[:50])
    means = np.stack([features[labels == c].mean(axis=0) for c in range(4)])
    precision = np.linalg.inv(detector.whiten @ detector.whiten.T)  # W Wᵀ = Σ⁻¹, so this is Σ
    probe = np.random.default_rng(1).normal(size=(5, 16)) * 4
    expected = [min((x - m) @ np.linalg.inv(precision) @ (x - m) for m in means) for x in probe]
    np.testing.assert_allclose(detector.distances(probe), expected, rtol=1e-3)


def test_scores_are_calibrated_on_in_scope_texts_and_far_points_score_low() -> None:
    features, labels = _clusters(0)
    held_out, _ = _clusters(1)
    detector = ScopeDetector.fit(features, labels, None, held_out)
    fresh, _ = _clusters(2)
    scores = detector.scores(fresh)
    assert scores.min() > 0.0 and scores.max() <= 1.0
    assert (scores < 0.05).mean() == pytest.approx(0.05, abs=0.03)  # the threshold is a share of in-scope texts
    far = np.full((3, 16), 5.0) + np.random.default_rng(3).normal(size=(3, 16))  # between every cluster
    assert (detector.scores(far) < 0.01).all()


def test_only_texts_beyond_every_calibration_text_score_below_beyond_calibration() -> None:
    features, labels = _clusters(0)
    held_out, _ = _clusters(1)
    detector = ScopeDetector.fit(features, labels, None, held_out)
    assert (detector.scores(held_out) >= detector.beyond_calibration).all()
    far = np.full((3, 16), 5.0) + np.random.default_rng(3).normal(size=(3, 16))
    assert (detector.distances(far) > detector.calibration.max()).all()
    assert (detector.scores(far) < detector.beyond_calibration).all()


def _head(seed: int = 4, classes: int = 4, dim: int = 16) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(classes, dim)).astype(np.float32), rng.normal(size=classes).astype(np.float32)


def test_logit_methods_read_the_heads_logits() -> None:
    features, labels = _clusters(0)
    weight, bias = _head()
    detector = ScopeDetector.fit(features, labels, (weight, bias), features[:100], method="energy")
    probe = np.random.default_rng(5).normal(size=(6, 16)).astype(np.float32)
    logits = probe.astype(np.float64) @ weight.T + bias
    log_total = np.log(np.exp(logits).sum(axis=1))
    np.testing.assert_allclose(detector.distances(probe), -log_total, rtol=1e-4)
    np.testing.assert_allclose(detector.distances(probe, "max_softmax"), -np.exp(logits.max(axis=1) - log_total),
                               rtol=1e-4)
    assert detector.methods == METHODS


def test_using_another_method_recalibrates_on_its_own_distances() -> None:
    features, labels = _clusters(0)
    held_out, _ = _clusters(1)
    mahalanobis = ScopeDetector.fit(features, labels, _head(), held_out)
    energy = mahalanobis.using("energy", held_out)
    assert energy.method == "energy" and mahalanobis.method == "mahalanobis"
    np.testing.assert_allclose(energy.calibration, np.sort(energy.distances(held_out)))
    scores = energy.scores(held_out)
    assert (scores >= energy.beyond_calibration).all() and scores.max() <= 1.0


def test_a_logit_method_needs_the_head() -> None:
    features, labels = _clusters(0)
    with pytest.raises(ValueError, match="energy"):
        ScopeDetector.fit(features, labels, None, features[:50], method="energy")


@pytest.mark.parametrize("method", METHODS)
def test_save_and_load_round_trip(tmp_path: Path, method: str) -> None:
    features, labels = _clusters(0)
    detector = ScopeDetector.fit(features, labels, _head(), features[:100], method=method)
    detector.save(tmp_path)
    loaded = ScopeDetector.load(tmp_path)
    assert loaded is not None and (tmp_path / SCOPE_FILE).is_file() and loaded.method == method
    np.testing.assert_array_equal(loaded.scores(features[:20]), detector.scores(features[:20]))


def test_a_file_from_before_the_logit_methods_loads_as_mahalanobis(tmp_path: Path) -> None:
    features, labels = _clusters(0)
    detector = ScopeDetector.fit(features, labels, None, features[:100])
    save_file({"whiten": detector.whiten, "centres": detector.centres, "calibration": detector.calibration},
              str(tmp_path / SCOPE_FILE), metadata={"method": "mahalanobis", "feature": "classifier_input"})
    loaded = ScopeDetector.load(tmp_path)
    assert loaded is not None and loaded.method == "mahalanobis" and loaded.methods == ("mahalanobis",)
    np.testing.assert_array_equal(loaded.scores(features[:20]), detector.scores(features[:20]))


def test_checkpoint_without_a_detector_loads_none(tmp_path: Path) -> None:
    assert ScopeDetector.load(tmp_path) is None
