"""The *NPS* panel on the customer's page: the score, the counts, the chart."""

from __future__ import annotations

from crm_core.testing import UiBrowser, make_customer, ui_user

from crm_nps.panels import answers_chart

#: The en dash of the panel's score ranges ("9\u201310") and of the chart's tooltips.
RANGE = "\u2013"
DASH = f" {RANGE} "


def test_the_panel_shows_the_score_and_its_counts(crm, ui, customer, answer_scores):
    answer_scores(customer.id, [10, 9, 9, 8, 3])
    page = ui.get(f"/customers/{customer.id}")
    assert "NPS +40" in page
    assert "from 5 answers (5 sent)" in page
    assert f"Promoters (9{RANGE}10): 3" in page
    assert f"Passives (7{RANGE}8): 1" in page
    assert f"Detractors (0{RANGE}6): 1" in page
    assert "<svg" in page and "Answers per score" in page


def test_only_the_customers_own_answered_current_surveys_count(crm, ui, editor, customer,
                                                               survey, answer_scores):
    other = make_customer(crm, actor=editor, name="Other Ltd")
    answer_scores(other.id, [10, 10])  # another customer's
    answer_scores(customer.id, [2])
    page = ui.get(f"/customers/{customer.id}")
    # ``survey`` is sent but not answered: counted as sent, not in the score.
    assert "NPS -100" in page
    assert "from 1 answer (2 sent)" in page


def test_without_answers_the_panel_says_so(crm, ui, customer, survey):
    page = ui.get(f"/customers/{customer.id}")
    assert "No answers yet (1 survey sent)." in page


def test_users_without_the_view_permission_do_not_get_the_panel(crm, client, customer,
                                                                answer_scores):
    answer_scores(customer.id, [10])
    ui_user(crm, "viewer@example.com", ["customer.view"])
    page = UiBrowser(client, "viewer@example.com").get(f"/customers/{customer.id}")
    assert "NPS +100" not in page and "Answers per score" not in page


def test_the_chart_has_a_bar_per_answered_score(app):
    with app.test_request_context():
        chart = str(answers_chart([0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 3]))
    assert chart.startswith("<svg")
    assert f"Answers{DASH}10: 3" in chart
    assert f"Answers{DASH}3: 1" in chart
    assert f"Answers{DASH}0:" not in chart
