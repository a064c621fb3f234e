"""Noisy copies of training tickets: customers type in a hurry, and a theft report with typos must still page.

Banking77 is clean text. A model trained on it alone loses confidence on "my cadr was tsolen", and with
outlier exposure its doubt goes to intents that do not page. Training also on copies with the slips people
make on a keyboard (a letter dropped, doubled, swapped or hit next to, punctuation left out) keeps such
tickets near their intent. The copies keep the original's intent; they are made from the training split
only, so no validation or test text is ever altered into training data.
"""

from __future__ import annotations

import random
import string

from trainer.data import Split

__all__ = ["framed", "hurried", "noisy_copies", "typo", "with_context"]

_ROWS = ["qwertyuiop", "asdfghjkl", "zxcvbnm"]
_NEIGHBOURS = {
    key: "".join(row[j] for j in (i - 1, i + 1) if 0 <= j < len(row))
    for row in _ROWS
    for i, key in enumerate(row)
}
"""Keys left and right of each letter on a QWERTY keyboard."""


def typo(text: str, rng: random.Random) -> str:
    """One to three keyboard slips in words of three letters or more; sometimes no punctuation or no capitals."""
    chars = list(text)
    letters = [i for i, ch in enumerate(chars) if ch.isalpha() and _in_long_word(text, i)]
    for _ in range(min(len(letters), rng.randint(1, 3))):
        i = rng.choice(letters)
        slip = rng.choice(("drop", "double", "swap", "neighbour"))
        if slip == "drop":
            chars[i] = ""
        elif slip == "double":
            chars[i] = chars[i] * 2
        elif slip == "swap" and i + 1 < len(chars) and chars[i + 1].isalpha():
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
        elif slip == "neighbour" and chars[i].lower() in _NEIGHBOURS:
            chars[i] = rng.choice(_NEIGHBOURS[chars[i].lower()])
    noisy = "".join(chars)
    if rng.random() < 0.3:
        noisy = noisy.translate(str.maketrans("", "", string.punctuation))
    if rng.random() < 0.3:
        noisy = noisy.lower()
    return noisy if noisy.strip() else text


def noisy_copies(split: Split, share: float, seed: int) -> Split:
    """A noisy copy of ``share`` of the split's texts (a random subset, reproducible from ``seed``), same intents."""
    rng = random.Random(seed)
    chosen = sorted(rng.sample(range(len(split)), round(share * len(split))))
    return Split([typo(split.texts[i], rng) for i in chosen], [split.intents[i] for i in chosen])


def with_context(split: Split, lines: list[str], share: float, seed: int) -> Split:
    """Copies of ``share`` of the split's tickets with one line of small talk before or after the request, same
    intents.

    Outlier exposure teaches that off-topic text is none of the labels, and on its own it also taught that a
    request beside an off-topic sentence is none of them: on the quick preset, "I am writing from my work
    computer." before a validation High ticket got 81% of them flagged and 63% missed. Real tickets carry such
    context; the request in them still decides the label.
    """
    if not lines or share <= 0:
        return Split([], [])
    rng = random.Random(seed)
    chosen = sorted(rng.sample(range(len(split)), round(share * len(split))))
    texts = []
    for i in chosen:
        line = rng.choice(lines).strip()
        line = line if line[-1:] in ".!?" else line + "."
        texts.append(f"{line} {split.texts[i]}" if rng.random() < 0.5 else f"{split.texts[i]} {line}")
    return Split(texts, [split.intents[i] for i in chosen])


_OPENERS = ["hi, ", "hello ", "hey team - ", "urgent: ", "quick q: ", "pls ", "ok so "]
_CLOSERS = [" pls help!!!", " asap", " thx", " ??", " :(", " urgent", "!!!", " help"]


def hurried(text: str, rng: random.Random) -> str:
    """Evaluation only, another process than ``typo``: two of a greeting, a plea, a dropped word, swapped
    letters, no punctuation, capitals, so a model trained on ``typo`` copies is not judged on its own noise.
    """
    for change in rng.sample(("opener", "closer", "drop_word", "swap", "no_punctuation", "capitals"), 2):
        words = text.split()
        if change == "opener":
            text = rng.choice(_OPENERS) + text
        elif change == "closer":
            text = text.rstrip(".") + rng.choice(_CLOSERS)
        elif change == "drop_word" and len(words) > 3:
            del words[rng.randrange(len(words))]
            text = " ".join(words)
        elif change == "swap" and len(text) > 4:
            for _ in range(2):
                i = rng.randrange(len(text) - 1)
                text = text[:i] + text[i + 1] + text[i] + text[i + 2 :]
        elif change == "no_punctuation":
            text = text.translate(str.maketrans("", "", string.punctuation))
        elif change == "capitals":
            text = text.upper()
    return text


_SALUTATIONS = ["Greetings,", "Good evening,", "Dear team,", "To whom it may concern,", "Hey,", "Morning,"]
_CONTEXT = ["I was in town this afternoon.", "I have been with you for years.", "This happened yesterday.",
            "Sorry for the long message.", "I am writing from my work computer.", "I tried the app first."]
_CLOSINGS = ["Thanks, Anna", "Regards", "Please get back to me soon.", "Thank you for your help.", "Best wishes, Tom"]


def framed(text: str, rng: random.Random) -> str:
    """Fitting only: the ticket written as a message, mostly with a salutation and a closing, sometimes a sentence
    of context. Banking77's tickets are bare requests; real ones arrive as emails, and the words around the
    request make it look less like any training ticket, so the page rule must keep High tickets written so.
    """
    parts = [rng.choice(_SALUTATIONS)] if rng.random() < 0.7 else []
    if rng.random() < 0.5:
        parts.append(rng.choice(_CONTEXT))
    parts.append(text)
    if rng.random() < 0.7:
        parts.append(rng.choice(_CLOSINGS))
    return " ".join(parts)


def _in_long_word(text: str, index: int) -> bool:
    start = index
    while start > 0 and text[start - 1].isalpha():
        start -= 1
    end = index
    while end < len(text) and text[end].isalpha():
        end += 1
    return end - start >= 3
