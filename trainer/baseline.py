"""The classic peer every evaluation reports: TF-IDF n-grams + a linear SVM, trained on the same split."""

from __future__ import annotations

import time

import numpy as np

from schemas.taxonomy import Taxonomy
from trainer.data import Split

__all__ = ["tfidf_svm_probs"]


def tfidf_svm_probs(train: Split, test_texts: list[str], taxonomy: Taxonomy) -> tuple[np.ndarray, float]:
    """Fit on ``train`` and return one-hot "probabilities" for ``test_texts`` in taxonomy order, and fit seconds.

    One-hot rows let the baseline go through the same decision rules as the model (argmax-then-map).
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion, make_pipeline
    from sklearn.svm import LinearSVC

    features = FeatureUnion([
        ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)),
        ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2)),
    ])
    model = make_pipeline(features, LinearSVC(C=0.5))
    started = time.perf_counter()
    model.fit(train.texts, train.intents)
    seconds = time.perf_counter() - started
    index = {name: i for i, name in enumerate(taxonomy.intents)}
    probs = np.zeros((len(test_texts), len(index)), dtype=np.float32)
    probs[np.arange(len(test_texts)), [index[p] for p in model.predict(test_texts)]] = 1.0
    return probs, seconds
