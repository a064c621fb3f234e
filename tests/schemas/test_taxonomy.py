"""The default taxonomy covers every Banking77 label and keeps the product brief's five categories and anchors;
categories are data, so any names load, and bad ones are refused with the fix."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from schemas import Priority, Taxonomy, load_taxonomy
from schemas.taxonomy import DEFAULT_OUT_OF_SCOPE, IntentRule, TaxonomyError, slug

HIGH = {"compromised_card", "lost_or_stolen_card", "lost_or_stolen_phone", "card_payment_not_recognised",
        "cash_withdrawal_not_recognised", "direct_debit_payment_not_recognised", "transaction_charged_twice",
        "wrong_amount_of_cash_received", "card_swallowed"}
LOW = {"age_limit", "country_support", "fiat_currency_support", "supported_cards_and_currencies",
       "visa_or_mastercard", "exchange_rate", "top_up_limits", "disposable_card_limits"}
ANCHORS = {
    "Account/Login": {"passcode_forgotten", "pin_blocked", "change_pin", "edit_personal_details",
                             "terminate_account", "verify_my_identity", "unable_to_verify_identity",
                             "why_verify_identity", "lost_or_stolen_card", "lost_or_stolen_phone",
                             "compromised_card"},
    "Billing": {"card_payment_fee_charged", "transfer_fee_charged", "cash_withdrawal_charge",
                       "exchange_charge", "top_up_by_card_charge", "top_up_by_bank_transfer_charge",
                       "extra_charge_on_statement", "request_refund", "Refund_not_showing_up",
                       "transaction_charged_twice"},
    "Order/Delivery": {"card_arrival", "card_delivery_estimate", "order_physical_card",
                              "get_physical_card", "getting_spare_card", "card_about_to_expire"},
    "Technical": {"card_not_working", "contactless_not_working", "virtual_card_not_working"},
    "General Inquiry": {"age_limit", "country_support", "fiat_currency_support",
                               "supported_cards_and_currencies", "visa_or_mastercard", "exchange_rate",
                               "top_up_limits"},
}


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return load_taxonomy()


def test_every_dataset_label_is_mapped_exactly_once(taxonomy: Taxonomy, data_dir: Path) -> None:
    labels = json.loads((data_dir / "categories.json").read_text())
    assert len(labels) == 77
    assert sorted(taxonomy.intents) == sorted(labels)
    assert "Refund_not_showing_up" in taxonomy.intents and "reverted_card_payment?" in taxonomy.intents


BRIEF_CATEGORIES = ["Billing", "Account/Login", "Technical", "Order/Delivery", "General Inquiry"]


def test_the_brief_categories_are_the_default_and_general_inquiry_takes_out_of_scope(taxonomy: Taxonomy) -> None:
    assert sorted(taxonomy.categories) == sorted(BRIEF_CATEGORIES)
    assert [slug(c) for c in BRIEF_CATEGORIES] == [
        "billing", "account-login", "technical", "order-delivery", "general-inquiry",
    ]
    assert taxonomy.out_of_scope_category == "General Inquiry"


def test_every_category_and_priority_is_used(taxonomy: Taxonomy) -> None:
    assert {r.category for r in taxonomy.rules} == set(taxonomy.categories)
    assert {r.priority for r in taxonomy.rules} == set(Priority)


def test_priority_anchors_hold(taxonomy: Taxonomy) -> None:
    high = {r.intent for r in taxonomy.rules if r.priority is Priority.HIGH}
    assert high == HIGH, "High is reserved for security breaches and immediate financial loss"
    for intent in LOW:
        assert taxonomy.rule(intent).priority is Priority.LOW, intent


@pytest.mark.parametrize("category", list(ANCHORS))
def test_category_anchors_hold(taxonomy: Taxonomy, category: str) -> None:
    for intent in ANCHORS[category]:
        assert taxonomy.rule(intent).category == category, intent


def test_every_row_has_a_rationale(taxonomy: Taxonomy) -> None:
    assert all(len(r.rationale.split()) >= 3 for r in taxonomy.rules)


def test_matrices_partition_the_intents(taxonomy: Taxonomy) -> None:
    for matrix in (taxonomy.category_matrix, taxonomy.priority_matrix):
        assert np.array_equal(matrix.sum(axis=1), np.ones(77))
    counts = Counter(r.category for r in taxonomy.rules)
    assert taxonomy.category_matrix.sum(axis=0).tolist() == [counts[c] for c in taxonomy.categories]


def test_reorder_follows_a_checkpoint_label_order(taxonomy: Taxonomy) -> None:
    reversed_order = list(reversed(taxonomy.intents))
    again = taxonomy.reorder(reversed_order)
    assert again.intents == reversed_order
    assert again.rule("card_swallowed") == taxonomy.rule("card_swallowed")
    with pytest.raises(ValueError, match="no rule"):
        taxonomy.reorder(["not_an_intent"])


def test_round_trip_through_csv(taxonomy: Taxonomy, tmp_path: Path) -> None:
    path = tmp_path / "taxonomy.csv"
    taxonomy.write_csv(path)
    assert load_taxonomy(path) == taxonomy


def test_a_typo_names_the_bad_row(tmp_path: Path) -> None:
    path = tmp_path / "taxonomy.csv"
    path.write_text("label,category,priority,rationale\ncard_arrival,Shipping,Urgent,typo here\n")
    with pytest.raises(TaxonomyError, match=r"taxonomy.csv:2: priority 'Urgent'"):
        load_taxonomy(path)


def test_any_category_names_load_with_a_documented_out_of_scope_default(tmp_path: Path) -> None:
    path = tmp_path / "taxonomy.csv"
    path.write_text("intent,category,priority\nprinter_jam,Hardware,Low\noutage,Infra & Network,High\n")
    taxonomy = load_taxonomy(path)
    assert taxonomy.categories == ("Hardware", "Infra & Network", DEFAULT_OUT_OF_SCOPE)
    assert taxonomy.out_of_scope_index == 2 and taxonomy.category_matrix.shape == (2, 3)
    assert slug("Infra & Network") == "infra-network"


@pytest.mark.parametrize(("categories", "says"), [
    (["Account/Login", "Account Login"], "would share the routing topic <prefix>account-login"),
    (["!!!"], "gives no valid routing topic name"),
    (["x" * 201], "at most 200 characters"),
])
def test_categories_whose_routes_collide_or_are_invalid_are_refused(categories: list[str], says: str) -> None:
    rules = tuple(IntentRule(f"label{i}", c, Priority.LOW) for i, c in enumerate(categories))
    with pytest.raises(TaxonomyError, match=says):
        Taxonomy(rules)
