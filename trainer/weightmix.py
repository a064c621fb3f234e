"""Average the fine-tuned encoder with the one it started from (WiSE-FT: Wortsman et al., CVPR 2022).

Fine-tuning on Banking77's phrasings moves the encoder away from what its sentence training taught it, and
wording Banking77 lacks pays for it: a logistic regression on the frozen base features named the label of more
urgent reports written outside Banking77 than the fine-tuned model did. Averaging the two sets of weights (the
head stays the fine-tuned one) keeps most of the fine-tuned accuracy and much of the base model's reach, at no
serving cost: the result is one model of the same size. The share of the fine-tuned weights is chosen on the
validation split and its odd-wording copies, each weighing the same, never on what evaluation reports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["MIXES", "base_encoder_state", "choose_mix", "mixed_state"]

MIXES = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)
"""Shares of the fine-tuned weights tried; 1.0 is the fine-tuned model itself."""
T = TypeVar("T")


def base_encoder_state(source: str) -> dict[str, Any]:
    """The encoder weights fine-tuning started from (a hub id, a local folder or an earlier checkpoint)."""
    from transformers import AutoModel

    return AutoModel.from_pretrained(source, use_safetensors=True, trust_remote_code=False).state_dict()


def mixed_state(fine: dict[str, Any], base: dict[str, Any], prefix: str, share: float) -> dict[str, Any]:
    """``share`` × fine-tuned + (1 − ``share``) × base for every float tensor the encoder has in both; the head
    and anything the base lacks stay fine-tuned."""
    out = {}
    for key, value in fine.items():
        start = base.get(key.removeprefix(prefix)) if key.startswith(prefix) else None
        if start is not None and value.is_floating_point() and start.shape == value.shape:
            out[key] = share * value + (1.0 - share) * start.to(value.dtype)
        else:
            out[key] = value
    return out


def choose_mix(
    model: Any, base: dict[str, Any], score: Callable[[], tuple[float, T]], mixes: tuple[float, ...] = MIXES
) -> tuple[float, dict[float, float], T]:
    """Try each share on ``model`` (in place), keep the one ``score`` rates highest (ties: more fine-tuned),
    holding only the best payload so far (a validation encoding is megabytes).

    Args:
        score: Rates the model as it stands, and returns what it computed to do so (for the kept share, the
            caller's to reuse rather than compute again).

    Returns:
        The share kept, every share's score, and what ``score`` returned besides the score for the kept share.
    """
    fine = {key: value.detach().clone() for key, value in model.state_dict().items()}
    prefix = f"{model.base_model_prefix}."

    def rate(share: float) -> tuple[float, T]:
        model.load_state_dict(mixed_state(fine, base, prefix, share))
        return score()

    scores: dict[float, float] = {}
    kept = mixes[0]
    scores[kept], kept_payload = rate(kept)
    for share in mixes[1:]:
        scores[share], payload = rate(share)
        if (round(scores[share], 9), share) > (round(scores[kept], 9), kept):
            kept, kept_payload = share, payload
    model.load_state_dict(mixed_state(fine, base, prefix, kept))
    return kept, scores, kept_payload
