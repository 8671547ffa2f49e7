"""What is worth remembering: a cheap, rule-based reading of a user's message, before anything is embedded.

Long-term memory should hold what a user would expect the agent to know next time, not every message: a memory
that is recalled must earn its place in the prompt. :func:`worth_remembering` reads a message sentence by sentence
and keeps

- what the user asks to be remembered ("remember that …", "please note: …", "don't forget …"), without the ask;
- statements about the user ("my name is …", "I live in …", "we use …");
- plain statements of fact ("the office printer is on the second floor").

It drops questions (a "?" or a question word first), requests and instructions (a message that starts with a verb
such as write, tell, list, explain, translate, ignore: benchmark prompts and tasks look like this), greetings and
thanks, and anything too short or too long to be one fact. No model is asked: this runs on every message, and a
wrong "no" costs less than a prompt full of noise. What is kept is de-duplicated and recalled only above a
similarity threshold by :mod:`fleetmind.memory.long_term`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["asked", "about_user", "fact"]

MIN_CHARS = 8
# One fact, not a pasted document: what a person says in a sentence or two.
MAX_FACT_CHARS = 300
MAX_ASKED_CHARS = 600

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_ASK = re.compile(
    r"^(?:please\s+|and\s+|also\s+)?(?:remember|note|memori[sz]e|don'?t\s+forget|do\s+not\s+forget|keep\s+in\s+mind|"
    r"for\s+future\s+reference|fyi)\b(?:\s+that\b)?[\s:,-]*(?P<fact>.*)$",
    re.IGNORECASE | re.DOTALL,
)
_QUESTION_WORDS = frozenset(
    "what who whom whose when where why how which is are am was were can could would should shall will do does did "
    "may might must have has had isn't aren't can't couldn't won't wouldn't shouldn't don't doesn't didn't".split()
)
# Verbs a request or an instruction starts with.
_REQUEST_VERBS = frozenset(
    "write tell give list explain describe summarise summarize translate show make create generate compose name "
    "calculate compute compare suggest recommend help find answer ignore act pretend say repeat print return "
    "convert count define draft fix implement rewrite reply respond sort solve spell continue complete imagine "
    "let please read check run try use stop start be answer classify choose pick rate rank review edit correct "
    "send search look call open close play sing draw plan tell".split()
)
_SMALL_TALK = frozenset(
    "hi hello hey thanks thank ok okay yes no sure cool great bye goodbye morning evening night lol yep nope".split()
)
_ABOUT_USER = re.compile(r"\b(?:i|i'm|im|i've|i'd|i'll|me|my|mine|we|we're|we've|our|ours|us)\b", re.IGNORECASE)
# A finite verb that makes a sentence a statement of fact (a heuristic: enough for short messages).
_STATEMENT = re.compile(
    r"\b(?:is|are|was|were|has|have|had|lives?|works?|owns?|likes?|loves?|hates?|prefers?|uses?|runs?|"
    r"costs?|means?|belongs?|contains?|needs?|wants?|speaks?|studies|study|born|called|named|\w+ed)\b",
    re.IGNORECASE,
)
# "I need help with …", "we want you to …": a request in the first person.
_FIRST_PERSON_REQUEST = re.compile(
    r"^(?:i|we)\s+(?:need|want|would\s+like|'d\s+like)\s+(?:you\b|help\b|some\s+help\b|to\s+know\b)", re.IGNORECASE
)
_WORD = re.compile(r"[a-z']+")
# "Hi, I'm Ada." is a fact after its greeting
_GREETING = re.compile(
    r"^(?:hi|hello|hey|hiya|good\s+(?:morning|afternoon|evening))(?:\s+there)?\s*[,!.:;-]+\s*", re.IGNORECASE
)
# "Actually, my favourite colour is green." is the fact without how a correction is introduced
_CORRECTION = re.compile(
    r"^(?:actually|oh|btw|by\s+the\s+way|update|correction|sorry|anyway|no)\s*[,!.:;-]+\s*", re.IGNORECASE
)


@dataclass(frozen=True)
class Memorable:
    """What to store, and why it was kept."""

    text: str
    kind: Kind


def _first_word(sentence: str) -> str:
    found = _WORD.search(sentence.lower())
    return found.group(0) if found else ""


def _is_question(sentence: str) -> bool:
    return sentence.rstrip().endswith("?") or _first_word(sentence) in _QUESTION_WORDS


def _is_small_talk(sentence: str) -> bool:
    words = _WORD.findall(sentence.lower())
    return not words or (len(words) <= 4 and all(w in _SMALL_TALK or len(w) <= 2 for w in words))


def _classify(sentence: str) -> Memorable | None:
    sentence = _CORRECTION.sub("", _GREETING.sub("", sentence))
    asked = _ASK.match(sentence)
    if asked:
        fact = asked.group("fact").strip().rstrip(".!").strip()
        if MIN_CHARS <= len(fact) <= MAX_ASKED_CHARS and not fact.endswith("?"):
            return Memorable(_sentence(fact), "asked")
        return None
    if len(sentence) < MIN_CHARS or len(sentence) > MAX_FACT_CHARS or "?" in sentence:
        return None
    first = _first_word(sentence)
    if _is_question(sentence) or _is_small_talk(sentence) or first in _REQUEST_VERBS or first in _SMALL_TALK:
        return None
    if len(_WORD.findall(sentence.lower())) < 3 or _FIRST_PERSON_REQUEST.match(sentence):
        return None
    if _ABOUT_USER.search(sentence):
        return Memorable(_sentence(sentence), "about_user")
    return Memorable(_sentence(sentence), "fact") if _STATEMENT.search(sentence) else None


def _sentence(text: str) -> str:
    """One way of writing a sentence (capital first, one full stop), so that the same fact embeds the same."""
    text = text.strip().rstrip(".!;,").strip()
    return text[:1].upper() + text[1:] + "."


def worth_remembering(message: str) -> Memorable | None:
    """The part of ``message`` worth keeping, or None when nothing is (a question, a request, small talk)."""
    text = message.strip()
    if len(text) < MIN_CHARS:
        return None
    kept = [m for m in (_classify(s.strip()) for s in _SENTENCE_END.split(text) if s.strip()) if m is not None]
    if not kept:
        return None
    kinds = {m.kind for m in kept}
    kind: Kind = "asked" if "asked" in kinds else "about_user" if "about_user" in kinds else "fact"
    joined = " ".join(m.text for m in kept)
    limit = MAX_ASKED_CHARS if kind == "asked" else MAX_FACT_CHARS
    return Memorable(joined, kind) if len(joined) <= limit else None
