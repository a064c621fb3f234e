"""Off-topic questions that borrow a bank's words: a phone plan's balance, a gym's card, a game's password.

Real off-topic traffic is not "hi" or gibberish: it is another business's customer request or an everyday
question that shares words with banking tickets (phone, card, account, balance, password, payment, transfer)
and so lands on a banking intent, sometimes one that pages. These texts are written here from templates, in
three variants that share no template:

- ``exposure``: every other template of each of the project's own topics, trained on as outliers
  (``trainer.exposure``);
- ``fitting``: the other templates of those topics, which fit the page rule (``trainer.scope``), so the rule is
  chosen on sentences the model was never shown as off-topic;
- ``reporting``: other businesses, other everyday questions, other phrasings and word lists; only ever scored.

No template disputes a charge on the customer's own card or account (charged twice, charged for something not
agreed or not received): a bank's customers write those to their bank whoever the merchant is, Banking77 labels
them (``transaction_charged_twice``, ``card_payment_not_recognised``, ``request_refund``), and some must page.
Trained on as outliers, such a template taught the model that a fraud report naming a shop is off-topic.

The templates are this project's own text, under the project's licence (Apache-2.0).
"""

from __future__ import annotations

import random
from typing import Literal

__all__ = ["Variant", "lookalike_texts"]

Variant = Literal["exposure", "fitting", "reporting"]

_OWN_TOPICS: dict[str, tuple[list[str], list[str]]] = {
    "phone plan": ([
        "how much data is left on my {x}", "my {x} ran out of data already, can I top up the balance",
        "why was my {x} payment higher this month", "how do I move my {x} to a new phone",
        "my phone battery dies by lunchtime since the update", "my phone screen is cracked, where can I get it fixed",
        "how do I cancel my {x} before the contract ends", "can I add my daughter's phone to my {x}",
    ], ["phone plan", "mobile contract", "prepaid sim", "family plan", "unlimited data plan"]),
    "gym": ([
        "my {x} card stopped working at the turnstile", "how do I freeze my {x} for two months",
        "can I transfer my {x} to my brother", "can I bring a friend on my {x}",
        "I lost my {x} card, can I get a new one", "how do I update the payment details on my {x}",
    ], ["gym membership", "yoga studio pass", "swimming pool membership", "climbing gym"]),
    "games": ([
        "I forgot the password to my {x}", "someone logged into my {x} from another country",
        "how do I delete my {x}", "my {x} got banned for no reason", "can I transfer items between my {x}s",
        "the {x} won't accept my gift card code", "how do I link my {x} to my console",
    ], ["game account", "steam account", "xbox profile", "playstation account", "minecraft account"]),
    "loyalty": ([
        "my {x} points balance is wrong", "how do I merge two {x}s", "the cashier could not scan my {x}",
        "do {x} points expire", "I lost my {x}, are my points gone", "can I use my {x} online",
    ], ["supermarket loyalty card", "coffee shop stamp card", "petrol station rewards card", "store card"]),
    "parcels": ([
        "where is my {x}", "the tracking number for my {x} does not work", "my {x} was delivered to the wrong address",
        "can I change the delivery address of my {x}", "how do I return my {x} for a refund",
        "my {x} arrived damaged, who do I contact",
    ], ["parcel from your online shop", "order from the web store", "furniture delivery", "shoe order"]),
    "car": ([
        "how much is {x} for a new driver", "does my {x} cover a cracked windscreen",
        "how do I make a claim on my {x} after a crash", "can I pay my {x} monthly",
        "my car makes a grinding noise when I brake", "how often should I change the oil in my car",
        "where do I renew my {x}",
    ], ["car insurance", "breakdown cover", "road tax", "parking permit"]),
    "utilities": ([
        "why is my {x} so high this winter", "how do I submit a meter reading for my {x}",
        "can I switch my {x} to a cheaper tariff", "my {x} account shows the previous tenant's name",
        "who do I call about a leak before the {x} arrives",
    ], ["gas bill", "water bill", "energy bill", "council tax bill"]),
    "streaming": ([
        "how do I change the password on my {x}", "my {x} keeps logging me out", "how many screens does my {x} allow",
        "can I pause my {x} while travelling", "why can't I download films on my {x}",
    ], ["netflix account", "spotify premium", "streaming subscription", "disney plus account"]),
    "travel": ([
        "how do I transfer my {x} to a family member", "my {x} did not show up after the flight",
        "can I use {x} to upgrade my seat", "what is the baggage allowance on my ticket",
        "my suitcase was lost at the airport, what do I do",
    ], ["air miles", "frequent flyer points", "airline vouchers"]),
    "home and work": ([
        "how do I get red wine out of a carpet", "my {x} password expired and IT is closed",
        "how do I reset my {x}", "what should I put on my CV for an office job",
        "my landlord kept my deposit, is that legal", "how do I secure my {x}",
    ], ["work laptop", "wifi router", "office email", "smart doorbell"]),
    "school": ([
        "how do I top up my child's {x}", "the {x} says my password is wrong",
        "my son lost his {x}, can we get a new one",
        "how do I pay for the school trip through the {x}", "who do I ask about the {x} during the holidays",
    ], ["school canteen card", "school app", "parent portal", "lunch account"]),
    "marketplace": ([
        "my {x} got suspended after one sale", "the buyer on my {x} never paid, what now",
        "how do I withdraw the money from my {x}", "why is there a fee on every sale from my {x}",
        "someone paid on my {x} with a stolen card, am I liable",
    ], ["ebay seller account", "etsy shop", "vinted profile", "marketplace listing"]),
    "apps and devices": ([
        "how do I stop {x} asking for my password all the time", "how do I get a refund for something I bought on {x}",
        "my {x} won't let me log in after the update", "how do I turn on two factor for {x}",
        "can I share {x} with my family",
    ], ["the app store", "google play", "my smartwatch", "icloud", "my kindle"]),
    "charity and clubs": ([
        "how do I cancel my monthly {x}", "can I change the date my {x} is taken", "I want to increase my {x}",
        "my {x} card was declined at the door", "do I get a receipt for my {x} for tax",
    ], ["charity donation", "football club membership", "book club subscription", "museum membership"]),
    "ev charging": ([
        "my {x} card doesn't work at the charger", "how long does a full charge take on the {x}",
        "how do I top up my {x} account", "can I get a refund for a failed {x} session",
    ], ["ev charging", "charge point", "car charging network"]),
    "official papers": ([
        "how do I renew my {x} online", "I lost my {x}, how do I get another",
        "why was my {x} application rejected", "how long does a new {x} take to arrive",
        "my {x} photo was not accepted, what is wrong with it",
    ], ["passport", "driving licence", "library card", "residence permit"]),
}
_OWN_FRAMES = ["{s}", "{s}?", "hi, {s}?", "quick question: {s}", "{s} please", "can someone tell me {s}",
               "{s}, thanks", "hello, {s}"]

_REPORTING_TOPICS: dict[str, tuple[list[str], list[str]]] = {
    "hotels": ([
        "I need to cancel my {x} and get the deposit back", "was my {x} charged to the right card",
        "can I check in early for my {x}", "the key card for my {x} does not open the door",
        "is breakfast included in my {x}",
    ], ["hotel booking", "b&b reservation", "holiday cottage", "resort stay"]),
    "broadband": ([
        "my {x} keeps dropping in the evening", "what is the admin password for my {x}",
        "how do I pay the {x} invoice without an account", "my {x} is slower than what I pay for",
        "can I take my {x} with me when I move house",
    ], ["broadband", "fibre connection", "home internet", "router"]),
    "pharmacy": ([
        "is my {x} ready for collection", "can someone else pick up my {x}",
        "how much does a {x} cost without insurance", "the pharmacy card reader rejected my {x} voucher",
    ], ["prescription", "repeat prescription", "flu jab", "travel vaccine"]),
    "tickets": ([
        "my {x} were not emailed to me", "can I transfer my {x} to a friend", "I was charged a fee on my {x}, why",
        "how do I get a refund for cancelled {x}", "where do I scan my {x} at the venue",
    ], ["concert tickets", "cinema tickets", "football tickets", "theatre seats"]),
    "social": ([
        "someone hacked my {x} and changed the email", "how do I verify my {x}", "how do I permanently delete my {x}",
        "I can't remember the security questions for my {x}", "why is my {x} locked",
    ], ["instagram account", "facebook page", "email account", "tiktok account", "linkedin profile"]),
    "rentals": ([
        "how much is the deposit on a {x}", "is insurance included when I book a {x}",
        "can I return the {x} at a different branch", "do I need my licence to pick up the {x}",
    ], ["rental car", "van hire", "bike rental", "camper van"]),
    "food delivery": ([
        "my {x} order never arrived but the app says delivered", "how do I leave a tip for the {x} driver",
        "can I get a refund for a cold {x} order", "how do I add a promo code to my {x} order",
    ], ["takeaway", "grocery delivery", "meal kit", "pizza"]),
    "pets and health": ([
        "does my {x} cover dental treatment", "how do I claim on my {x} for a vet bill",
        "how do I book an appointment with the {x}", "my {x} membership card is missing",
    ], ["pet insurance", "dentist", "physio clinic", "health plan"]),
    "everyday": ([
        "what's the best way to store {x}", "how long do I boil {x}", "my phone won't charge past 80 percent",
        "how do I get a stain off {x}", "which {x} should I buy for a small flat",
        "is it cheaper to take the train or drive to the coast", "how do I ask my boss for a pay rise",
    ], ["fresh herbs", "eggs", "a white shirt", "a leather sofa", "vacuum cleaner"]),
    "transport": ([
        "my {x} was rejected at the barrier", "how do I top up my {x}", "I left my {x} on the bus",
        "can I get a refund on an unused {x}",
    ], ["bus pass", "season ticket", "oyster card", "metro card"]),
}
_REPORTING_FRAMES = ["{s}", "hello there - {s}", "{s}?? thx", "I was wondering {s}", "not sure who to ask, {s}",
                     "{s}. any ideas", "Please help: {s}"]


def _templates(part: int) -> dict[str, tuple[list[str], list[str]]]:
    """Every other template of each of the project's own topics: exposure and rule fitting cover every topic and
    share no template."""
    return {name: (templates[part::2], words) for name, (templates, words) in _OWN_TOPICS.items()}


_VARIANTS = {
    "exposure": (_templates(0), _OWN_FRAMES),
    "fitting": (_templates(1), _OWN_FRAMES),
    "reporting": (_REPORTING_TOPICS, _REPORTING_FRAMES),
}


def lookalike_texts(variant: Variant, count: int | None = None, seed: int = 0) -> list[str]:
    """Up to ``count`` (None: all) distinct texts of one variant, in an order reproducible from ``seed``.

    Every (template, word, frame) combination is made, then shuffled, so two seeds give the same set in another
    order: take disjoint slices of one order for two uses.
    """
    topics, frames = _VARIANTS[variant]
    texts = {
        frame.format(s=template.format(x=word))
        for templates, words in topics.values()
        for template in templates
        for word in (words if "{x}" in template else words[:1])
        for frame in frames
    }
    ordered = sorted(texts)
    random.Random(seed).shuffle(ordered)
    return ordered[:count]
