"""The embedder keeps recent vectors: a text embedded twice (recall, then routing) costs one server round trip."""

from __future__ import annotations

import numpy as np

from fleetmind.llm.embeddings import LlamaEmbedder


async def test_a_repeated_text_is_served_from_the_cache(embeddings_url: str) -> None:
    embedder = LlamaEmbedder(embeddings_url)
    calls: list[int] = []
    fetch = embedder._fetch

    async def counting(texts):  # type: ignore[no-untyped-def]
        calls.append(len(texts))
        return await fetch(texts)

    embedder._fetch = counting  # type: ignore[method-assign]
    try:
        first = await embedder.embed(["Where is the coffee?"])
        both = await embedder.embed(["Where is the coffee?", "How do I sort a list in Python?"])
        again = await embedder.embed(["How do I sort a list in Python?"])
    finally:
        await embedder.aclose()
    assert calls == [1, 1]  # only the new text went to the server
    np.testing.assert_array_equal(first[0], both[0])
    np.testing.assert_array_equal(both[1], again[0])
    assert both.shape == (2, 384) and abs(float(np.linalg.norm(both[1])) - 1.0) < 1e-5
