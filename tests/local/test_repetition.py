"""The loop detector on fake token streams: loops of every size are caught at the copy that
makes them one, and repetitive but finite text is not."""

from __future__ import annotations

import pytest

from llmmux.local.repetition import LoopGuard, RepetitionDetector


def tokens(text: str, size: int = 4) -> list[str]:
    """`text` cut into pieces of about a token each."""
    return [text[i : i + size] for i in range(0, len(text), size)]


def first_loop(pieces: list[str], guard: LoopGuard | None = None) -> int | None:
    """How many characters had been fed when the detector first said "loop" (None: never)."""
    detector = RepetitionDetector(guard or LoopGuard())
    fed = 0
    for piece in pieces:
        fed += len(piece)
        if detector.feed(piece):
            return fed
    return None


LINE = "I will read the file notes.txt and tell you what it says.\n"  # 58 characters


def test_a_repeated_line_is_a_loop_at_its_fourth_copy() -> None:
    text = "Sure, here is my plan.\n" + LINE * 20
    caught = first_loop(tokens(text))
    assert caught is not None
    # The 4th copy completes 232 characters of repetition, short of 256: the 5th one makes it.
    assert (
        len("Sure, here is my plan.\n") + 4 * len(LINE) < caught <= len("Sure, here is my plan.\n") + 5 * len(LINE) + 4
    )


def test_a_long_repeated_paragraph_is_caught_at_the_fourth_copy() -> None:
    paragraph = (
        "".join(f"Step {i}: open the file, read every line and write a summary of it. " for i in range(5)) + "\n"
    )
    caught = first_loop(tokens("Intro. " + paragraph * 6))
    assert caught is not None and caught <= len("Intro. ") + 4 * len(paragraph) + 4


def test_a_short_unit_needs_min_chars_of_copies() -> None:
    assert first_loop(tokens("ha" * 100)) is None  # 200 characters: laughter, not yet a loop
    caught = first_loop(tokens("ha" * 200))
    assert caught is not None and 256 <= caught <= 260


def test_a_single_repeated_token_is_a_loop() -> None:
    assert first_loop(["\n"] * 300) == 256
    assert first_loop(["}"] * 255 + ["x"]) is None


def test_text_that_repeats_words_but_not_a_block_is_not_a_loop() -> None:
    rows = "".join(f"| {i} | item {i * 7} | {i % 3 == 0} |\n" for i in range(200))  # a table: rows differ
    numbers = "\n".join(str(i) for i in range(1000))
    prose = " ".join(f"Reader {i} reads the file and the file says the file is fine." for i in range(60))
    for text in (rows, numbers, prose):
        assert first_loop(tokens(text)) is None, text[:80]


def test_a_unit_longer_than_max_period_is_not_looked_for() -> None:
    block = " ".join(f"w{i * i % 97}" for i in range(75)) + "\n"  # 300-odd characters, no shorter period
    assert first_loop(tokens(block * 6), LoopGuard(max_period=200)) is None
    assert first_loop(tokens(block * 6), LoopGuard(max_period=400)) is not None


def test_a_loop_with_a_period_that_repeats_inside_the_unit_is_found() -> None:
    # The last 8 characters occur inside the unit too, nearer than one period back.
    unit = "abcdefgh-xx-abcdefgh\n"
    caught = first_loop(tokens("start " + unit * 20, 3), LoopGuard(repeats=4, min_chars=64))
    assert caught is not None and caught <= len("start ") + 4 * len(unit) + 3


@pytest.mark.parametrize("repeats", [2, 3, 6])
def test_repeats_sets_the_copies_that_make_a_loop(repeats: int) -> None:
    unit = "x = compute(value, other_value)  # keeps the result around for later use\n"  # 74 characters
    guard = LoopGuard(repeats=repeats, min_chars=1)
    caught = first_loop(tokens(unit * 10, 1), guard)
    assert caught == repeats * len(unit)


def test_the_tail_stays_bounded() -> None:
    guard = LoopGuard(max_period=64)
    detector = RepetitionDetector(guard)
    for i in range(20_000):
        detector.feed(f"{i} ")
    assert len(detector._tail) <= 2 * max(guard.repeats * 64, guard.min_chars + 64)
