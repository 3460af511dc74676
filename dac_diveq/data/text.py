"""Deterministic generated English text: sentences from built-in word lists and templates.

Nothing is downloaded. Sentences are assembled from slot templates (statements, questions,
exclamations, with optional openers and trailing clauses) so that lengths, punctuation and
prosody vary. The same ``seed`` always gives the same sentences.

Train and validation text are made disjoint *by construction*: every sentence is assigned to
a split by a hash of its text (:func:`text_split`), and each split's stream keeps only its
own sentences. The i-th sentence of a split therefore does not depend on how many sentences
are requested, and no sentence can appear in both splits.
"""
from __future__ import annotations

import hashlib
import random
from typing import Callable, Dict, List

VAL_FRACTION = 0.2  # share of the sentence space that belongs to validation

NAMES = (
    "Anna", "Peter", "Maria", "James", "Olivia", "David", "Sophie", "Thomas", "Grace", "Victor",
    "Helen", "Oscar", "Julia", "Martin", "Lucy", "George", "Nora", "Samuel", "Clara", "Edward",
)
ADJECTIVES = (
    "old", "bright", "quiet", "heavy", "yellow", "broken", "narrow", "gentle", "strange", "warm",
    "empty", "famous", "careful", "distant", "golden", "little", "muddy", "polished", "shiny",
    "sudden", "tired", "wooden", "frozen", "noisy", "curious", "smooth", "hungry", "purple",
    "ancient", "clever", "thick", "pale", "busy", "silver", "rough", "fresh", "lonely", "wide",
)
NOUNS = (
    "garden", "teacher", "river", "window", "engine", "kitchen", "village", "mountain", "letter",
    "bicycle", "doctor", "market", "island", "blanket", "station", "orchestra", "harbour",
    "farmer", "ladder", "chimney", "journey", "pebble", "violin", "lantern", "museum", "valley",
    "sailor", "castle", "basket", "thunder", "meadow", "puzzle", "shadow", "bridge", "winter",
    "feather", "pocket", "machine", "forest", "whistle", "cabinet", "tiger", "rocket", "owl",
)
PLURALS = (
    "children", "horses", "apples", "students", "boats", "flowers", "clouds", "soldiers", "keys",
    "pictures", "dishes", "candles", "songs", "stones", "workers", "birds", "ships", "books",
)
VERBS_PAST = (
    "found", "carried", "painted", "opened", "watched", "repaired", "followed", "dropped",
    "measured", "visited", "noticed", "cleaned", "borrowed", "described", "pushed", "signed",
    "lifted", "delivered", "remembered", "counted", "washed", "sold", "built", "heard", "caught",
)
VERBS_BASE = (
    "find", "carry", "paint", "open", "watch", "repair", "follow", "measure", "visit", "clean",
    "borrow", "describe", "lift", "deliver", "remember", "count", "wash", "sell", "build", "catch",
)
VERBS_INTRANS = (
    "laughed", "waited", "whispered", "shivered", "disappeared", "arrived", "danced", "slept",
    "trembled", "wandered", "smiled", "vanished", "sang", "jumped", "listened", "hurried",
)
ADVERBS = (
    "slowly", "quietly", "suddenly", "carefully", "happily", "loudly", "rarely", "gladly",
    "nervously", "gracefully", "eagerly", "calmly", "barely", "proudly", "early", "late",
)
PREPOSITIONS = (
    "near", "behind", "under", "beside", "across", "inside", "above", "beyond", "around",
)
OPENERS = (
    "Yesterday", "In the morning", "After dinner", "Last winter", "Every Sunday", "Of course",
    "Meanwhile", "Later that night", "Without a word", "Once again", "Before noon", "Honestly",
)
CONJUNCTIONS = ("because", "although", "while", "before", "after", "until", "since", "when")
NUMBERS = (
    "two", "three", "four", "five", "seven", "eight", "eleven", "twelve", "fifteen", "twenty",
    "thirty six", "forty two", "ninety", "a hundred", "three thousand", "sixty one",
)


def _noun_phrase(rng: random.Random) -> str:
    """Return a short noun phrase such as ``"the old garden"`` or ``"Anna"``."""
    r = rng.random()
    if r < 0.15:
        return rng.choice(NAMES)
    if r < 0.3:
        return f"{rng.choice(NUMBERS)} {rng.choice(PLURALS)}"
    det = rng.choice(("the", "a", "my", "our", "that", "every"))
    if rng.random() < 0.6:
        adj = rng.choice(ADJECTIVES)
        if det == "a" and adj[0] in "aeiou":
            det = "an"
        return f"{det} {adj} {rng.choice(NOUNS)}"
    noun = rng.choice(NOUNS)
    if det == "a" and noun[0] in "aeiou":
        det = "an"
    return f"{det} {noun}"


def _clause(rng: random.Random) -> str:
    """Return one statement clause without final punctuation (lower-case start)."""
    kind = rng.randrange(4)
    if kind == 0:
        return f"{_noun_phrase(rng)} {rng.choice(VERBS_PAST)} {_noun_phrase(rng)}"
    if kind == 1:
        return f"{_noun_phrase(rng)} {rng.choice(VERBS_INTRANS)} {rng.choice(ADVERBS)}"
    if kind == 2:
        return (f"{_noun_phrase(rng)} {rng.choice(VERBS_INTRANS)} "
                f"{rng.choice(PREPOSITIONS)} {_noun_phrase(rng)}")
    return f"{_noun_phrase(rng)} {rng.choice(ADVERBS)} {rng.choice(VERBS_PAST)} {_noun_phrase(rng)}"


def _statement(rng: random.Random) -> str:
    """Return a statement, optionally with an opener and a subordinate clause."""
    body = _clause(rng)
    if rng.random() < 0.3:
        body = f"{rng.choice(OPENERS)}, {body}"
    if rng.random() < 0.3:
        body = f"{body} {rng.choice(CONJUNCTIONS)} {_clause(rng)}"
    return body + "."


def _question(rng: random.Random) -> str:
    """Return a yes/no or wh- question."""
    if rng.random() < 0.5:
        aux = rng.choice(("Did", "Will", "Could", "Should", "Would"))
        return f"{aux} {_noun_phrase(rng)} {rng.choice(VERBS_BASE)} {_noun_phrase(rng)}?"
    wh = rng.choice(("Why", "When", "Where", "How"))
    return f"{wh} did {_noun_phrase(rng)} {rng.choice(VERBS_BASE)} {_noun_phrase(rng)}?"


def _exclamation(rng: random.Random) -> str:
    """Return a short exclamation."""
    if rng.random() < 0.5:
        adj = rng.choice(ADJECTIVES)
        det = "an" if adj[0] in "aeiou" else "a"
        return f"What {det} {adj} {rng.choice(NOUNS)} that was!"
    call = rng.choice(("look", "listen", "wait", "hurry"))
    return f"{rng.choice(NAMES)}, {call}, {_clause(rng)}!"


_KINDS: Dict[str, Callable[[random.Random], str]] = {
    "statement": _statement, "question": _question, "exclamation": _exclamation,
}
_KIND_WEIGHTS = (0.7, 0.2, 0.1)


def _capitalise(sentence: str) -> str:
    """Return ``sentence`` with its first letter in upper case."""
    return sentence[:1].upper() + sentence[1:]


def make_sentence(rng: random.Random, min_words: int = 3, max_words: int = 11) -> str:
    """Draw one sentence whose word count lies in ``[min_words, max_words]``.

    Args:
        rng: Random generator; the only source of randomness.
        min_words: Fewest words allowed.
        max_words: Most words allowed.

    Returns:
        A capitalised English sentence with final punctuation.
    """
    if not 1 <= min_words <= max_words:
        raise ValueError(f"need 1 <= min_words <= max_words, got {min_words}, {max_words}")
    for _ in range(1000):
        kind = rng.choices(tuple(_KINDS), weights=_KIND_WEIGHTS)[0]
        sentence = _KINDS[kind](rng)
        if min_words <= len(sentence.split()) <= max_words:
            return _capitalise(sentence)
    raise ValueError(f"could not draw a sentence of {min_words}..{max_words} words")


def text_split(sentence: str, val_fraction: float = VAL_FRACTION) -> str:
    """Return the split (``"train"`` or ``"val"``) a sentence belongs to, from a hash of it.

    Args:
        sentence: The sentence text.
        val_fraction: Share of sentences that belong to validation.

    Returns:
        ``"val"`` or ``"train"``.
    """
    digest = hashlib.sha256(sentence.encode("utf-8")).digest()
    bucket = int.from_bytes(digest[:8], "big") / 2.0 ** 64
    return "val" if bucket < val_fraction else "train"


def generate_sentences(n: int, seed: int = 0, split: str = "train", min_words: int = 3,
                       max_words: int = 11, val_fraction: float = VAL_FRACTION) -> List[str]:
    """Generate ``n`` distinct sentences belonging to one split, deterministically.

    Args:
        n: Number of sentences.
        seed: Seed; the same ``(seed, split)`` always gives the same list, and the first
            ``k`` sentences do not depend on ``n``.
        split: ``"train"`` or ``"val"``; the two splits never share a sentence.
        min_words: Fewest words per sentence.
        max_words: Most words per sentence.
        val_fraction: Share of the sentence space reserved for validation.

    Returns:
        A list of ``n`` unique sentences.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(f"dac-diveq-text:{seed}:{split}")
    out: List[str] = []
    seen = set()
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 1000 + 100 * n:
            raise ValueError(f"could not draw {n} distinct {split} sentences")
        sentence = make_sentence(rng, min_words, max_words)
        if sentence in seen or text_split(sentence, val_fraction) != split:
            continue
        seen.add(sentence)
        out.append(sentence)
    return out
