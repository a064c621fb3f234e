"""Generated off-topic messages: what a ticketing bus carries besides banking questions.

Validation data for the out-of-scope detector and traffic for the demo, never training data. Each
family is built from its own word lists and templates, so two seeds give different messages of the same
kinds; the detector's own threshold is fitted on in-scope texts only (``trainer.scope``).
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable

__all__ = ["FAMILIES", "offtopic_texts"]

_GREETINGS = ["hi", "hello", "hey", "hey there", "good morning", "good afternoon", "good evening", "hiya",
              "yo", "hello?", "anyone there?", "hi team", "morning!", "greetings", "howdy", "sup"]
_THANKS = ["thanks!", "thank you", "thanks a lot", "thank you so much", "cheers", "ty", "thx", "many thanks",
           "great, thanks", "ok thanks", "perfect thank you", "awesome, cheers", "thanks for the help",
           "ok", "okay", "cool", "got it", "bye", "goodbye", "see you", "no", "yes", "k", "done"]
_WORDS = ["banana", "weather", "football", "guitar", "pizza", "holiday", "elephant", "movie", "garden",
          "coffee", "mountain", "printer", "umbrella", "piano", "volcano", "bicycle", "chocolate", "ocean",
          "sandwich", "tennis", "window", "dinosaur", "rainbow", "keyboard", "penguin", "castle", "tomato",
          "jazz", "carpet", "lamp", "hamster", "sunset", "pasta", "violin", "forest", "rocket", "test",
          "asdf", "hmm", "lol", "?", "...", "help", "hello world"]
_EMOJI = ["😀", "👍", "🙏", "🎉", "😂", "❤️", "🔥", "😢", "🤔", "👋", "✨", "🙂", "😎", "🍕", "⚽", "🌧️"]
_FOREIGN = ["¿Qué tiempo hará mañana en Madrid?", "Wie spät ist es in Berlin?", "Quelle est la capitale du Canada ?",
            "今日はいい天気ですね", "Какой фильм посмотреть сегодня вечером?", "Qual é a melhor praia do Brasil?",
            "Dov'è la stazione dei treni?", "Ik wil graag een pizza bestellen", "我想学习做饭",
            "Hoe laat begint de wedstrijd?", "Jak się masz?", "Bugün hava çok güzel", "Wat is je favoriete film?",
            "Ποιο είναι το αγαπημένο σου φαγητό;", "Combien de temps pour aller à Lyon en train ?",
            "¿Me recomiendas un buen libro?", "오늘 저녁 뭐 먹을까요?", "Mikä on Suomen pääkaupunki?",
            "Ich suche ein gutes Restaurant", "Quanto costa un biglietto per il cinema?"]
_TOPICS = ["the weather in {city} tomorrow", "a good pizza place in {city}", "the score of last night's game",
           "a recipe for {food}", "how to fix my {thing}", "flights to {city} next week",
           "a hotel room in {city} for two nights", "the best {thing} to buy this year",
           "how tall the eiffel tower is", "when the next train to {city} leaves", "how to grow {food}",
           "a movie to watch tonight", "the lyrics of a song I like", "how many calories are in {food}",
           "the opening hours of the museum in {city}", "how to train my dog", "a joke about {food}",
           "the population of {city}", "how to change a tyre on my {thing}", "a gift idea for my mum"]
_ASKS = ["what is {t}", "can you tell me {t}", "I want to know {t}", "please find {t}", "do you know {t}",
         "I need {t}", "help me with {t}", "looking for {t}", "any idea about {t}?", "quick question: {t}"]
_CITIES = ["Paris", "Tokyo", "Lisbon", "Chicago", "Nairobi", "Oslo", "Lima", "Sydney", "Rome", "Dublin"]
_FOODS = ["lasagne", "sourdough bread", "tomatoes", "pancakes", "curry", "sushi", "tacos", "apple pie"]
_THINGS = ["bike", "laptop", "car", "dishwasher", "phone case", "sofa", "vacuum cleaner", "camera"]
_SPAM = ["Congratulations! You have won a free {prize}, click here to claim", "Buy cheap {prize} now!!! limited offer",
         "Hot singles in your area want to meet you", "Earn $5000 a week working from home, reply YES",
         "URGENT: your parcel is waiting, confirm delivery at bit.ly/{code}", "Get 90% off {prize} today only",
         "Make money fast with crypto, guaranteed returns, DM me", "You are selected for a {prize} giveaway"]
_PRIZES = ["iPhone", "watches", "sunglasses", "gift card", "cruise", "laptop", "sneakers"]
_KEYROWS = ["qwertyuiop", "asdfghjkl", "zxcvbnm"]


def _gibberish(rng: random.Random) -> str:
    words = []
    for _ in range(rng.randint(1, 5)):
        if rng.random() < 0.5:
            row = rng.choice(_KEYROWS)
            start = rng.randrange(len(row) - 2)
            words.append(row[start : start + rng.randint(2, len(row) - start)])
        else:
            words.append("".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(2, 9))))
    return " ".join(words)


def _greeting(rng: random.Random) -> str:
    text = rng.choice(_GREETINGS)
    return text + rng.choice(["", "", "!", " :)", " " + rng.choice(_EMOJI)])


def _thanks(rng: random.Random) -> str:
    return rng.choice(_THANKS) + rng.choice(["", "", "!", "!!", " " + rng.choice(_EMOJI)])


def _single_word(rng: random.Random) -> str:
    word = rng.choice(_WORDS)
    return word.upper() if rng.random() < 0.2 else word


def _emoji(rng: random.Random) -> str:
    return "".join(rng.choice(_EMOJI) for _ in range(rng.randint(1, 4)))


def _foreign(rng: random.Random) -> str:
    return rng.choice(_FOREIGN)


def _other_domain(rng: random.Random) -> str:
    topic = rng.choice(_TOPICS).format(city=rng.choice(_CITIES), food=rng.choice(_FOODS), thing=rng.choice(_THINGS))
    text = rng.choice(_ASKS).format(t=topic)
    return text.capitalize() if rng.random() < 0.5 else text


def _spam(rng: random.Random) -> str:
    code = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(6))
    return rng.choice(_SPAM).format(prize=rng.choice(_PRIZES), code=code)


FAMILIES: dict[str, Callable[[random.Random], str]] = {
    "gibberish": _gibberish,
    "greeting": _greeting,
    "thanks": _thanks,
    "single_word": _single_word,
    "emoji": _emoji,
    "other_language": _foreign,
    "other_domain": _other_domain,
    "spam": _spam,
}
"""Each kind of off-topic message, by name (the evaluation reports them one by one)."""


def offtopic_texts(count: int, seed: int = 0) -> list[tuple[str, str]]:
    """Up to ``count`` distinct (family, text) pairs, the families in turn, reproducible from ``seed``.

    Repeats are dropped (small families run out first), so no single text weighs more than once in a rate.
    """
    rng = random.Random(seed)
    names = list(FAMILIES)
    seen: set[str] = set()
    out: list[tuple[str, str]] = []
    for i in range(count):
        family = names[i % len(names)]
        text = FAMILIES[family](rng)
        if text not in seen:
            seen.add(text)
            out.append((family, text))
    return out
