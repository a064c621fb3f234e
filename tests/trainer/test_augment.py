"""Noisy training copies keep their intent and stay close to the original; the evaluation's noise is another."""

from __future__ import annotations

import random
from difflib import SequenceMatcher

from trainer.augment import framed, hurried, noisy_copies, typo, with_context
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


def test_context_copies_keep_the_request_whole_beside_one_off_topic_line_and_its_intent() -> None:
    split = Split(TEXTS, [f"intent_{i % 5}" for i in range(len(TEXTS))])
    lines = ["what is the capital of peru", "I love pizza!", "the match starts at nine"]
    copies = with_context(split, lines, 0.1, seed=3)
    assert len(copies) == 10 and copies == with_context(split, lines, 0.1, seed=3)
    before = 0
    for text, intent in zip(copies.texts, copies.intents, strict=True):
        request = next(t for t in TEXTS if t in text)
        assert split.intents[TEXTS.index(request)] == intent
        line = text.replace(request, "").strip()
        assert line.rstrip(".") in [x.rstrip(".") for x in lines], text
        before += text.startswith(line)
    assert 0 < before < len(copies)
    assert len(with_context(split, [], 0.5, seed=3)) == 0 and len(with_context(split, lines, 0.0, seed=3)) == 0


def test_framed_tickets_keep_the_request_whole_inside_a_message() -> None:
    rng = random.Random(0)
    messages = [framed(text, rng) for text in TEXTS]
    assert all(text in message for text, message in zip(TEXTS, messages, strict=True))
    assert sum(message != text for text, message in zip(TEXTS, messages, strict=True)) >= 0.8 * len(TEXTS)
    assert sum(len(message) > len(text) + 30 for text, message in zip(TEXTS, messages, strict=True)) >= 0.3 * len(TEXTS)
