"""Net Promoter Score arithmetic, apart from the database so it is easy to check.

Promoters answer 9 or 10, passives 7 or 8, detractors 0 to 6. The NPS is the percentage
of promoters minus the percentage of detractors among the answers: -100 to +100,
rounded to a whole number; no answer, no score.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

#: The scores of the scale, 0 to 10.
SCALE = tuple(range(11))
PROMOTER_MIN = 9
PASSIVE_MIN = 7


@dataclass(frozen=True)
class Nps:
    """The NPS of a set of answers, with its counts."""

    promoters: int
    passives: int
    detractors: int

    @property
    def answered(self) -> int:
        """How many answers the score is made of."""
        return self.promoters + self.passives + self.detractors

    @property
    def score(self) -> int | None:
        """% promoters - % detractors, rounded half away from zero; ``None`` without answers."""
        if not self.answered:
            return None
        exact = 100 * (self.promoters - self.detractors) / self.answered
        return int(exact + 0.5) if exact >= 0 else -int(-exact + 0.5)


def category(score: int) -> str:
    """``promoter``, ``passive`` or ``detractor`` for a score of 0-10."""
    if score not in SCALE:
        raise ValueError(f"an NPS score is 0 to 10, not {score!r}")
    if score >= PROMOTER_MIN:
        return "promoter"
    return "passive" if score >= PASSIVE_MIN else "detractor"


def nps_of(scores: Iterable[int]) -> Nps:
    """The NPS of ``scores`` (each 0-10)."""
    counts = {"promoter": 0, "passive": 0, "detractor": 0}
    for score in scores:
        counts[category(score)] += 1
    return Nps(counts["promoter"], counts["passive"], counts["detractor"])


def distribution(counts: dict[int, int]) -> list[int]:
    """The number of answers per score, 0 to 10, from ``{score: count}``."""
    return [counts.get(score, 0) for score in SCALE]
