"""Urgent reports written outside Banking77: stolen cards, fraud, a swallowed card, in other people's words.

The page rule is fitted on Banking77's validation tickets and on the same tickets typed in a hurry; both keep
Banking77's phrasing. A real theft report is a story with a greeting, a terse text from a phone, or English
written as a second language, and the on-call team must still be paged for it. These reports are written here,
in those styles, for Banking77's High labels; they are only ever scored (``trainer.scope.ood_report``), never
trained or fitted on. The texts are this project's own, under the project's licence (Apache-2.0).
"""

from __future__ import annotations

from schemas.enums import Priority
from schemas.taxonomy import Taxonomy

__all__ = ["URGENT_REPORTS", "reported_for", "urgent_reports"]

URGENT_REPORTS: dict[str, list[str]] = {
    "lost_or_stolen_card": [
        "Hello, I was on the train this morning and when I got off my wallet was gone. My debit card was in it. "
        "Please stop it before someone uses it. Thanks, Maria",
        "card gone. pickpocketed at the market. block it now",
        "I can not find my card since yesterday evening, maybe I leave it in the taxi. What I must do?",
        "Someone broke into my car overnight and took my bag with my bank card inside",
        "my kid took my card to school and now he says he lost it, can you cancel it",
        "Good afternoon, my handbag was snatched outside the supermarket an hour ago. The card is in it. "
        "Please freeze everything.",
        "lost my card on holiday in Spain, need to stop it asap and get a new one sent",
        "I think I dropped my card at the petrol station. It's not in my pockets or the car.",
        "My wallet was stolen at the gym locker room, how do I report my card as stolen?",
        "Dear bank, my purse including my card disappeared at a concert last night. Kindly block the card.",
        "where's the button to freeze a card I have lost?? can't find it in the app",
        "The burglars took my laptop and my spare bank card from the drawer.",
    ],
    "compromised_card": [
        "I typed my card number into a website that turned out to be fake. I think they have my details now.",
        "got a text asking for my card details and I answered it like an idiot. what now",
        "A man at the ATM was watching me type my PIN, and there was something weird stuck on the card slot.",
        "My card details were in a data breach email I got from an online shop. Is my card safe to use?",
        "Somebody phoned me pretending to be you and I gave them the 3 digits on the back of my card",
        "Hi, my friend says he saw my card number posted on some forum. Can you replace the card please?",
        "I think my card was skimmed at a restaurant abroad, I want a new card with a new number",
        "someone knows my pin. I need to change everything",
        "My ex has a photo of my card front and back and I do not trust them. Block it please.",
        "Is my card compromised? The hotel I stayed at told me their payment system was hacked.",
    ],
    "card_payment_not_recognised": [
        "There is a payment of 249.99 to an electronics store I have never been to. I did not buy this.",
        "what is this charge from 'XJ*DIGITAL SVC' on my card?? not me",
        "Hello, I see three payments on my card from yesterday in a city I have never visited.",
        "My statement shows a card purchase at a petrol station while I was at home all day with the flu",
        "someone used my card on amazon, there are orders I never placed",
        "I have a card transaction to a betting website, I never gamble. Please investigate.",
        "Unknown payment 87 euro on 14 march, I did not authorise it",
        "Good morning, there is a subscription charge on my card for a streaming service I never signed up for.",
        "i dont know what this payment is, it says online purchase and it was not me or my wife",
        "Why is there a card payment from a shop in another country on my account? I have the card with me.",
    ],
    "cash_withdrawal_not_recognised": [
        "There's an ATM withdrawal of 500 from my account at 3am and I was asleep",
        "Someone took cash out with my card in another town. I still have my card!",
        "cash withdrawal i didnt make yesterday 200 pounds. help",
        "Hello, my account shows two cash machine withdrawals this morning that were not done by me.",
        "I see a withdrawal from an ATM abroad but I have not left the country this year",
        "Money was withdrawn from a cash machine with my card but I never went to any ATM today",
        "My elderly father's account shows cash withdrawals he says he never made, can you check?",
        "who took 300 out of my account at a cashpoint?? wasnt me",
    ],
    "direct_debit_payment_not_recognised": [
        "A direct debit to a company I have never heard of has taken 45 from my account",
        "there is a new direct debit on my account that i never set up. stop it",
        "Hello, money is leaving my account every month by direct debit to an insurance firm I don't use.",
        "I did not authorise this direct debit mandate, who gave them my account details?",
        "Some gym I never joined is collecting a direct debit from me",
        "Unrecognised direct debit 19.99 today, please cancel and refund",
        "Why is a debt collection agency taking direct debits from my account? I never agreed to it.",
        "A direct debit appeared for a phone contract in someone else's name.",
    ],
    "transaction_charged_twice": [
        "I paid for my groceries once but the payment shows twice on my account",
        "charged 2 times for the same hotel booking!! refund the second one",
        "Hello, the restaurant bill of 64.20 was taken from my card twice in the same minute.",
        "My online order went through two times, same amount, same shop, same time",
        "The taxi app charged me double for one trip",
        "I see a duplicated payment for my electricity bill this month",
        "why did you take the money two times? i only bought one ticket",
        "Double charge on my card at the pharmacy yesterday, please fix it",
    ],
    "wrong_amount_of_cash_received": [
        "The ATM gave me 60 but my account says I withdrew 100",
        "I asked the cash machine for 200 and it only gave 150, the rest never came out",
        "Hello, the machine did not give me any money but my balance went down by 80.",
        "cash machine short changed me by 20, the receipt says 100",
        "I withdrew money abroad and got less cash than what was taken from my account",
        "ATM jammed halfway and only some notes came out, but the full amount is gone from my account",
        "the money that came out of the atm was less then i requested, how do i get the difference back",
        "I received 40 euros from the machine instead of the 100 euros it debited",
    ],
    "card_swallowed": [
        "The cash machine ate my card and didn't give it back",
        "ATM kept my card after I put the PIN in, the screen said contact your bank",
        "Hi, the machine outside the station swallowed my card this evening. How do I get it back?",
        "my card got stuck inside the atm and the branch is closed",
        "The cashpoint retained my card, I have no other way to pay for anything now",
        "I put my card in the machine and it never came out again.",
        "machine took my card!! what do i do",
        "The ATM in the shopping centre confiscated my card for no reason",
    ],
    "lost_or_stolen_phone": [
        "My phone was stolen with the banking app on it. Can you lock my account?",
        "lost my phone in a taxi, it has your app logged in, please block access",
        "Hello, someone stole my mobile on the bus. I am worried they can get into my bank app.",
        "I left my phone at the airport and it's gone. How do I stop anyone using my banking on it?",
        "phone stolen. bank app on it. help me secure it",
        "My mobile was taken in a robbery last night and I used it for all my banking",
        "I have lost my phone, can I log out of the app on that device from somewhere else?",
        "Thieves took my phone, which has my cards saved in the wallet app.",
    ],
}
"""Reports per Banking77 High label; every text is written for its label alone."""


def urgent_reports() -> list[tuple[str, str]]:
    """(label, text) pairs, in a fixed order."""
    return [(label, text) for label, texts in URGENT_REPORTS.items() for text in texts]


def reported_for(taxonomy: Taxonomy) -> bool:
    """Whether the reports mean what they were written for: every label in ``taxonomy``, each High."""
    labels = set(taxonomy.intents)
    return all(label in labels and taxonomy.rule(label).priority == Priority.HIGH for label in URGENT_REPORTS)
