"""One look for every chart of the workbench (Dashboard and Models tabs): a plotly template and
the helpers that keep figures readable for people who use them all day.

- `figure(title)`: a figure on the Warden template (white, light grid, one colour order, legend
  above the plot, fixed height), so every chart reads the same way;
- `category_title(policy, id, lang)`: the policy's human title of a category ("Scams and fraud",
  not `scam_fraud`; pass `policy.in_language(lang)` for other languages);
- `fit_days(...)`: a date axis ranged to the days that hold data (half a day of padding), so
  one day of data is not lost in a month of zeros and never zooms into milliseconds;
- `duration_unit(hours, lang)`: backlog ages in minutes, hours or days, whichever fits;
- `no_data(fig, text)`: an empty chart says so in words instead of drawing empty axes.

Text the workbench writes (titles, axes, legends, empty states) comes from app/locales through
`translate(key, lang)` with the request's language; every helper takes `lang` (None: English).
Labels are data (reviewer names, category ids): plotly reads a few HTML tags in text, so
`plain` strips markup characters before anything reaches a figure.

    fig = figure("Volume per day"); fig.add_bar(x=days, y=n); fit_days(fig, days)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta

import plotly.graph_objects as go

from app.i18n import translate
from storage.policy import Policy

HEIGHT = 340
DAY_MS = 86_400_000
COLOURS = ["#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04", "#64748b"]
SAFE_TITLE = translate("charts.safe", "en")
STATUSES = ("queued", "scored", "in_review", "escalated")

TEMPLATE = go.layout.Template(
    layout=go.Layout(
        font=dict(family="Inter, system-ui, sans-serif", size=12, color="#1f2937"),
        title=dict(font=dict(size=15), x=0.01, xanchor="left"),
        paper_bgcolor="white",
        plot_bgcolor="white",
        colorway=COLOURS,
        height=HEIGHT,
        margin=dict(l=56, r=16, t=64, b=48),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1.0),
        xaxis=dict(gridcolor="#e5e7eb", linecolor="#9ca3af", zeroline=False, automargin=True),
        yaxis=dict(gridcolor="#e5e7eb", linecolor="#9ca3af", zeroline=False, automargin=True),
        hoverlabel=dict(font_size=12),
    )
)

_MARKUP = re.compile(r"[<>&]")


def plain(label: object) -> str:
    """Plotly understands a few HTML-like tags in labels: strip markup characters."""
    return _MARKUP.sub("", str(label))


def figure(title: str, **layout: object) -> go.Figure:
    """An empty figure on the Warden template."""
    fig = go.Figure()
    fig.update_layout(template=TEMPLATE, title=title, **layout)
    return fig


def category_title(policy: Policy, category_id: str, lang: str | None = None) -> str:
    """The policy's title of a category; `safe` and ids the policy no longer has read as such."""
    if category_id == "safe":
        return translate("charts.safe", lang)
    try:
        return plain(policy.category(category_id).title)
    except (KeyError, ValueError, LookupError):
        return plain(category_id)


def category_titles(policy: Policy, ids: Iterable[str], lang: str | None = None) -> list[str]:
    return [category_title(policy, c, lang) for c in ids]


def status_title(status: str, lang: str | None = None) -> str:
    return translate(f"charts.status.{status}", lang) if status in STATUSES else plain(status)


def _as_day(value: object) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return datetime.fromisoformat(str(value)).date()


def day_span(days: Sequence[object]) -> tuple[str, str] | None:
    """The date-axis range of `days`: first day - 12 h to last day + 12 h (ISO strings)."""
    if len(days) == 0:
        return None
    parsed = sorted(_as_day(d) for d in days)
    start = datetime.combine(parsed[0], datetime.min.time()) - timedelta(hours=12)
    end = datetime.combine(parsed[-1], datetime.min.time()) + timedelta(hours=12)
    return start.isoformat(), end.isoformat()


def fit_days(fig: go.Figure, days: Sequence[object], lang: str | None = None) -> go.Figure:
    """Range a date x axis to the days with data, one tick per day when the span is short; the
    day labels are written the way `lang` writes dates ("Dec 05", "12월 5일", "12月5日")."""
    span = day_span(days)
    if span is None:
        return fig
    n_days = (_as_day(max(days, key=_as_day)) - _as_day(min(days, key=_as_day))).days + 1
    fig.update_xaxes(
        type="date",
        range=list(span),
        tickformat=translate("charts.day_format", lang),
        # Whole days; plotly would otherwise tick hours (or milliseconds) around one day.
        dtick=DAY_MS * max(1, n_days // 10),
    )
    # A bar on a date axis is as wide as the smallest gap between its x values, so a single
    # day's bar would be one millisecond wide (invisible): make day bars most of a day wide.
    fig.update_traces(width=0.7 * DAY_MS, selector=dict(type="bar"))
    return fig


def active_days(frame, columns: Sequence[str], day: str = "day"):
    """The rows of a per-day frame from the first to the last day any of `columns` is non-zero
    (quiet days in between stay: a gap is information, a month of zeros around it is not)."""
    busy = frame[list(columns)].sum(axis=1) > 0
    if not busy.any():
        return frame.iloc[0:0]
    idx = busy[busy].index
    return frame.loc[idx[0] : idx[-1]]


def duration_unit(hours: Iterable[float], lang: str | None = None) -> tuple[float, str]:
    """(divisor, unit in `lang`) to show ages given in hours: minutes under 2 h, days from 2
    days."""
    top = max((h for h in hours if h == h), default=0.0)
    if top < 2:
        return 1 / 60, translate("charts.units.minutes", lang)
    if top < 48:
        return 1.0, translate("charts.units.hours", lang)
    return 24.0, translate("charts.units.days", lang)


def no_data(fig: go.Figure, text: str) -> go.Figure:
    """Say in words that a chart has nothing to show yet, with bare axes hidden."""
    fig.add_annotation(
        text=plain(text),
        xref="paper",
        yref="paper",
        x=0.5,
        y=0.5,
        showarrow=False,
        font=dict(size=14, color="#6b7280"),
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig
