"""The NPS arithmetic: categories, the score's rounding, the distribution."""

from __future__ import annotations

import pytest

from crm_nps.score import Nps, category, distribution, nps_of


@pytest.mark.parametrize(("score", "expected"), [
    (0, "detractor"), (6, "detractor"), (7, "passive"), (8, "passive"),
    (9, "promoter"), (10, "promoter"),
])
def test_categories_follow_the_nps_bands(score, expected):
    assert category(score) == expected


@pytest.mark.parametrize("score", [-1, 11])
def test_scores_off_the_scale_are_refused(score):
    with pytest.raises(ValueError):
        category(score)


def test_the_score_is_promoters_minus_detractors_in_percent():
    nps = nps_of([10, 9, 9, 8, 3])  # 3 promoters, 1 passive, 1 detractor of 5
    assert (nps.promoters, nps.passives, nps.detractors, nps.answered) == (3, 1, 1, 5)
    assert nps.score == 40


@pytest.mark.parametrize(("counts", "expected"), [
    ((1, 0, 2), -33),   # -33.3
    ((2, 0, 1), 33),
    ((1, 1, 0), 50),
    ((0, 3, 0), 0),
    ((1, 6, 0), 14),    # 14.29
    ((1, 0, 7), -75),
    ((0, 0, 4), -100),
    ((3, 0, 0), 100),
    ((1, 7, 0), 13),    # 12.5 rounds away from zero
    ((0, 7, 1), -13),   # -12.5 likewise
])
def test_rounding_is_half_away_from_zero(counts, expected):
    assert Nps(*counts).score == expected


def test_no_answers_no_score():
    assert nps_of([]).score is None
    assert nps_of([]).answered == 0


def test_the_distribution_has_a_count_for_each_of_the_eleven_scores():
    assert distribution({0: 2, 10: 1, 7: 3}) == [2, 0, 0, 0, 0, 0, 0, 3, 0, 0, 1]
    assert distribution({}) == [0] * 11
