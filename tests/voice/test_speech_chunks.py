"""What the voice says at once: the answer's first clause (or first words) as soon as it exists, then sentences;
and what it sends along: a history each prompt extends."""

from __future__ import annotations

from fleetmind.contracts.protocol import ChatMessage
from fleetmind.voice.processor import SpeechChunker, VoiceHistory


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


def test_voice_history_grows_then_is_cut_back_to_the_newest_turn() -> None:
    """Each prompt extends the previous one (the expert's prompt cache holds it) until the history is full."""
    history = VoiceHistory(3)
    sent: list[list[str]] = []
    for n in range(1, 9):
        sent.append([m.content or "" for m in history.messages()])
        history.add(ChatMessage(role="user", content=f"q{n}"), ChatMessage(role="assistant", content=f"a{n}"))
    assert sent[:4] == [[], ["q1", "a1"], ["q1", "a1", "q2", "a2"], ["q1", "a1", "q2", "a2", "q3", "a3"]]
    assert sent[4:] == [["q4", "a4"], ["q4", "a4", "q5", "a5"], ["q4", "a4", "q5", "a5", "q6", "a6"], ["q7", "a7"]]
    none = VoiceHistory(0)
    none.add(ChatMessage(role="user", content="q"), ChatMessage(role="assistant", content="a"))
    assert none.messages() == []
