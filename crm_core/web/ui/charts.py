"""Small server-side SVG charts for the web UI (and for plugins), without a chart library.

The functions return :class:`markupsafe.Markup`, so a Jinja template can insert
the chart as is::

    from crm_core.web.ui.charts import Series, bar_chart, horizontal_bars

    chart = bar_chart(
        "Interactions per week",
        ["week 12", "week 13"],
        [Series("Calls", [3, 5]), Series("Emails", [7, 2])],
    )
    stages = horizontal_bars("Customers by stage", [("Lead", 12), ("Customer", 5)])

    {{ chart }}   {# in the template: no |safe needed #}

The charts need neither JavaScript nor CSS: colours are attributes (a
colour-blind-safe Okabe-Ito palette), the SVG scales to its container
(``width="100%"`` plus a ``viewBox``), and it is accessible: ``role="img"`` with
a ``<title>`` and a ``<desc>`` (the given description or a short generated
summary), and every bar has a native tooltip ("series - category: value", with an en dash).
Pages may restyle bars through the classes ``crm-chart-series-N``.

Titles, categories and series labels are shown as the caller gives them (translated by
the caller); the texts made here (the empty chart's, the generated summaries) are in the
request's language (Flask-Babel; English outside a request).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from uuid import uuid4

from flask_babel import gettext, lazy_gettext, ngettext
from markupsafe import Markup, escape

#: Okabe-Ito colours, most distinguishable first, then Paul Tol's wine and teal, so that
#: core's ten channels each get a colour of their own (yellow last: low contrast on white).
PALETTE = (
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#882255",
    "#44AA99", "#F0E442",
)
TEXT_COLOUR = "#1d2330"
GRID_COLOUR = "#d9dde3"
AXIS_COLOUR = "#8a93a3"
EMPTY_TEXT = lazy_gettext("No data yet")
#: The description of an empty chart (unless the caller gives one).
EMPTY_DESCRIPTION = lazy_gettext("No data yet.")
DASH = " \u2013 "  # en dash between series and category in tooltips
FONT = 12
CHAR_WIDTH = 7.0  # rough width of one character at FONT px, for layout estimates
MAX_CATEGORY_LABELS = 12
MIN_CATEGORY_LABELS = 4  # long labels are thinned out down to this many, then shortened
ROW_HEIGHT = 28
BAR_THICKNESS = 18


@dataclass(frozen=True)
class Series:
    """One named series of values, one value per category."""

    label: str
    values: Sequence[float]


def default_number(value: float) -> str:
    """Format with thousands separators: ``1,234`` for integers, ``1,234.5`` otherwise."""
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def bar_chart(
    title: str,
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    stacked: bool = True,
    width: int = 640,
    height: int = 260,
    description: str = "",
    number_format: Callable[[float], str] = default_number,
) -> Markup:
    """Vertical bars: one group (or stack) per category, one colour per series, a legend."""
    rows = [_floats(one, len(categories)) for one in series]
    if not categories or not any(v > 0 for row in rows for v in row):
        return _empty_chart(title, description, width, height)
    labels = [one.label for one in series]
    desc = description or _bar_summary(categories, labels, rows, number_format)
    legend, legend_height = _legend(labels, width) if len(series) > 1 else ("", 0)
    columns = list(zip(*rows, strict=True))  # the values of each category
    integers = all(v.is_integer() for row in rows for v in row)
    peak = max(sum(column) if stacked else max(column) for column in columns)
    ticks = _nice_ticks(peak, integers=integers)
    tick_labels = [number_format(t) for t in ticks]
    left = max(len(label) for label in tick_labels) * CHAR_WIDTH + 10
    top = legend_height + 10
    # Room on the right for half of the last category label, which is centred on its bar.
    plot = _Plot(left, top, max(width - 24 - left, 1), max(height - top - 24, 1))
    scale = plot.height / ticks[-1]
    parts = [legend, _grid(plot, ticks, tick_labels, scale)]
    band = plot.width / len(categories)
    arrange = _stack if stacked else _group
    for index, (category, column) in enumerate(zip(categories, columns, strict=True)):
        boxes = arrange(plot.left + index * band, band, column, plot, scale)
        bars = zip(labels, column, boxes, strict=True)
        for n, (label, value, (x, bar_width, y, bottom)) in enumerate(bars):
            if value > 0:
                tip = f"{label}{DASH}{category}: {number_format(value)}"
                parts.append(_bar(x, y, bar_width, bottom - y, n, tip))
    parts.append(_category_labels(categories, plot, band))
    return _svg(title, desc, width, height, parts)


def horizontal_bars(
    title: str,
    items: Sequence[tuple[str, float]],
    *,
    width: int = 640,
    description: str = "",
    number_format: Callable[[float], str] = default_number,
) -> Markup:
    """One labelled horizontal bar per item, its value at the bar's end (funnels, stages)."""
    items = [(label, _finite(value, label)) for label, value in items]
    if not items:
        return _empty_chart(title, description, width, 120)
    height = 16 + len(items) * ROW_HEIGHT
    desc = description or _items_summary(items, number_format)
    values = [number_format(value) for _, value in items]
    label_width = min(max(len(label) for label, _ in items) * CHAR_WIDTH + 16, width * 0.4)
    value_width = max(len(text) for text in values) * CHAR_WIDTH + 12
    bar_room = max(width - label_width - value_width - 8, 1)
    largest = max(value for _, value in items)
    scale = bar_room / largest if largest > 0 else 0.0
    parts = []
    for index, ((label, value), text) in enumerate(zip(items, values, strict=True)):
        top = 8 + index * ROW_HEIGHT + (ROW_HEIGHT - BAR_THICKNESS) / 2
        middle = top + BAR_THICKNESS / 2
        length = value * scale
        shown = _fit(label, label_width - 16)
        parts.append(_text(label_width - 8, middle, shown, "crm-chart-label", anchor="end"))
        if value > 0:
            parts.append(_bar(label_width, top, length, BAR_THICKNESS, 0, f"{label}: {text}"))
        parts.append(_text(label_width + length + 6, middle, text, "crm-chart-value"))
    return _svg(title, desc, width, height, parts)


@dataclass(frozen=True)
class _Plot:
    """The plotting area of a bar chart, in SVG units."""

    left: float
    top: float
    width: float
    height: float

    @property
    def baseline(self) -> float:
        """The y of the value 0."""
        return self.top + self.height


def _floats(series: Series, expected: int) -> list[float]:
    """The values of ``series`` as floats, checked for count and sign."""
    if len(series.values) != expected:
        raise ValueError(
            f"series {series.label!r} has {len(series.values)} values for {expected} categories"
        )
    return [_finite(value, series.label) for value in series.values]


def _finite(value: float, label: str) -> float:
    """``value`` as a float; negative and non-finite values raise ValueError naming it."""
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"value {value!r} of {label!r} is not a finite number")
    if number < 0:
        raise ValueError(f"negative value {value!r} of {label!r} is not supported")
    return number


def _nice_ticks(maximum: float, *, integers: bool = False) -> list[float]:
    """Ticks from 0 past ``maximum`` in steps of 1, 2 or 5 times 10^k (4 to 6 ticks).

    With integer data the step is at least 1, so tiny counts get no fractional ticks.
    """
    raw = maximum / 5
    base = 10 ** math.floor(math.log10(raw))
    step = next(m * base for m in (1, 2, 5, 10) if m * base >= raw * (1 - 1e-9))
    if integers:
        step = max(step, 1)
    count = math.ceil(maximum / step - 1e-9)
    return [round(i * step, 10) for i in range(count + 1)]


def _stack(
    x: float, band: float, values: Sequence[float], plot: _Plot, scale: float
) -> list[tuple[float, float, float, float]]:
    """(x, width, top, bottom) of each series' segment in one stacked bar."""
    bar_width = band * 0.7
    boxes, below = [], 0.0
    for value in values:
        bottom = _round(plot.baseline - below * scale)
        below += value
        top = _round(plot.baseline - below * scale)
        boxes.append((x + (band - bar_width) / 2, bar_width, top, bottom))
    return boxes


def _group(
    x: float, band: float, values: Sequence[float], plot: _Plot, scale: float
) -> list[tuple[float, float, float, float]]:
    """(x, width, top, bottom) of each series' bar, side by side within one category."""
    group_width = band * 0.8
    bar_width = group_width / len(values)
    start = x + (band - group_width) / 2
    bottom = _round(plot.baseline)
    return [
        (start + n * bar_width, bar_width, _round(plot.baseline - value * scale), bottom)
        for n, value in enumerate(values)
    ]


def _grid(plot: _Plot, ticks: Sequence[float], labels: Sequence[str], scale: float) -> str:
    """Horizontal gridlines with their value labels, and the baseline."""
    parts = []
    for tick, label in zip(ticks, labels, strict=True):
        y = plot.baseline - tick * scale
        colour = AXIS_COLOUR if tick == 0 else GRID_COLOUR
        parts.append(
            f'<line class="crm-chart-grid" x1="{_n(plot.left)}" y1="{_n(y)}" '
            f'x2="{_n(plot.left + plot.width)}" y2="{_n(y)}" stroke="{colour}"/>'
        )
        parts.append(_text(plot.left - 6, y, label, "crm-chart-tick", anchor="end"))
    return "".join(parts)


def _category_labels(categories: Sequence[str], plot: _Plot, band: float) -> str:
    """Labels under the bars; with many categories, or long labels, only every k-th one."""
    every = math.ceil(len(categories) / MAX_CATEGORY_LABELS)
    longest = max(len(category) for category in categories) * CHAR_WIDTH
    # A language's longer names ("14. Sept.") rather leave out every other label than cut each.
    while every * band < longest:
        if math.ceil(len(categories) / (every + 1)) < MIN_CATEGORY_LABELS:
            break
        every += 1
    y = plot.baseline + 14
    return "".join(
        _text(
            plot.left + (i + 0.5) * band, y, _fit(categories[i], band * every), "crm-chart-category"
        )
        for i in range(0, len(categories), every)
    )


def _legend(labels: Sequence[str], width: int) -> tuple[str, float]:
    """Swatches with the series labels, wrapped into rows; the markup and its height."""
    parts, x, y = [], 8.0, 8.0
    for n, full_label in enumerate(labels):
        label = _fit(full_label, width - 34)
        item_width = 14 + 6 + len(label) * CHAR_WIDTH + 16
        if x > 8 and x + item_width > width:
            x, y = 8.0, y + 18
        parts.append(
            f'<rect class="crm-chart-swatch crm-chart-swatch-{n}" x="{_n(x)}" y="{_n(y)}" '
            f'width="12" height="12" fill="{_colour(n)}"/>'
        )
        parts.append(_text(x + 18, y + 6, label, "crm-chart-legend"))
        x += item_width
    return "".join(parts), y + 12


def _bar(x: float, y: float, width: float, height: float, series: int, tooltip: str) -> str:
    """One bar with its native tooltip."""
    return (
        f'<rect class="crm-chart-series-{series}" x="{_n(x)}" y="{_n(y)}" '
        f'width="{_n(width)}" height="{_n(height)}" fill="{_colour(series)}">'
        f"<title>{escape(tooltip)}</title></rect>"
    )


def _text(x: float, y: float, text: str, css_class: str, *, anchor: str = "") -> str:
    """A text element vertically centred on ``y``."""
    anchor_attr = f' text-anchor="{anchor}"' if anchor else ""
    return (
        f'<text class="{css_class}" x="{_n(x)}" y="{_n(y)}" dy="0.35em"{anchor_attr} '
        f'fill="{TEXT_COLOUR}">{escape(text)}</text>'
    )


def _svg(title: str, desc: str, width: int, height: int, parts: Sequence[str]) -> Markup:
    """The outer ``<svg>`` with accessible title and description."""
    chart_id = f"crm-chart-{uuid4().hex[:12]}"
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc" viewBox="0 0 {width} {height}" '
        f'width="100%" preserveAspectRatio="xMinYMin meet" class="crm-chart" '
        f'font-family="system-ui, sans-serif" font-size="{FONT}">'
        f'<title id="{chart_id}-title">{escape(title)}</title>'
        f'<desc id="{chart_id}-desc">{escape(desc)}</desc>{"".join(parts)}</svg>'
    )


def _empty_chart(title: str, description: str, width: int, height: int) -> Markup:
    """A chart-sized SVG saying that there is nothing to show yet."""
    text = _text(width / 2, height / 2, str(EMPTY_TEXT), "crm-chart-empty", anchor="middle")
    return _svg(title, description or str(EMPTY_DESCRIPTION), width, height, [text])


def _bar_summary(
    categories: Sequence[str],
    labels: Sequence[str],
    rows: Sequence[Sequence[float]],
    number_format: Callable[[float], str],
) -> str:
    """A short plain-text account of the data for screen readers."""
    many = len(categories) > 6
    sentences = []
    if many:
        sentences.append(ngettext(
            "%(num)d category, %(first)s to %(last)s.",
            "%(num)d categories, %(first)s to %(last)s.",
            len(categories), first=categories[0], last=categories[-1],
        ))
    for label, row in zip(labels, rows, strict=True):
        if many:
            peak, where = max(zip(row, categories, strict=True), key=lambda pair: pair[0])
            sentences.append(gettext(
                "%(series)s: %(total)s in total, most %(peak)s in %(category)s.",
                series=label, total=number_format(sum(row)), peak=number_format(peak),
                category=where,
            ))
        else:
            listed = ", ".join(
                gettext("%(value)s in %(category)s", value=number_format(v), category=c)
                for v, c in zip(row, categories, strict=True)
            )
            sentences.append(gettext("%(series)s: %(values)s.", series=label, values=listed))
    return " ".join(sentences)


def _items_summary(
    items: Sequence[tuple[str, float]], number_format: Callable[[float], str]
) -> str:
    """``Lead: 12, Customer: 5`` (the first 12 items, then how many more)."""
    text = ", ".join(f"{label}: {number_format(value)}" for label, value in items[:12])
    more = len(items) - 12
    if more > 0:
        return gettext("%(items)s, and %(more)s more.", items=text, more=number_format(more))
    return f"{text}."


def _fit(text: str, room: float) -> str:
    """``text`` shortened with an ellipsis to fit ``room`` units."""
    limit = max(int(room // CHAR_WIDTH), 1)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _colour(series: int) -> str:
    """The palette colour of the ``series``-th series (cycling)."""
    return PALETTE[series % len(PALETTE)]


def _round(value: float) -> float:
    """Round a coordinate to 2 decimals."""
    return round(value, 2)


def _n(value: float) -> str:
    """A compact coordinate: at most 2 decimals, no trailing zeros."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text
