"""Fit and measure the out-of-scope detector and rule; nothing is reported on what fitted it.

The detector is fitted on the training split and calibrated on in-scope validation tickets; which detector
serves is chosen on generated off-topic texts (``trainer.offtopic``, one seed). The rule's two thresholds are
chosen together (``trainer.pagerule``) on validation tickets, their copies in odd wording (typed in a hurry,
written as a message), and off-topic fitting sets: that seed of the generator, the fitting look-alikes
(``trainer.lookalikes``; none of their templates is trained on as an outlier) and the fitting half of every
out-of-scope file given to training (CLINC150's, split by ``trainer.halves``). Reports use the other half of
those files, another seed of the generator, the reporting look-alikes, Banking77 intents held out of the
detector, and any other file a user brings (``triage evaluate --ood``). On the other side, reports also score
urgent reports written outside Banking77 (``trainer.urgent``), which must page.
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
from inference.decision import Thresholds, apply_rules, marginalise, pages
from inference.scope import ScopeDetector
from schemas.enums import Priority
from schemas.taxonomy import PRIORITIES, Taxonomy
from trainer.augment import framed, hurried
from trainer.data import Split
from trainer.halves import halves
from trainer.lookalikes import lookalike_texts
from trainer.offtopic import offtopic_texts
from trainer.pagerule import RuleTargets, Scored, choose_rule, curve
from trainer.urgent import reported_for, urgent_reports

__all__ = [
    "OffTopicSet",
    "ScopeFit",
    "Encoded",
    "detector_scores",
    "encode_wordings",
    "fit_scope",
    "fitting_offtopic",
    "ood_report",
    "odd_wording",
    "ood_sets",
    "read_ood_file",
    "reporting_offtopic",
    "separation",
]

log = structlog.get_logger(__name__)

TUNING_SEED = 1
"""Generator seed for fitting; reports use REPORT_SEED, so the texts differ."""
REPORT_SEED = 2
GENERATED = 800
HELD_OUT_INTENTS = 7
HURRIED_VALIDATION_SEED = 1
Encoded = tuple[np.ndarray, np.ndarray]
"""(intent probabilities, features) of a list of texts."""
"""Validation typed in a hurry uses another seed than the test's (0), though the texts differ anyway."""
_HIGH = PRIORITIES.index(Priority.HIGH)


@dataclass(frozen=True)
class ScopeFit:
    """The fitted detector, the rule's thresholds, and what fitting saw (for the model card)."""

    detector: ScopeDetector
    thresholds: Thresholds
    report: dict[str, Any]
    train_features: np.ndarray  # reused by the evaluation that follows training, instead of a second encode


@dataclass(frozen=True)
class OffTopicSet:
    """Texts known to be out of scope, by name (``clinc_oos_val``, ``generated``, a user's file)."""

    name: str
    texts: list[str]


def fitting_offtopic(given: list[OffTopicSet]) -> list[OffTopicSet]:
    """The off-topic sets the rule is fitted on: generated (one seed), the fitting look-alikes (templates the
    model was not exposed to), and the first half of each ``given`` set (``trainer.halves``)."""
    lookalikes = lookalike_texts("fitting")
    generated = [text for _, text in offtopic_texts(GENERATED, seed=TUNING_SEED)]
    return [
        OffTopicSet("generated (fitting seed)", generated),
        OffTopicSet("look-alikes (fitting)", lookalikes),
        *(OffTopicSet(f"{s.name} (fitting half)", halves(s.texts)[0]) for s in given),
    ]


def reporting_offtopic(given: list[OffTopicSet], fitted: set[str]) -> list[OffTopicSet]:
    """The off-topic sets a report scores: each ``given`` set whole, or its other half when a set of that name
    fitted the rule; generated texts of another seed; the reporting look-alikes."""
    tuned = {text for _, text in offtopic_texts(GENERATED, seed=TUNING_SEED)}
    generated = [text for _, text in offtopic_texts(GENERATED, seed=REPORT_SEED) if text not in tuned]
    return [
        *(OffTopicSet(f"{s.name} (reporting half)", halves(s.texts)[1]) if s.name in fitted else s for s in given),
        OffTopicSet("generated", generated),
        OffTopicSet("look-alikes (reporting)", lookalike_texts("reporting")),
    ]


def fit_scope(
    classifier: Classifier,
    seen: tuple[Split, Split],
    wordings: list[Encoded],
    base: Thresholds,
    given: list[OffTopicSet],
    targets: RuleTargets,
) -> ScopeFit:
    """Fit the detector on the training split and choose the rule's thresholds.

    Args:
        classifier: The fine-tuned model (its detector is replaced).
        seen: The (training, validation) splits: intent means and covariance come from training; validation,
            never trained on, calibrates ``scope_score`` and keeps High recall.
        wordings: The validation split and its odd-wording copies, encoded (``encode_wordings``), as they were for
            the other thresholds.
        base: Thresholds with the in-scope High bar tuned; the out-of-scope ones are set here.
        given: Out-of-scope files given to training (``--ood`` folder): their first half fits the rule.
        targets: High recall the rule keeps and the off-topic share it should flag.
    """
    train, val = seen
    _, train_features = classifier.encode(train.texts)
    assert train_features is not None, "the torch model always yields features"
    labels = np.array([classifier.taxonomy.intents.index(i) for i in train.intents])
    val_probs, val_features = wordings[0]
    fitted = ScopeDetector.fit(train_features, labels, head_weights(classifier), val_features)
    sets = fitting_offtopic(given)
    encoded = {s.name: classifier.encode(s.texts) for s in sets}
    off_features = encoded[sets[0].name][1]  # the generated texts choose the detector
    assert off_features is not None
    compared = {m: separation(fitted.distances(val_features, m), fitted.distances(off_features, m))
                for m in fitted.methods}
    method = max(compared, key=lambda m: compared[m]["auroc"])
    classifier.scope = fitted.using(method, val_features)
    base = base.model_copy(update={"far_out_of_scope": classifier.scope.beyond_calibration})
    offtopic = [_scored(classifier, *encoded[s.name]) for s in sets]
    val_high = _is_high(val.intents, classifier.taxonomy)
    validation = _scored(classifier, val_probs, val_features, val_high)
    odd = [_scored(classifier, *encoded, val_high) for encoded in wordings[1:]]
    thresholds, chosen = choose_rule(base, offtopic, validation, odd, targets)
    report: dict[str, Any] = {
        "method": method,
        "validation_separation": compared,
        "fitted_sets": {s.name: len(s.texts) for s in sets},
        "fitted_files": [s.name for s in given],
        "generated_seed": TUNING_SEED,
        **chosen,
    }
    log.info("scope_fitted", method=method, auroc=round(compared[method]["auroc"], 4),
             out_of_scope=thresholds.out_of_scope,
             high_priority_out_of_scope=round(thresholds.high_priority_out_of_scope, 4),
             far_out_of_scope=round(thresholds.far_out_of_scope, 6),
             offtopic_paged=round(chosen["chosen"]["offtopic_paged"], 4),
             offtopic_flagged=round(chosen["chosen"]["offtopic_flagged"], 4))
    return ScopeFit(classifier.scope, thresholds, report, train_features)


def odd_wording(texts: list[str]) -> list[list[str]]:
    """The validation texts typed in a hurry and written as a message (seeded): what the rule and the weight mix
    are chosen on besides validation itself."""
    rng = random.Random(HURRIED_VALIDATION_SEED)
    return [[rewrite(text, rng) for text in texts] for rewrite in (hurried, framed)]


def encode_wordings(classifier: Classifier, texts: list[str]) -> list[Encoded]:
    """``texts`` and their ``odd_wording`` copies, in that order, each encoded once: the weight mix, the High bar
    and the page rule are all chosen on these."""
    encoded = []
    for batch in (texts, *odd_wording(texts)):
        probs, features = classifier.encode(batch)
        assert features is not None, "the torch model always yields features"
        encoded.append((probs, features))
    return encoded


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
    return head.weight.detach().float().cpu().numpy(), head.bias.detach().float().cpu().numpy()


def ood_report(
    classifier: Classifier,
    test: Split,
    seen: tuple[Split, Split],
    sets: list[OffTopicSet],
    seen_features: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Out-of-scope figures of ``triage evaluate``: separation per set, flag and page rates, the rule's curve on
    reported sets, held-out intents.

    Args:
        seen: The checkpoint's (training, validation) splits: the only texts any detector here is fitted
            or calibrated on; test texts are only scored.
        sets: Reported off-topic sets (``reporting_offtopic``): none of them fitted the rule.
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
    is_high = _is_high(test.intents, taxonomy)
    test_scored = _scored(classifier, test_probs, test_features, is_high)
    in_scope = detector_scores(classifier.scope, test_probs, test_features, reference)
    decided = apply_rules(marginalise(test_probs, taxonomy), thresholds, test_scored.scope)
    hurried_report, hurried_scored = _hurried(classifier, test)
    urgent = _urgent(classifier)
    report: dict[str, Any] = {
        "method": classifier.scope.method,
        "thresholds": thresholds.model_dump(include={"out_of_scope", "high_priority_out_of_scope", "far_out_of_scope"}),
        "banking77_test": {
            "n": len(test),
            "flagged": float(decided.out_of_scope.mean()),
            "high_recall": float((decided.priorities[is_high] == _HIGH).mean()),
        },
        "banking77_test_hurried": hurried_report,
        "sets": {},
    }
    if urgent is not None:
        report["urgent_reports"] = urgent[0]
    all_flagged: list[np.ndarray] = []
    all_paged: list[np.ndarray] = []
    scored: list[Scored] = []
    for named in sets:
        probs, features = classifier.encode(named.texts)
        assert features is not None
        one = _scored(classifier, probs, features)
        paged = pages(one.p_high, one.scope, thresholds)
        flagged = one.scope < thresholds.out_of_scope
        out = detector_scores(classifier.scope, probs, features, reference)
        report["sets"][named.name] = {
            "n": len(named.texts),
            "flagged": float(flagged.mean()),
            "paged": float(paged.mean()),
            "detectors": {name: separation(in_scope[name], out[name]) for name in in_scope},
        }
        all_flagged.append(flagged)
        all_paged.append(paged)
        scored.append(one)
    report["offtopic_flagged"] = float(np.concatenate(all_flagged).mean())
    report["offtopic_paged"] = float(np.concatenate(all_paged).mean())
    report["curve"] = curve(thresholds, scored, test_scored, hurried_scored, urgent[1] if urgent else None)
    report["held_out_intents"] = _held_out(
        classifier, (train, train_features), (val, val_features), (test, test_features)
    )
    return report


def ood_sets(folder: Path | None) -> list[OffTopicSet]:
    """Every ``*.jsonl`` file in ``folder`` as one out-of-scope set (none when no folder is given)."""
    return [read_ood_file(path) for path in sorted(folder.glob("*.jsonl"))] if folder else []


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


def _hurried(classifier: Classifier, test: Split) -> tuple[dict[str, Any], Scored]:
    """Banking77 test typed in a hurry (``trainer.augment.hurried``, seed 0): real tickets that must stay in scope."""
    rng = random.Random(0)
    return _labelled(classifier, [hurried(text, rng) for text in test.texts], test.intents)


def _urgent(classifier: Classifier) -> tuple[dict[str, Any], Scored] | None:
    """Urgent reports written outside Banking77 (``trainer.urgent``): the share paged, with the rule on (every
    report is High, so it is their High recall).

    None unless the taxonomy has every label they are written for, each High (Banking77's default does).
    """
    if not reported_for(classifier.taxonomy):
        return None
    pairs = urgent_reports()
    report, scored = _labelled(classifier, [text for _, text in pairs], [label for label, _ in pairs])
    return {"n": report["n"], "paged": report["high_recall"], "flagged": report["flagged"],
            "intent_accuracy": report["intent_accuracy"]}, scored


def _labelled(classifier: Classifier, texts: list[str], intents: list[str]) -> tuple[dict[str, Any], Scored]:
    """In-scope texts with their true labels, through the served rule: intent accuracy, flagged, High recall."""
    taxonomy = classifier.taxonomy
    probs, features = classifier.encode(texts)
    is_high = _is_high(intents, taxonomy)
    scored = _scored(classifier, probs, features, is_high)
    decided = apply_rules(marginalise(probs, taxonomy), classifier.thresholds, scored.scope)
    truth = np.array([taxonomy.intents.index(i) for i in intents])
    return {
        "n": len(texts),
        "intent_accuracy": float((probs.argmax(axis=1) == truth).mean()),
        "flagged": float(decided.out_of_scope.mean()),
        "high_recall": float((decided.priorities[is_high] == _HIGH).mean()),
    }, scored


def _scored(
    classifier: Classifier, probs: np.ndarray, features: np.ndarray | None, high: np.ndarray | None = None
) -> Scored:
    """P(High) and ``scope_score`` of encoded texts, for the rule's sweeps."""
    assert classifier.scope is not None and features is not None
    p_high = marginalise(probs, classifier.taxonomy).priorities[:, _HIGH]
    return Scored(p_high, classifier.scope.scores(features), high)


def _is_high(intents: list[str], taxonomy: Taxonomy) -> np.ndarray:
    index = {name: i for i, name in enumerate(taxonomy.intents)}
    pri_of = taxonomy.priority_matrix.argmax(axis=1)
    return np.array([pri_of[index[name]] == _HIGH for name in intents], dtype=bool)
