"""The yardstick itself: CER and line matching must be right before any bound built on them means much."""

from __future__ import annotations

import pytest

from shmbridge.engines.results import make_line
from shmbridge.models import Box

from .cer import box_error, cer, levenshtein, match_lines, normalise


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [("", "", 0), ("abc", "", 3), ("", "ab", 2), ("kitten", "sitting", 3), ("flaw", "lawn", 2), ("ü", "u", 1)],
)
def test_levenshtein(a: str, b: str, distance: int) -> None:
    assert levenshtein(a, b) == distance
    assert levenshtein(b, a) == distance


def test_cer_ignores_whitespace_layout() -> None:
    assert normalise("  a\n b\t\tc ") == "a b c"
    assert cer("The quick\nbrown fox", "The  quick brown\nfox") == 0.0
    assert cer("abcd", "abxd") == pytest.approx(0.25)
    assert cer("", "") == 0.0
    assert cer("", "x") == 1.0


def _line(text: str, x: float, y: float, w: float, h: float) -> object:
    return make_line(text, 1.0, ((x, y), (x + w, y), (x + w, y + h), (x, y + h)))


def test_match_lines_pairs_by_text_and_place_then_counts_misses_and_extras() -> None:
    truth = [("OK", Box(x=10, y=10, width=20, height=10)), ("OK", Box(x=100, y=10, width=20, height=10))]
    truth += [("Cancel", Box(x=10, y=50, width=50, height=10))]
    lines = [_line("OK", 99, 9, 22, 12), _line("Cancle", 9, 49, 52, 12), _line("OK", 11, 10, 20, 10)]
    lines.append(_line("noise", 300, 300, 30, 10))
    score = match_lines(truth, lines)
    assert [m.line.box.x if m.line else None for m in score.matches] == [11, 99, 9]
    assert [normalise(line.text) for line in score.extra] == ["noise"]
    assert score.errors == 2 + 5  # one transposition, one invented word
    assert score.reference_chars == 10
    missed = match_lines(truth, [])
    assert missed.cer == 1.0 and "None" in missed.report()


def test_box_error_is_the_worst_edge() -> None:
    assert box_error(Box(x=0, y=0, width=10, height=10), Box(x=1, y=-2, width=10, height=10)) == 2
