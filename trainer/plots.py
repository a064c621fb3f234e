"""PNG figures for evaluation and the data report (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["bar_chart", "confusion_matrix_png", "histogram", "reliability_diagram"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def confusion_matrix_png(
    true: np.ndarray, pred: np.ndarray, labels: Sequence[str], path: Path, title: str
) -> Path:
    """Row-normalised confusion matrix (rows: truth), readable at 5×5 and at 77×77."""
    from sklearn.metrics import confusion_matrix

    plt = _pyplot()
    n = len(labels)
    cm = confusion_matrix(true, pred, labels=list(range(n))).astype(np.float64)
    cm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1.0)
    size = 6.0 if n <= 10 else 18.0
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    image = ax.imshow(cm, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(n), labels, rotation=90, fontsize=9 if n <= 10 else 5)
    ax.set_yticks(range(n), labels, fontsize=9 if n <= 10 else 5)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if n <= 10:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{cm[i, j]:.2f}", ha="center", va="center",
                        color="white" if cm[i, j] > 0.5 else "black", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return _save(fig, path)


def reliability_diagram(confidence: np.ndarray, correct: np.ndarray, path: Path, title: str, bins: int = 15) -> Path:
    """Accuracy per confidence bin against the diagonal, with the share of examples per bin below."""
    plt = _pyplot()
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    centres = (edges[:-1] + edges[1:]) / 2
    acc = np.array([correct[which == b].mean() if (which == b).any() else np.nan for b in range(bins)])
    share = np.array([(which == b).mean() for b in range(bins)])
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5.5, 6.5), height_ratios=[3, 1], sharex=True)
    top.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    top.bar(centres, acc, width=1.0 / bins, edgecolor="black", alpha=0.8, label="accuracy")
    top.set_ylabel("accuracy")
    top.set_title(title)
    top.legend(loc="upper left")
    bottom.bar(centres, share, width=1.0 / bins, edgecolor="black", color="tab:orange")
    bottom.set_xlabel("confidence")
    bottom.set_ylabel("share")
    return _save(fig, path)


def bar_chart(names: Sequence[str], counts: Sequence[int], path: Path, title: str, horizontal: bool = False) -> Path:
    plt = _pyplot()
    if horizontal:
        fig, ax = plt.subplots(figsize=(8, max(4.0, 0.16 * len(names))))
        ax.barh(range(len(names)), counts)
        ax.set_yticks(range(len(names)), names, fontsize=6 if len(names) > 20 else 9)
        ax.invert_yaxis()
        ax.set_xlabel("examples")
    else:
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.bar(range(len(names)), counts)
        ax.set_xticks(range(len(names)), names, rotation=20)
        ax.set_ylabel("examples")
    ax.set_title(title)
    return _save(fig, path)


def histogram(values: Sequence[int], path: Path, title: str, xlabel: str) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.hist(values, bins=40)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("examples")
    ax.set_title(title)
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path
