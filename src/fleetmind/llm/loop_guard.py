"""A loop guard for streamed answers: notices when a model has started repeating itself, so the answer can end.

Small models fall into loops: one phrase, one line or one short paragraph over and over until the context is full.
:class:`LoopGuard` is fed the answer as it streams and looks only at its tail, as lower-cased words (punctuation
and spacing dropped, so a phrase repeated with other line breaks still counts). It trips when either

- the tail is one block of words repeated back to back: at least ``min_repeats`` copies of a block of 1 to
  ``max_period`` words, the copies together at least ``min_span`` words long (so "no, no, no" in a sentence is
  fine, thirty of them are not); or
- the last ``window`` words hold few distinct word trigrams (under ``min_variety`` of them, with digits counted as
  one digit, so a numbered list of one line again and again counts as a loop): a loop whose copies differ a little.

Normal prose, a list, and code whose lines differ stay far from both limits; only text that says the same thing
again and again trips them. The cost per word is a trigram count kept up to date and, for the repeats, a look at
the periods whose block could end here (the last word seen again one period back): ~6 µs a token here (~48 µs
when each piece rebuilt them).
"""

from __future__ import annotations

import re
from collections import Counter, deque
from dataclasses import dataclass, field

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_DIGITS = re.compile(r"\d+")


@dataclass
class LoopGuard:
    """Fed text with :meth:`feed`; ``tripped`` (and :meth:`feed`'s answer) says the text is looping."""

    max_period: int = 60
    min_repeats: int = 3
    min_span: int = 24
    window: int = 120
    min_variety: float = 0.35
    tripped: bool = False
    reason: str = ""
    _words: list[str] = field(default_factory=list, repr=False)
    _partial: str = field(default="", repr=False)
    # the last ``window`` words with digits as one digit, and how often each trigram in them occurs: kept up to
    # date word by word, so a piece costs the same however long the answer (this runs on every token)
    _tail: deque[str] = field(default_factory=deque, repr=False)
    _trigrams: Counter[tuple[str, str, str]] = field(default_factory=Counter, repr=False)

    def __post_init__(self) -> None:
        if self.max_period < 1 or self.min_repeats < 2 or self.min_span < 2:
            raise ValueError("max_period must be >= 1, min_repeats >= 2 and min_span >= 2")
        if self.window < 12 or not 0 < self.min_variety <= 1:
            raise ValueError("window must be >= 12 and min_variety in (0, 1]")

    def feed(self, text: str) -> bool:
        """Take the next piece of the answer; True once the answer is looping (and from then on)."""
        if self.tripped or not text:
            return self.tripped
        # A word may be split over pieces: only words followed by a separator count yet.
        words = _WORD.findall(self._partial + text)
        ends_inside = bool(words) and bool(_WORD.fullmatch((self._partial + text)[-1:]))
        self._partial = words.pop() if ends_inside else ""
        if not words:
            return False
        for word in words:
            self._add(word.lower())
        keep = max(self.max_period * self.min_repeats, self.window, self.min_span)
        if len(self._words) > 2 * keep:
            del self._words[: len(self._words) - keep]
        self.reason = self._periodic() or self._monotonous()
        self.tripped = bool(self.reason)
        return self.tripped

    def _add(self, word: str) -> None:
        self._words.append(word)
        tail = self._tail
        tail.append(_DIGITS.sub("0", word) if any(c.isdigit() for c in word) else word)
        if len(tail) >= 3:
            self._trigrams[(tail[-3], tail[-2], tail[-1])] += 1
        if len(tail) > self.window:
            first = (tail[0], tail[1], tail[2])
            self._trigrams[first] -= 1
            if not self._trigrams[first]:
                del self._trigrams[first]
            tail.popleft()

    def _periodic(self) -> str:
        words = self._words
        n = len(words)
        last = words[-1]
        for period in range(1, min(self.max_period, n // self.min_repeats) + 1):
            if words[n - 1 - period] != last:
                continue  # the last word does not come back one period earlier: no block of this length repeats
            block = words[n - period :]
            copies = 1
            while (copies + 1) * period <= n and words[n - (copies + 1) * period : n - copies * period] == block:
                copies += 1
            if copies >= self.min_repeats and copies * period >= self.min_span:
                return f"a block of {period} words repeated {copies} times"
        return ""

    def _monotonous(self) -> str:
        if len(self._tail) < self.window:
            return ""
        variety = len(self._trigrams) / (len(self._tail) - 2)
        if variety < self.min_variety:
            return f"{variety:.0%} distinct trigrams in the last {self.window} words"
        return ""
