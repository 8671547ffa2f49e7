"""A streaming chat client as a process of its own (``python -m tests.gateway.stream_client URL KEY WORDS MAX``).

It asks for a completion of a prompt of ``WORDS`` words, prints ``started <completion id>`` as soon as the first
text arrives (so a test knows it is mid-stream and may kill it), and at the end prints one JSON line with the
completion id(s), the text and the usage it was sent.
"""

from __future__ import annotations

import json
import sys

import openai


def main() -> None:
    url, key, words, max_tokens = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    client = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=120)
    stream = client.chat.completions.create(
        model="fleetmind",
        messages=[{"role": "user", "content": " ".join(["hello"] * words)}],
        max_tokens=max_tokens,
        temperature=0,
        seed=1,
        stream=True,
        stream_options={"include_usage": True},
    )
    ids: set[str] = set()
    parts: list[str] = []
    usage = None
    for chunk in stream:
        ids.add(chunk.id)
        if chunk.choices and chunk.choices[0].delta.content:
            if not parts:
                print("started", chunk.id, flush=True)
            parts.append(chunk.choices[0].delta.content)
        if chunk.usage is not None:
            usage = chunk.usage.model_dump()
    print(json.dumps({"ids": sorted(ids), "text": "".join(parts), "usage": usage}), flush=True)


if __name__ == "__main__":
    main()
