"""Choosing an expert by meaning: the query's embedding against each expert's description.

Each expert describes what it is good at (its registry meta ``description``, one description per line, else
built-in ones for the well-known names ``general`` and ``coding``). The router embeds descriptions once, embeds
each query, and picks the healthy expert whose closest description has the highest cosine similarity; an
expert without a description takes no part. A conversation stays with the expert that answered its previous
question unless another one is clearly closer (``SWITCH_MARGIN``): that expert's prompt cache holds the conversation,
and a near tie is no reason to make another expert read all of it before its first word.
``bench/routing.py`` measures this against a classifier prompt on a labelled query set.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fleetmind.llm import EmbeddingError
from fleetmind.llm.chat import Expert
from fleetmind.llm.embeddings import Embedder

log = logging.getLogger(__name__)

# Several short descriptions per expert, scored by the best match: one long description averages its topics
# into a vector close to none of them (measured in bench/routing.py: 0.75 with one text, see the report).
DEFAULT_DESCRIPTIONS: dict[str, tuple[str, ...]] = {
    "general": (
        "A question about everyday life.",
        "History, famous people, books, films and music.",
        "Geography: countries, cities, mountains, rivers and the weather.",
        "Cooking, recipes and food.",
        "Health, the body, sleep and medicine.",
        "Science and nature explained in simple words.",
        "Travel, hobbies, gardening and household tips.",
        "Greetings, small talk and personal advice.",
    ),
    "coding": (
        "Write code for me.",
        "Fix the bug in my program; explain this error message.",
        "How do I do this in Python, JavaScript, TypeScript, Go, Rust, C or Java?",
        "A database query, SQL syntax or a regular expression.",
        "Git, Docker, shell scripts and build tools.",
        "Implement an algorithm or a data structure.",
        "Classes, functions, interfaces, libraries and APIs in source code.",
        "Web frontend components, HTTP requests and unit tests in software development.",
    ),
}
DEFAULT_DESCRIPTIONS["coder"] = DEFAULT_DESCRIPTIONS["coding"]

# How much closer another expert must be before a conversation leaves the one that answered its previous question.
# Measured with all-MiniLM-L6-v2: bench/routing.py's single questions that belong elsewhere win by 0.01-0.30 (so a
# margin for every request cost 2-5 of its 64), while a spoken "How many legs does a dog have?" went to the coding
# expert at 0.16 vs 0.15 and waited 0.7 s for it to read the conversation (bench.voice_latency, 3 turns of 30).
SWITCH_MARGIN = 0.05
# questions remembered with the expert that answered them (per owner), for the next turn of their conversations
ANSWERED_SIZE = 1024


@dataclass(frozen=True)
class RouteChoice:
    expert: str
    scores: dict[str, float]
    reason: str


class SemanticRouter:
    """Picks the expert whose description is closest in meaning to the query."""

    def __init__(self, embedder: Embedder, *, descriptions: Mapping[str, Sequence[str]] | None = None) -> None:
        self.embedder = embedder
        source = DEFAULT_DESCRIPTIONS if descriptions is None else descriptions
        self.descriptions = {name: tuple(texts) for name, texts in source.items()}
        self._cache: dict[str, np.ndarray] = {}
        self._answered: OrderedDict[tuple[str | None, str], str] = OrderedDict()

    def answered(self, owner: str | None, question: str, expert: str) -> None:
        """Remember that ``expert`` answered ``question`` of ``owner``'s (the key is the owner's and the text)."""
        key = (owner, question)
        self._answered[key] = expert
        self._answered.move_to_end(key)
        while len(self._answered) > ANSWERED_SIZE:
            self._answered.popitem(last=False)

    def answered_by(self, owner: str | None, question: str | None) -> str | None:
        """The expert that answered ``owner``'s ``question`` last, if the router saw it."""
        return self._answered.get((owner, question)) if question else None

    def description_of(self, expert: Expert) -> tuple[str, ...] | None:
        """The expert's registry description (lines are separate descriptions), else the built-in ones."""
        if expert.description:
            return tuple(line.strip() for line in expert.description.splitlines() if line.strip())
        return self.descriptions.get(expert.name)

    async def scores(self, query: str | np.ndarray, described: Mapping[str, Sequence[str]]) -> dict[str, float]:
        """Each expert's best cosine similarity between ``query`` (a text, or its unit vector when the request has
        already embedded it) and one of its descriptions. Descriptions are embedded once, on first use."""
        missing = sorted({t for texts in described.values() for t in texts} - self._cache.keys())
        if missing:
            for text, vector in zip(missing, await self.embedder.embed(missing), strict=True):
                self._cache[text] = vector
        q = (await self.embedder.embed([query]))[0] if isinstance(query, str) else query
        return {name: max(float(np.dot(q, self._cache[t])) for t in texts) for name, texts in described.items()}

    async def choose(
        self,
        query: str,
        candidates: Sequence[Expert],
        is_healthy: Callable[[Expert], bool],
        *,
        vector: Callable[[], Awaitable[np.ndarray]] | None = None,
        previous: str | None = None,
    ) -> RouteChoice | None:
        """The best healthy described expert for ``query``, or None (no query, fewer than two, embedder down).
        ``vector``: gives the query's embedding when the request shares one (called only if it is needed).
        ``previous``: the expert that answered the conversation's previous question; kept unless another is
        closer by more than ``SWITCH_MARGIN``."""
        described = {e.name: text for e in candidates if is_healthy(e) and (text := self.description_of(e)) is not None}
        if not query.strip() or len(described) < 2:
            return None
        try:
            scores = await self.scores(query if vector is None else await vector(), described)
        except EmbeddingError as exc:
            # Routing by meaning is an improvement, not a requirement: fall back to the default order.
            log.warning("semantic routing unavailable: %s", exc, extra={"event": "semantic_route_failed"})
            return None
        best = max(scores, key=lambda name: scores[name])
        detail = ", ".join(f"{n}={s:.2f}" for n, s in sorted(scores.items(), key=lambda kv: -kv[1]))
        if previous in scores and best != previous and scores[best] - scores[previous] <= SWITCH_MARGIN:
            best, detail = previous, f"{detail}; {previous!r} answered the previous question"
        return RouteChoice(best, {n: round(s, 4) for n, s in scores.items()}, detail)
