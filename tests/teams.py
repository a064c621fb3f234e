"""Two teams' data folders built from Banking77 texts, for the tests that train and serve a taxonomy of their own.

- ``write_labelled_team``: 24 intents as the team's labels under four other category names, one of them (FAQ)
  with no High label and taking the out-of-scope tickets; ``taxonomy.csv`` beside ``train.csv``/``test.csv``.
- ``write_pairs_team``: tickets with ``category`` and ``priority`` columns only (no finer label), three other
  category names again, no taxonomy: the labels are the (category, priority) pairs.

Each folder is small (20 training tickets a label) so its tiny checkpoint trains in about a minute.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from schemas.taxonomy import load_taxonomy

__all__ = ["CARD_OPS", "LABELLED_TEAM", "PAIRS_TEAM", "write_card_ops_team", "write_labelled_team", "write_pairs_team"]

LABELLED_TEAM: dict[str, tuple[str, ...]] = {
    "Card Operations": ("card_arrival", "card_delivery_estimate", "activate_my_card", "card_not_working",
                        "card_swallowed", "lost_or_stolen_card"),
    "Payments Desk": ("card_payment_not_recognised", "transaction_charged_twice", "pending_card_payment",
                      "card_payment_fee_charged", "request_refund", "Refund_not_showing_up"),
    "Identity Team": ("passcode_forgotten", "change_pin", "verify_my_identity", "edit_personal_details",
                      "compromised_card", "pin_blocked"),
    "FAQ": ("age_limit", "country_support", "exchange_rate", "top_up_limits", "visa_or_mastercard", "atm_support"),
}
"""Category → the Banking77 intents that are its labels; priorities stay the default taxonomy's."""
PAIRS_TEAM: dict[str, tuple[str, str]] = {
    "cash_withdrawal_not_recognised": ("Money Out", "High"),
    "declined_transfer": ("Money Out", "Medium"),
    "cancel_transfer": ("Money Out", "Medium"),
    "lost_or_stolen_phone": ("Access", "High"),
    "unable_to_verify_identity": ("Access", "Medium"),
    "fiat_currency_support": ("Other Questions", "Low"),
    "disposable_card_limits": ("Other Questions", "Low"),
}
"""Banking77 intent → the (category, priority) its tickets carry; the intent itself is not written."""
CARD_OPS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "card_delivery": ("Cards", "Medium", ("card_arrival", "card_delivery_estimate")),
    "card_activation": ("Cards", "Medium", ("activate_my_card",)),
    "card_broken": ("Cards", "Medium", ("card_not_working", "contactless_not_working", "virtual_card_not_working")),
    "card_gone": ("Security", "High", ("lost_or_stolen_card", "card_swallowed")),
    "fraud": ("Security", "High", ("card_payment_not_recognised", "cash_withdrawal_not_recognised",
                                   "direct_debit_payment_not_recognised", "compromised_card")),
    "double_charge": ("Payments", "High", ("transaction_charged_twice",)),
    "fees": ("Payments", "Medium", ("card_payment_fee_charged", "transfer_fee_charged", "cash_withdrawal_charge",
                                    "exchange_charge")),
    "refunds": ("Payments", "Medium", ("request_refund", "Refund_not_showing_up")),
    "pending": ("Payments", "Medium", ("pending_card_payment", "pending_transfer", "pending_cash_withdrawal")),
    "pin_passcode": ("Access", "Medium", ("change_pin", "pin_blocked", "passcode_forgotten")),
    "identity": ("Access", "Medium", ("verify_my_identity", "unable_to_verify_identity", "why_verify_identity")),
    "top_up_problem": ("Top-ups", "Medium", ("top_up_failed", "top_up_reverted", "pending_top_up")),
    "top_up_howto": ("Top-ups", "Low", ("automatic_top_up", "top_up_limits", "top_up_by_cash_or_cheque")),
    "product_questions": ("Questions", "Low", ("age_limit", "country_support", "visa_or_mastercard",
                                               "supported_cards_and_currencies", "fiat_currency_support")),
}
"""A card-operations desk's own labels (each a group of Banking77 intents), categories and priorities: the
folder ``write_card_ops_team`` writes for a full-preset run on labels and categories the project does not ship."""
_TRAIN_PER_LABEL = 20
_TEST_PER_LABEL = 8


def write_labelled_team(banking77: Path, folder: Path) -> Path:
    """``train.csv``/``test.csv`` (``text,label``) and ``taxonomy.csv`` of the labelled team; returns ``folder``."""
    default = load_taxonomy()
    category_of = {intent: category for category, intents in LABELLED_TEAM.items() for intent in intents}
    folder.mkdir(parents=True, exist_ok=True)
    for split, per_label in (("train", _TRAIN_PER_LABEL), ("test", _TEST_PER_LABEL)):
        rows = [(text, intent) for text, intent in _pick(banking77 / f"{split}.csv", category_of, per_label)]
        _write(folder / f"{split}.csv", ("text", "label"), rows)
    taxonomy = [(intent, category, default.rule(intent).priority.value) for intent, category in category_of.items()]
    _write(folder / "taxonomy.csv", ("label", "category", "priority"), [*taxonomy, ("out_of_scope", "FAQ", "Low")])
    return folder


def write_pairs_team(banking77: Path, folder: Path) -> Path:
    """``train.csv``/``test.csv`` with ``text,category,priority`` only; returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, per_label in (("train", _TRAIN_PER_LABEL), ("test", _TEST_PER_LABEL)):
        picked = _pick(banking77 / f"{split}.csv", PAIRS_TEAM, per_label)
        rows = [(text, *PAIRS_TEAM[intent]) for text, intent in picked]
        _write(folder / f"{split}.csv", ("text", "category", "priority"), rows)
    return folder


def write_card_ops_team(banking77: Path, folder: Path) -> Path:
    """Every Banking77 ticket of the ``CARD_OPS`` intents under the desk's own label, and its taxonomy."""
    label_of = {intent: label for label, (_, _, intents) in CARD_OPS.items() for intent in intents}
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        rows = [(text, label_of[intent]) for text, intent in _pick(banking77 / f"{split}.csv", label_of, 10**6)]
        _write(folder / f"{split}.csv", ("text", "label"), rows)
    taxonomy = [(label, category, priority) for label, (category, priority, _) in CARD_OPS.items()]
    _write(folder / "taxonomy.csv", ("label", "category", "priority"),
           [*taxonomy, ("out_of_scope", "Questions", "Low")])
    return folder


def _pick(path: Path, wanted: Mapping[str, object], per_label: int) -> Iterator[tuple[str, str]]:
    """(text, intent) of the first ``per_label`` rows of each wanted intent in a Banking77 file."""
    taken: dict[str, int] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            intent = row["category"]
            if intent in wanted and taken.get(intent, 0) < per_label:
                taken[intent] = taken.get(intent, 0) + 1
                yield row["text"], intent


def _write(path: Path, header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
