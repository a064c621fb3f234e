"""Fit and measure the out-of-scope detector: in-scope validation and generated off-topic texts only.

The scope threshold is a share of in-scope validation tickets (``flag_budget``), so it is fitted to no
off-topic data at all, and neither is the far threshold (beyond every in-scope validation ticket, where
nothing pages). The stricter High threshold for out-of-scope tickets is tuned on generated off-topic texts
(``trainer.offtopic``, one seed) and reported on other ones: CLINC150's out-of-scope
queries, another seed of the generator, Banking77 intents held out of the detector, and any file a
user brings (``triage evaluate --ood``).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog
from sklearn.metrics import roc_auc_score, roc_curve

from inference.classifier import Classifier
from inference.decision import Thresholds, apply_rules, marginalise
from inference.scope import ScopeDetector
from schemas.enums import Priority
from schemas.taxonomy import PRIORITIES, Taxonomy
from trainer.augment import hurried
from trainer.data import Split
from trainer.offtopic import offtopic_texts

__all__ = [
    "OffTopicSet",
    "ScopeFit",
    "detector_scores",
    "fit_scope",
    "ood_sets",
    "page_threshold",
    "ood_report",
    "read_ood_file",
    "reported_offtopic",
    "separation",
]

log = structlog.get_logger(__name__)

TUNING_SEED = 1
"""Generator seed for tuning; reports use REPORT_SEED, so the texts differ."""
REPORT_SEED = 2
GENERATED = 800
HELD_OUT_INTENTS = 7
_HIGH = PRIORITIES.index(Priority.HIGH)


@dataclass(frozen=True)
class ScopeFit:
    """The fitted detector, both thresholds it needs, and what tuning saw (for the model card)."""

    detector: ScopeDetector
    out_of_scope: float
    high_priority_out_of_scope: float
    far_out_of_scope: float
    report: dict[str, Any]
    train_features: np.ndarray  # reused by the evaluation that follows training, instead of a second encode


@dataclass(frozen=True)
class OffTopicSet:
    """Texts known to be out of scope, by name (``clinc_oos_val``, ``generated``, a user's file)."""

    name: str
    texts: list[str]


def fit_scope(
    classifier: Classifier,
    train: Split,
    val: Split,
    val_encoded: tuple[np.ndarray, np.ndarray],
    high_priority: float,
    *,
    flag_budget: float,
    page_budget: float,
) -> ScopeFit:
    """Fit the detector on the training split and set both thresholds.

    Args:
        classifier: The fine-tuned model (its detector is replaced).
        train: The examples the model was trained on: intent means and covariance come from them.
        val: In-scope validation split, never trained on: calibrates ``scope_score``.
        val_encoded: (probabilities, features) of ``val``, already computed for the other thresholds.
        high_priority: The in-scope High threshold; the out-of-scope one is never lower.
        flag_budget: Share of in-scope validation tickets the detector may flag (the scope threshold).
        page_budget: Share of the off-topic tuning texts that may still page under the whole rule.
    """
    _, train_features = classifier.encode(train.texts)
    assert train_features is not None, "the torch model always yields features"
    labels = np.array([classifier.taxonomy.intents.index(i) for i in train.intents])
    val_probs, val_features = val_encoded
    fitted = ScopeDetector.fit(train_features, labels, head_weights(classifier), val_features)
    offtopic = [text for _, text in offtopic_texts(GENERATED, seed=TUNING_SEED)]
    off_probs, off_features = classifier.encode(offtopic)
    assert off_features is not None
    compared = {m: separation(fitted.distances(val_features, m), fitted.distances(off_features, m))
                for m in fitted.methods}
    method = max(compared, key=lambda m: compared[m]["auroc"])
    classifier.scope = fitted.using(method, val_features)
    off_scores = classifier.scope.scores(off_features)
    off_p_high = marginalise(off_probs, classifier.taxonomy).priorities[:, _HIGH]
    far = classifier.scope.beyond_calibration
    strict = page_threshold(off_p_high, off_scores, (high_priority, flag_budget, far), page_budget)
    flagged = off_scores < flag_budget
    val_scores = classifier.scope.scores(val_features)
    thresholds = Thresholds(high_priority=high_priority, out_of_scope=flag_budget, high_priority_out_of_scope=strict,
                            far_out_of_scope=far)
    val_high = _is_high(val.intents, classifier.taxonomy)
    decided = apply_rules(marginalise(val_probs, classifier.taxonomy), thresholds, val_scores)
    flagged_high = val_high & decided.out_of_scope
    report: dict[str, Any] = {
        "method": method,
        "validation_separation": compared,
        "flag_budget": flag_budget,
        "page_budget": page_budget,
        "validation_flagged": float(decided.out_of_scope.mean()),
        "validation_high_recall": float((decided.priorities[val_high] == _HIGH).mean()),
        "validation_high_flagged": int(flagged_high.sum()),
        "tuning_offtopic": {"texts": len(offtopic), "seed": TUNING_SEED, "flagged": float(flagged.mean()),
                            "paged": float(_paged(classifier, off_probs, off_scores, thresholds).mean())},
    }
    log.info("scope_fitted", method=method, auroc=round(compared[method]["auroc"], 4), out_of_scope=flag_budget,
             high_priority_out_of_scope=round(strict, 4), far_out_of_scope=round(far, 6),
             validation_flagged=round(report["validation_flagged"], 4),
             offtopic_flagged=round(report["tuning_offtopic"]["flagged"], 4))
    return ScopeFit(classifier.scope, flag_budget, strict, far, report, train_features)


def page_threshold(
    p_high: np.ndarray, scores: np.ndarray, rule: tuple[float, float, float], page_budget: float
) -> float:
    """The lowest out-of-scope High bar (never below the in-scope one) at which at most ``page_budget`` of the
    tuning texts page under the whole rule: those not flagged, paging at the in-scope bar, count too.

    Args:
        rule: (in-scope High threshold, scope threshold, far threshold) the bar completes.
    """
    high_priority, flag, far = rule
    unflagged_pages = int(((scores >= flag) & (p_high >= high_priority)).sum())
    candidates = np.sort(p_high[(scores < flag) & (scores >= far)])[::-1]
    allowed = int(page_budget * p_high.size) - unflagged_pages
    if allowed < 0:
        return 1.0
    if allowed >= candidates.size:
        return high_priority
    return min(1.0, max(high_priority, float(candidates[allowed]) + 1e-6))


def separation(in_scope: np.ndarray, out_of_scope: np.ndarray) -> dict[str, float]:
    """AUROC and the in-scope share flagged when 95% of the out-of-scope texts are (higher = more unusual)."""
    y = np.r_[np.zeros(in_scope.size), np.ones(out_of_scope.size)]
    s = np.r_[in_scope, out_of_scope]
    fpr, tpr, _ = roc_curve(y, s)
    return {"auroc": float(roc_auc_score(y, s)), "fpr_at_95_tpr": float(fpr[np.searchsorted(tpr, 0.95)])}


def detector_scores(
    detector: ScopeDetector, probs: np.ndarray, features: np.ndarray, reference: np.ndarray
) -> dict[str, np.ndarray]:
    """How unusual each text is by every detector (higher = more unusual), to compare on the same texts.

    The served methods, max-softmax from the probabilities (files with Mahalanobis alone) and the cosine
    distance to the 10th-nearest training text, which no checkpoint serves: it would ship and search every
    training text's features. ``reference`` holds those features, L2-normalised.
    """
    unit = features / np.linalg.norm(features, axis=1, keepdims=True).clip(1e-12)
    nearest = np.sort(1.0 - unit @ reference.T, axis=1)[:, 9]
    served = {method: detector.distances(features, method) for method in detector.methods}
    if "max_softmax" not in served:
        served["max_softmax"] = -probs.max(axis=1)
    return {**served, "knn_cosine_k10": nearest}


def head_weights(classifier: Classifier) -> tuple[np.ndarray, np.ndarray]:
    """The fine-tuned head's weight and bias (rows in ``classifier.taxonomy.intents`` order)."""
    from inference.torch_model import classification_head

    head = classification_head(classifier.torch_model.module)
    weight, bias = head.get_parameter("weight"), head.get_parameter("bias")
    return weight.detach().float().cpu().numpy(), bias.detach().float().cpu().numpy()


def ood_report(
    classifier: Classifier,
    test: Split,
    seen: tuple[Split, Split],
    sets: list[OffTopicSet],
    seen_features: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Out-of-scope figures of ``triage evaluate``: separation per set, flag and page rates, held-out intents.

    Args:
        seen: The checkpoint's (training, validation) splits: the only texts any detector here is fitted
            or calibrated on; test texts are only scored.
        seen_features: Their features when the caller has them already (training has), else encoded here.
    """
    assert classifier.scope is not None
    taxonomy = classifier.taxonomy
    thresholds = classifier.thresholds
    test_probs, test_features = classifier.encode(test.texts)
    train, val = seen
    train_features, val_features = seen_features if seen_features is not None else (
        classifier.encode(train.texts)[1], classifier.encode(val.texts)[1]
    )
    assert test_features is not None and train_features is not None and val_features is not None
    reference = train_features / np.linalg.norm(train_features, axis=1, keepdims=True).clip(1e-12)
    test_scores = classifier.scope.scores(test_features)
    in_scope = detector_scores(classifier.scope, test_probs, test_features, reference)
    decided = apply_rules(marginalise(test_probs, taxonomy), thresholds, test_scores)
    is_high = _is_high(test.intents, taxonomy)
    report: dict[str, Any] = {
        "method": classifier.scope.method,
        "thresholds": thresholds.model_dump(include={"out_of_scope", "high_priority_out_of_scope", "far_out_of_scope"}),
        "banking77_test": {
            "n": len(test),
            "flagged": float(decided.out_of_scope.mean()),
            "high_recall": float((decided.priorities[is_high] == _HIGH).mean()),
        },
        "banking77_test_hurried": _hurried(classifier, test),
        "sets": {},
    }
    every = [*sets, OffTopicSet("generated", reported_offtopic())]
    all_flagged: list[np.ndarray] = []
    all_paged: list[np.ndarray] = []
    for named in every:
        probs, features = classifier.encode(named.texts)
        assert features is not None
        scores = classifier.scope.scores(features)
        paged = _paged(classifier, probs, scores, thresholds)
        flagged = scores < thresholds.out_of_scope
        out = detector_scores(classifier.scope, probs, features, reference)
        report["sets"][named.name] = {
            "n": len(named.texts),
            "flagged": float(flagged.mean()),
            "paged": float(paged.mean()),
            "detectors": {name: separation(in_scope[name], out[name]) for name in in_scope},
        }
        all_flagged.append(flagged)
        all_paged.append(paged)
    report["offtopic_flagged"] = float(np.concatenate(all_flagged).mean())
    report["offtopic_paged"] = float(np.concatenate(all_paged).mean())
    report["held_out_intents"] = _held_out(
        classifier, (train, train_features), (val, val_features), (test, test_features)
    )
    return report


def ood_sets(folder: Path | None) -> list[OffTopicSet]:
    """Every ``*.jsonl`` file in ``folder`` as one out-of-scope set (none when no folder is given)."""
    return [read_ood_file(path) for path in sorted(folder.glob("*.jsonl"))] if folder else []


def reported_offtopic() -> list[str]:
    """Generated off-topic texts for reports: another seed, minus every text the tuning saw."""
    tuned = {text for _, text in offtopic_texts(GENERATED, seed=TUNING_SEED)}
    return [text for _, text in offtopic_texts(GENERATED, seed=REPORT_SEED) if text not in tuned]


def read_ood_file(path: Path) -> OffTopicSet:
    """A JSON-lines file of out-of-scope texts: one object with a ``text`` field per line."""
    texts = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            texts.append(str(json.loads(line)["text"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: not a JSON object with a text field ({type(exc).__name__})") from exc
    if not texts:
        raise ValueError(f"{path} holds no texts")
    return OffTopicSet(path.stem, texts)


def _held_out(
    classifier: Classifier,
    train: tuple[Split, np.ndarray],
    val: tuple[Split, np.ndarray],
    test: tuple[Split, np.ndarray],
) -> dict[str, Any]:
    """A detector fitted (training) and calibrated (validation) without a few intents, scoring their test
    texts against the other intents' test texts: test texts are never fitted on. A logit method reads the
    head without those intents' rows.

    The encoder did see these intents in training, which makes them easier to tell apart than an
    intent no model has seen; a model retrained without them would be the stricter test.
    """
    (train_split, train_features), (val_split, val_features), (test_split, test_features) = train, val, test
    intents = sorted(set(train_split.intents))
    rng = np.random.default_rng(0)
    size = max(1, min(HELD_OUT_INTENTS, len(intents) // 4))  # a small taxonomy keeps most of its labels
    held = set(rng.choice(intents, size=size, replace=False).tolist())
    keep_train = np.array([i not in held for i in train_split.intents])
    keep_val = np.array([i not in held for i in val_split.intents])
    keep_test = np.array([i not in held for i in test_split.intents])
    labels = np.array([intents.index(i) for i in train_split.intents])
    served = classifier.scope
    assert served is not None
    if served.method == "mahalanobis":
        detector = ScopeDetector.fit(train_features[keep_train], labels[keep_train], None, val_features[keep_val])
    else:
        assert served.head is not None, "a logit method always has the head"
        rows = [i for i, name in enumerate(classifier.taxonomy.intents) if name not in held]
        without = ScopeDetector("mahalanobis", served.whiten, served.centres,
                                (served.head[0][rows], served.head[1][rows]), np.zeros(1))
        detector = without.using(served.method, val_features[keep_val])
    in_scope = detector.distances(test_features[keep_test])
    held_scores = detector.scores(test_features[~keep_test])
    return {
        "intents": sorted(held),
        "n": int((~keep_test).sum()),
        "flagged": float((held_scores < classifier.thresholds.out_of_scope).mean()),
        **separation(in_scope, detector.distances(test_features[~keep_test])),
    }


def _hurried(classifier: Classifier, test: Split) -> dict[str, Any]:
    """Banking77 test typed in a hurry (``trainer.augment.hurried``, seed 0): real tickets that must stay in scope."""
    rng = random.Random(0)
    texts = [hurried(text, rng) for text in test.texts]
    probs, scores = classifier.predict_scored(texts)
    decided = apply_rules(marginalise(probs, classifier.taxonomy), classifier.thresholds, scores)
    is_high = _is_high(test.intents, classifier.taxonomy)
    truth = np.array([classifier.taxonomy.intents.index(i) for i in test.intents])
    return {
        "n": len(texts),
        "intent_accuracy": float((probs.argmax(axis=1) == truth).mean()),
        "flagged": float(decided.out_of_scope.mean()),
        "high_recall": float((decided.priorities[is_high] == _HIGH).mean()),
    }


def _is_high(intents: list[str], taxonomy: Taxonomy) -> np.ndarray:
    index = {name: i for i, name in enumerate(taxonomy.intents)}
    pri_of = taxonomy.priority_matrix.argmax(axis=1)
    return np.array([pri_of[index[name]] == _HIGH for name in intents], dtype=bool)


def _paged(classifier: Classifier, probs: np.ndarray, scores: np.ndarray, thresholds: Thresholds) -> np.ndarray:
    """Texts the rule makes High, i.e. that page on-call."""
    return apply_rules(marginalise(probs, classifier.taxonomy), thresholds, scores).priorities == _HIGH
