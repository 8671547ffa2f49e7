"""When a new fact replaces an old one: the same subject and verb, a different value ("My favourite colour is blue."
then "My favourite colour is green.").

Embeddings alone cannot tell a changed fact from a restated one or from another fact: measured with
all-MiniLM-L6-v2, a changed value scores 0.57-0.97 to the old fact ("I work at a bakery." / "... a hospital." 0.57,
"My phone number is 555 1234." / "... 555 9876." 0.97), a restatement 0.91-0.99, and a different fact of the same
user up to 0.92 ("My sister lives in Lyon." / "My sister works in Lyon."). So the decision is textual, and the
similarity only narrows which memories are read (the ``remember`` step's ``replace_above``, 0.50: the lowest changed
fact measured scores 0.57). :func:`replaces` is rule-based, no model:

- both texts are one sentence;
- they start with the same words up to and including a verb that holds one value at a time (a form of *be*,
  *live*, *work*, *drive* ...; not *like*, *have*, *speak*, which hold many);
- what follows differs, and where the shared words end right at the verb, the first words after it are of one kind
  (both numbers, both places "in/on/at ...", both names "called/named", or both plain words): "I am 34 years old."
  is not replaced by "I am allergic to peanuts.", nor "The printer is on the second floor." by "The printer is out
  of toner.".

What it gets wrong, knowingly: a verb of one value used for a second one ("My dog is brown." / "My dog is old."
share "my dog is" and two plain words), and a subject said in other words ("My name's Alice." / "My name is Bob.").
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_CONTRACTIONS = {"i'm": ("i", "am"), "we're": ("we", "are"), "it's": ("it", "is"), "he's": ("he", "is"),
                 "she's": ("she", "is"), "they're": ("they", "are"), "you're": ("you", "are")}  # fmt: skip
# Verbs whose object is one thing at a time: a new value means the old one no longer holds.
_ONE_VALUE_VERBS = frozenset(
    "is are am was were live lives lived work works worked drive drives prefer prefers study studies teach teaches "
    "cost costs run runs start starts end ends open opens close closes weigh weighs belong belongs stay stays "
    "support supports attend attends".split()
)
_PLACES = frozenset("in on at under inside behind near beside above below by outside next".split())
_NAMING = frozenset("called named".split())
_NUMBERS = frozenset(
    "one two three four five six seven eight nine ten eleven twelve first second third fourth fifth".split()
)
# Closed-class words: each is a kind of its own ("out of toner" is not a place like "on the second floor").
_FUNCTION = frozenset(
    "a an the not no never from to of for with about out off up down over into onto this that these those my our "
    "your his her their its very really also still".split()
)
_SENTENCE_BREAK = re.compile(r"[.!?;]\s+\S")
# How a correction is said ("Actually, my favourite colour is green.", "I now live in Berlin."): not part of the fact.
_OPENERS = re.compile(
    r"^(?:(?:actually|so|well|oh|btw|by the way|ok|okay|update|correction|sorry|anyway|and|but)\b[\s,:;-]*)+"
)
_ANYWHERE = frozenset("now currently actually".split())


def words(text: str) -> list[str]:
    """Lower-case words of the fact, contractions of a pronoun and *be* spelt out ("I'm" -> "i", "am"), without the
    words that say it is a correction."""
    out: list[str] = []
    for word in _WORD.findall(_OPENERS.sub("", text.lower().replace("\u2019", "'").strip())):
        if word not in _ANYWHERE:
            out.extend(_CONTRACTIONS.get(word, (word,)))
    return out


def _kind(word: str) -> str:
    if word[0].isdigit() or word in _NUMBERS:
        return "number"
    if word in _PLACES:
        return "place"
    if word in _NAMING:
        return "name"
    if word in _FUNCTION:
        return word
    return "word"


def _one_sentence(text: str) -> bool:
    return _SENTENCE_BREAK.search(text.strip()) is None


def replaces(new: str, old: str) -> bool:
    """Whether ``new`` says something else about what ``old`` was about (and so ``old`` no longer holds)."""
    if not (_one_sentence(new) and _one_sentence(old)):
        return False
    a, b = words(old), words(new)
    if a == b:
        return False  # the same fact: a duplicate, not a change
    shared = 0
    while shared < min(len(a), len(b)) and a[shared] == b[shared]:
        shared += 1
    verb = next((i for i, w in enumerate(a[:shared]) if w in _ONE_VALUE_VERBS and i > 0), None)
    if verb is None:
        return False  # a different subject, or a different verb ("I live ..." / "I work ...")
    if shared > verb + 1:
        return True  # the verb and the start of its value agree: "the printer is on the second / third floor"
    if shared == len(a) or shared == len(b):
        return False  # "I am." / "I am Ada." : nothing to compare
    return _kind(a[shared]) == _kind(b[shared])
