"""Character error rate and line matching for the engine tests: the yardstick every accuracy bound uses.

CER is the Levenshtein distance between whitespace-normalised texts divided by the reference length. For a
screen, where reading order is ambiguous, ``match_lines`` pairs recognised lines with true lines by text
and position first, so a correct line read in another order costs nothing, and a missed, invented or
merged line costs its characters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shmbridge.models import Box, TextLine


def normalise(text: str) -> str:
    """Collapse every run of whitespace (newlines included) into one space and trim the ends."""
    return " ".join(text.split())


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insert, delete, substitute, each cost 1) in O(len(a)·len(b)) time, O(len(b)) space."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate of ``hypothesis`` against ``reference``, after whitespace normalisation."""
    ref, hyp = normalise(reference), normalise(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return levenshtein(ref, hyp) / len(ref)


@dataclass(frozen=True, slots=True)
class Match:
    """A true line and the recognised line paired with it (``None`` when the engine missed it)."""

    truth_text: str
    truth_box: Box
    line: TextLine | None


@dataclass(frozen=True, slots=True)
class ScreenScore:
    matches: list[Match]
    extra: list[TextLine]  # recognised lines paired with no true line
    errors: int
    reference_chars: int

    @property
    def cer(self) -> float:
        return self.errors / max(1, self.reference_chars)

    def report(self) -> str:
        """The mismatches, one per line, for an assertion message."""
        rows = [
            f"  {m.truth_text!r} -> {normalise(m.line.text) if m.line else None!r}"
            for m in self.matches
            if m.line is None or normalise(m.line.text) != normalise(m.truth_text)
        ]
        rows += [f"  extra {normalise(line.text)!r} at {line.box}" for line in self.extra]
        return "\n".join(rows)


def overlap(a: Box, b: Box) -> float:
    """Intersection over the smaller box: 1.0 when one box holds the other, which is how a padded
    detection box sits around an ink box."""
    w = min(a.x + a.width, b.x + b.width) - max(a.x, b.x)
    h = min(a.y + a.height, b.y + b.height) - max(a.y, b.y)
    if w <= 0 or h <= 0:
        return 0.0
    smaller = min(a.width * a.height, b.width * b.height)
    return (w * h) / smaller if smaller > 0 else 0.0


def match_lines(truth: Sequence[tuple[str, Box]], lines: Sequence[TextLine]) -> ScreenScore:
    """Pair lines greedily: identical text at overlapping places first, then the largest overlap."""
    free = list(lines)
    paired: dict[int, TextLine] = {}
    for i, (text, box) in enumerate(truth):
        for line in free:
            if normalise(line.text) == normalise(text) and overlap(line.box, box) > 0.5:
                paired[i] = line
                free.remove(line)
                break
    for i, (_text, box) in enumerate(truth):
        if i in paired:
            continue
        best = max(free, key=lambda line: overlap(line.box, box), default=None)
        if best is not None and overlap(best.box, box) > 0.3:
            paired[i] = best
            free.remove(best)
    matches = [Match(text, box, paired.get(i)) for i, (text, box) in enumerate(truth)]
    errors = sum(levenshtein(normalise(m.truth_text), normalise(m.line.text) if m.line else "") for m in matches)
    errors += sum(len(normalise(line.text)) for line in free)
    reference = sum(len(normalise(text)) for text, _ in truth)
    return ScreenScore(matches=matches, extra=free, errors=errors, reference_chars=reference)


def box_error(a: Box, b: Box) -> float:
    """The largest distance, in pixels, between corresponding edges of two boxes."""
    return max(
        abs(a.x - b.x),
        abs(a.y - b.y),
        abs((a.x + a.width) - (b.x + b.width)),
        abs((a.y + a.height) - (b.y + b.height)),
    )
