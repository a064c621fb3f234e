"""Noisy training copies keep their intent and stay close to the original; the evaluation's noise is another."""

from __future__ import annotations

import random
from difflib import SequenceMatcher

from trainer.augment import hurried, noisy_copies, typo
from trainer.data import Split

TEXTS = ["I think my card was stolen yesterday.", "How do I top up with Apple Pay?", "Why was I charged a fee?",
         "My transfer has not arrived yet", "Can I change my PIN at an ATM?"] * 20


def test_typos_are_small_slips_and_never_empty() -> None:
    rng = random.Random(0)
    for text in TEXTS:
        noisy = typo(text, rng)
        assert noisy.strip()
        assert SequenceMatcher(None, text.lower(), noisy.lower()).ratio() > 0.75, (text, noisy)
    changed = sum(typo(text, rng) != text for text in TEXTS)
    assert changed >= 0.9 * len(TEXTS)
    assert all(typo("ok", rng) == "ok" for _ in range(20))  # no word long enough to slip on


def test_noisy_copies_keep_each_texts_intent_and_the_share() -> None:
    split = Split(TEXTS, [f"intent_{i % 5}" for i in range(len(TEXTS))])
    copies = noisy_copies(split, 0.25, seed=3)
    assert len(copies) == 25
    assert copies == noisy_copies(split, 0.25, seed=3) and copies != noisy_copies(split, 0.25, seed=4)
    for text, intent in zip(copies.texts, copies.intents, strict=True):
        originals = [i for i, t in enumerate(TEXTS) if SequenceMatcher(None, t.lower(), text.lower()).ratio() > 0.75]
        assert originals and all(split.intents[i] == intent for i in originals)
    assert len(noisy_copies(split, 0.0, seed=3)) == 0


def test_hurried_evaluation_noise_differs_from_the_training_slips() -> None:
    rng = random.Random(0)
    hurried_texts = [hurried(text, rng) for text in TEXTS]
    assert sum(h != t for h, t in zip(hurried_texts, TEXTS, strict=True)) >= 0.9 * len(TEXTS)
    assert any(h.isupper() or h.split()[0] in {"hi,", "hello", "hey", "urgent:", "quick", "pls", "ok"}
               for h in hurried_texts)  # openers and capitals: never made by typo()
