"""The server-side SVG charts: accessible markup, geometry, ticks, escaping, errors."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest
from markupsafe import Markup

from crm_core.web.ui.charts import Series, bar_chart, default_number, horizontal_bars

SVG = "{http://www.w3.org/2000/svg}"
WEEKS = ["week 12", "week 13", "week 14"]


def _parse(markup: str) -> ET.Element:
    return ET.fromstring(str(markup))


def _bars(root: ET.Element) -> list[ET.Element]:
    return [r for r in root.iter(f"{SVG}rect") if r.get("class", "").startswith("crm-chart-series")]


def _texts(root: ET.Element, css_class: str) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}text") if t.get("class") == css_class]


def _box(rect: ET.Element) -> tuple[float, float, float, float]:
    return tuple(float(rect.get(name)) for name in ("x", "y", "width", "height"))


def _by_tooltip(root: ET.Element) -> dict[str, ET.Element]:
    return {rect.find(f"{SVG}title").text: rect for rect in _bars(root)}


def test_root_is_accessible_scalable_svg_markup():
    chart = bar_chart("Interactions", WEEKS, [Series("Calls", [3, 5, 1])])
    assert isinstance(chart, Markup)
    root = _parse(chart)
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    assert root.get("class") == "crm-chart"
    assert root.get("viewBox") == "0 0 640 260"
    assert root.get("width") == "100%"
    assert root.get("height") is None
    assert root.get("preserveAspectRatio") == "xMinYMin meet"
    title_id, desc_id = root.get("aria-labelledby").split()
    assert root.find(f"{SVG}title").get("id") == title_id
    assert root.find(f"{SVG}title").text == "Interactions"
    desc = root.find(f"{SVG}desc")
    assert desc.get("id") == desc_id
    assert desc.text == "Calls: 3 in week 12, 5 in week 13, 1 in week 14."


def test_description_replaces_the_generated_summary():
    root = _parse(bar_chart("T", WEEKS, [Series("Calls", [1, 2, 3])], description="Rising."))
    assert root.find(f"{SVG}desc").text == "Rising."


def test_summary_of_many_categories_stays_short():
    weeks = [f"week {n}" for n in range(1, 53)]
    values = [n % 7 for n in range(52)]
    desc = _parse(bar_chart("T", weeks, [Series("Calls", values)])).find(f"{SVG}desc").text
    assert desc == (
        f"52 categories, week 1 to week 52. Calls: {sum(values)} in total, most 6 in week 7."
    )


def test_ids_are_unique_per_call():
    first = _parse(bar_chart("A", WEEKS, [Series("Calls", [1, 2, 3])]))
    second = _parse(horizontal_bars("B", [("Lead", 2)]))
    assert first.get("aria-labelledby") != second.get("aria-labelledby")
    ids = [e.get("id") for root in (first, second) for e in root.iter() if e.get("id")]
    assert len(ids) == 4
    assert len(set(ids)) == 4


def test_one_rect_per_nonzero_value_with_tooltip_and_series_class():
    series = [Series("Calls", [3, 0, 1]), Series("Emails", [0, 2, 4])]
    root = _parse(bar_chart("T", WEEKS, series))
    bars = _by_tooltip(root)
    assert len(bars) == 4
    assert set(bars) == {
        "Calls \u2013 week 12: 3",
        "Calls \u2013 week 14: 1",
        "Emails \u2013 week 13: 2",
        "Emails \u2013 week 14: 4",
    }
    assert bars["Calls \u2013 week 12: 3"].get("class") == "crm-chart-series-0"
    assert bars["Emails \u2013 week 13: 2"].get("class") == "crm-chart-series-1"
    fills = {
        bars["Calls \u2013 week 12: 3"].get("fill"),
        bars["Emails \u2013 week 13: 2"].get("fill"),
    }
    assert len(fills) == 2
    assert all(fill.startswith("#") for fill in fills)


def test_stacked_bars_are_proportional_and_sit_on_each_other():
    series = [Series("Calls", [3, 5, 0]), Series("Emails", [7, 2, 1])]
    bars = _by_tooltip(_parse(bar_chart("T", WEEKS, series)))
    calls_12 = _box(bars["Calls \u2013 week 12: 3"])
    emails_12 = _box(bars["Emails \u2013 week 12: 7"])
    calls_13 = _box(bars["Calls \u2013 week 13: 5"])
    emails_13 = _box(bars["Emails \u2013 week 13: 2"])
    emails_14 = _box(bars["Emails \u2013 week 14: 1"])
    unit = calls_12[3] / 3
    assert unit > 0
    for box, value in [(emails_12, 7), (calls_13, 5), (emails_13, 2), (emails_14, 1)]:
        assert box[3] == pytest.approx(value * unit, abs=0.02)
    # the upper segment ends where the lower one starts; same column, same baseline
    assert emails_12[1] + emails_12[3] == pytest.approx(calls_12[1], abs=0.011)
    assert emails_13[1] + emails_13[3] == pytest.approx(calls_13[1], abs=0.011)
    assert emails_12[0] == calls_12[0]
    baseline = calls_12[1] + calls_12[3]
    assert calls_13[1] + calls_13[3] == pytest.approx(baseline)
    assert emails_14[1] + emails_14[3] == pytest.approx(baseline)
    assert calls_12[0] < calls_13[0] < emails_14[0]


def test_grouped_bars_stand_side_by_side_on_one_baseline():
    series = [Series("Calls", [3, 5, 1]), Series("Emails", [6, 2, 1])]
    root = _parse(bar_chart("T", WEEKS, series, stacked=False))
    bars = _by_tooltip(root)
    calls = _box(bars["Calls \u2013 week 12: 3"])
    emails = _box(bars["Emails \u2013 week 12: 6"])
    assert calls[0] + calls[2] == pytest.approx(emails[0], abs=0.011)
    assert calls[1] + calls[3] == pytest.approx(emails[1] + emails[3])
    assert emails[3] == pytest.approx(2 * calls[3], abs=0.02)
    # grouped: the axis reaches the tallest single bar (6), not the stack (9)
    assert _texts(root, "crm-chart-tick") == ["0", "2", "4", "6"]
    stacked = _parse(bar_chart("T", WEEKS, series))
    assert _texts(stacked, "crm-chart-tick")[-1] == "10"


def test_nice_ticks_and_gridlines():
    root = _parse(bar_chart("T", ["a", "b"], [Series("Calls", [87, 40])]))
    assert _texts(root, "crm-chart-tick") == ["0", "20", "40", "60", "80", "100"]
    grid = [line for line in root.iter(f"{SVG}line") if line.get("class") == "crm-chart-grid"]
    ys = [float(line.get("y1")) for line in grid]
    assert len(grid) == 6
    assert ys == sorted(ys, reverse=True)
    gaps = {round(upper - lower, 1) for lower, upper in zip(ys[1:], ys, strict=False)}
    assert len(gaps) == 1
    # the bar stands on the 0 line and its top is 87/80 of the way to the 80 line
    bar = _box(_by_tooltip(root)["Calls \u2013 a: 87"])
    assert bar[1] + bar[3] == pytest.approx(ys[0])
    assert bar[1] == pytest.approx(ys[0] - (ys[0] - ys[4]) * 87 / 80, abs=0.02)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([3], ["0", "1", "2", "3"]),
        ([10], ["0", "2", "4", "6", "8", "10"]),
        ([26], ["0", "10", "20", "30"]),
        ([1234], ["0", "500", "1,000", "1,500"]),
        ([0.3], ["0", "0.1", "0.2", "0.3"]),
        ([1.5], ["0", "0.5", "1", "1.5"]),
    ],
)
def test_tick_steps_are_one_two_or_five_times_a_power_of_ten(values, expected):
    root = _parse(bar_chart("T", ["a"], [Series("s", values)]))
    assert _texts(root, "crm-chart-tick") == expected


def test_stacked_axis_covers_the_stack_total():
    series = [Series("Calls", [50, 10]), Series("Emails", [37, 5])]
    root = _parse(bar_chart("T", ["a", "b"], series))
    assert _texts(root, "crm-chart-tick")[-1] == "100"


def test_legend_only_for_more_than_one_series():
    one = _parse(bar_chart("T", WEEKS, [Series("Calls", [1, 2, 3])]))
    assert _texts(one, "crm-chart-legend") == []
    assert not [r for r in one.iter(f"{SVG}rect") if "swatch" in r.get("class", "")]
    two = _parse(bar_chart("T", WEEKS, [Series("Calls", [1, 2, 3]), Series("Emails", [1, 1, 1])]))
    assert _texts(two, "crm-chart-legend") == ["Calls", "Emails"]
    swatches = [r for r in two.iter(f"{SVG}rect") if "swatch" in r.get("class", "")]
    bars = _bars(two)
    assert [s.get("fill") for s in swatches] == [bars[0].get("fill"), bars[1].get("fill")]


def test_many_categories_label_only_every_kth():
    weeks = [f"W{n:02d}" for n in range(1, 53)]
    root = _parse(bar_chart("T", weeks, [Series("Calls", [1] * 52)]))
    labels = _texts(root, "crm-chart-category")
    assert 4 <= len(labels) <= 12
    step = weeks.index(labels[1])
    assert step > 1
    assert labels == weeks[::step]
    assert len(_bars(root)) == 52


def test_long_labels_are_thinned_out_rather_than_cut():
    days = [f"{n}. Sept." for n in range(10, 22)]  # twelve weeks as German writes them
    root = _parse(bar_chart("T", days, [Series("Calls", [1] * 12)]))
    assert _texts(root, "crm-chart-category") == days[::2]
    few = ["A very long category name indeed", "Another very long category name"]
    root = _parse(bar_chart("T", few, [Series("Calls", [1, 2])], width=200))
    labels = _texts(root, "crm-chart-category")
    assert len(labels) == 2 and all(label.endswith("…") for label in labels)  # both, shortened


def test_few_categories_are_all_labelled():
    root = _parse(bar_chart("T", WEEKS, [Series("Calls", [1, 2, 3])]))
    assert _texts(root, "crm-chart-category") == WEEKS


def test_horizontal_bars_are_proportional_with_values_at_the_end():
    items = [("Lead", 120), ("Prospect", 60), ("Customer", 30), ("Lost", 0)]
    root = _parse(horizontal_bars("Customers by stage", items))
    assert _texts(root, "crm-chart-label") == ["Lead", "Prospect", "Customer", "Lost"]
    assert _texts(root, "crm-chart-value") == ["120", "60", "30", "0"]
    bars = _bars(root)
    assert len(bars) == 3
    boxes = [_box(bar) for bar in bars]
    assert {box[0] for box in boxes} == {boxes[0][0]}
    assert boxes[1][2] == pytest.approx(boxes[0][2] / 2, abs=0.02)
    assert boxes[2][2] == pytest.approx(boxes[0][2] / 4, abs=0.02)
    assert boxes[0][1] < boxes[1][1] < boxes[2][1]
    value_x = [
        float(t.get("x")) for t in root.iter(f"{SVG}text") if t.get("class") == "crm-chart-value"
    ]
    for box, x in zip(boxes, value_x, strict=False):
        assert box[0] + box[2] < x <= box[0] + box[2] + 10
    assert [b.find(f"{SVG}title").text for b in bars] == [
        "Lead: 120",
        "Prospect: 60",
        "Customer: 30",
    ]
    assert root.find(f"{SVG}desc").text == "Lead: 120, Prospect: 60, Customer: 30, Lost: 0."
    view = [float(n) for n in root.get("viewBox").split()]
    assert view[3] >= boxes[2][1] + boxes[2][3]


@pytest.mark.parametrize(
    "chart",
    [
        lambda: bar_chart("Empty", [], []),
        lambda: bar_chart("Empty", WEEKS, []),
        lambda: bar_chart("Empty", WEEKS, [Series("Calls", [0, 0, 0]), Series("Mail", [0, 0, 0])]),
        lambda: horizontal_bars("Empty", []),
    ],
)
def test_empty_data_says_so(chart):
    root = _parse(chart())
    assert root.find(f"{SVG}title").text == "Empty"
    assert _texts(root, "crm-chart-empty") == ["No data yet"]
    assert list(root.iter(f"{SVG}rect")) == []
    _, _, width, height = (float(n) for n in root.get("viewBox").split())
    empty = next(t for t in root.iter(f"{SVG}text") if t.get("class") == "crm-chart-empty")
    assert (float(empty.get("x")), float(empty.get("y"))) == (width / 2, height / 2)
    assert empty.get("text-anchor") == "middle"


def test_negative_values_are_rejected():
    with pytest.raises(ValueError, match=r"-2"):
        bar_chart("T", WEEKS, [Series("Calls", [1, -2, 3])])
    with pytest.raises(ValueError, match=r"-0\.5"):
        horizontal_bars("T", [("Lead", 3), ("Lost", -0.5)])


def test_non_finite_values_are_rejected():
    with pytest.raises(ValueError, match="nan"):
        bar_chart("T", ["a"], [Series("Calls", [float("nan")])])


def test_length_mismatch_is_rejected():
    with pytest.raises(ValueError, match="'Emails' has 2 values for 3 categories"):
        bar_chart("T", WEEKS, [Series("Calls", [1, 2, 3]), Series("Emails", [1, 2])])
    with pytest.raises(ValueError, match="has 1 values for 0 categories"):
        bar_chart("T", [], [Series("Calls", [1])])


def test_text_is_escaped():
    evil = "<script>alert(1)</script>"
    chart = str(bar_chart(evil, [evil, "b"], [Series(evil, [1, 2]), Series("x", [1, 1])]))
    assert "<script>" not in chart
    assert "&lt;script&gt;" in chart
    root = _parse(chart)  # still well-formed XML
    assert root.find(f"{SVG}title").text == evil
    assert _texts(root, "crm-chart-legend")[0] == evil
    assert _texts(root, "crm-chart-category")[0] == evil
    assert f"{evil} \u2013 {evil}: 1" in _by_tooltip(root)
    assert "<script>" not in str(horizontal_bars(evil, [(evil, 1)], description=evil))
    attribute_breaker = _parse(bar_chart('a" onload="x', ["a"], [Series('"', [1])]))
    assert attribute_breaker.get("onload") is None


def test_number_format_is_used_everywhere():
    def german(value: float) -> str:
        return f"{value:,.0f}".replace(",", ".")

    root = _parse(
        bar_chart("T", ["Q1", "Q2"], [Series("Revenue", [1234, 800])], number_format=german)
    )
    assert "Revenue \u2013 Q1: 1.234" in _by_tooltip(root)
    assert _texts(root, "crm-chart-tick") == ["0", "500", "1.000", "1.500"]
    assert "1.234" in root.find(f"{SVG}desc").text
    horizontal = _parse(horizontal_bars("T", [("Won", 4321)], number_format=german))
    assert _texts(horizontal, "crm-chart-value") == ["4.321"]


def test_decimal_values_are_accepted():
    root = _parse(horizontal_bars("Forecast", [("Q1", Decimal("1500.50")), ("Q2", Decimal(750))]))
    assert _texts(root, "crm-chart-value") == ["1,500.5", "750"]


def test_coordinates_have_at_most_two_decimals():
    chart = str(
        bar_chart("T", ["a", "b", "c"], [Series("s", [1 / 3, 2 / 3, 1]), Series("t", [1, 2, 3])])
    )
    root = _parse(chart)
    for element in root.iter():
        for name in ("x", "y", "width", "height", "x1", "x2", "y1", "y2"):
            value = element.get(name)
            if value is not None and value != "100%":
                assert len(value.partition(".")[2]) <= 2, (element.tag, name, value)


@pytest.mark.parametrize(
    ("value", "text"),
    [(0, "0"), (1234, "1,234"), (1234.0, "1,234"), (1234.5, "1,234.5"), (0.25, "0.25")],
)
def test_default_number(value, text):
    assert default_number(value) == text
