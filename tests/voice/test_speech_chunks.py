"""What the voice says at once: the answer's first clause (or first words) as soon as it exists, then sentences."""

from __future__ import annotations

from fleetmind.voice.processor import SpeechChunker


def chunks(tokens: list[str], first_words: int = 5) -> list[tuple[str, str]]:
    """(the token that released a chunk, the chunk), then ("END", what the flush gives)."""
    chunker = SpeechChunker(first_words=first_words)
    out = [(token, chunk) for token in tokens for chunk in chunker.feed(token)]
    return [*out, ("END", chunker.flush())]


def test_the_first_clause_goes_at_once_then_whole_sentences() -> None:
    tokens = ["Sure", ",", " two", " plus", " two", " is", " four", ".", " Any", " more", "?", " Ask", "."]
    assert chunks(tokens) == [(",", "Sure,"), (" Any", "two plus two is four."), ("?", "Any more?"), ("END", "Ask.")]


def test_without_a_clause_end_the_first_words_go_once_they_are_whole() -> None:
    tokens = ["The", " capital", " of", " France", " is", " Paris", ".", " It", " is", " big", "."]
    expected = [(" is", "The capital of France"), (" It", "is Paris."), ("END", "It is big.")]
    assert chunks(tokens, first_words=4) == expected


def test_a_full_stop_inside_a_number_ends_nothing() -> None:
    assert chunks(["Pi", " is", " 3", ".", "14", ".", " Yes"]) == [(" Yes", "Pi is 3.14."), ("END", "Yes")]


def test_nothing_is_lost_or_said_twice() -> None:
    text = "Well, it depends: on the weather. And on you! Really? Yes. Fine"
    tokens = [text[i : i + 3] for i in range(0, len(text), 3)]
    said = [chunk for _, chunk in chunks(tokens, first_words=2)]
    assert " ".join(said).split() == text.split()
