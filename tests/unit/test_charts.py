"""The report trend chart: well-formed, accessible SVG with escaped text, scaled axes and gaps."""

from datetime import date, timedelta
from xml.etree import ElementTree

import pytest

from taskops.charts import DayPoint, duration_trend_svg, nice_ceiling

SVG = "{http://www.w3.org/2000/svg}"
START = date(2026, 3, 1)


def _days(values):
    """DayPoints from (ended, succeeded, median, max) tuples, one per day; None: a day without runs."""
    return [DayPoint(START + timedelta(days=i), *v) if v else DayPoint(START + timedelta(days=i))
            for i, v in enumerate(values)]


def _parse(svg) -> ElementTree.Element:
    return ElementTree.fromstring(str(svg))


def test_the_chart_is_well_formed_svg_with_a_title_a_description_and_axis_labels():
    root = _parse(duration_trend_svg(_days([(2, 2, 3.0, 4.0), (1, 0, 9.0, 9.0)]), title="Sales",
                                     chart_id="sales"))

    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    assert (root.get("aria-labelledby"), root.get("aria-describedby")) == ("sales-title", "sales-desc")
    assert root.find(f"{SVG}title").text == "Sales"
    desc = root.find(f"{SVG}desc").text
    assert "2 days from 2026-03-01 to 2026-03-02: 3 runs ended, 2 succeeded (67 %)" in desc
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "duration (s)" in texts and "success rate" in texts
    assert "0 %" in texts and "100 %" in texts
    assert "01 Mar" in texts and "02 Mar" in texts


def test_hostile_text_is_escaped_not_markup():
    title = '</title><script>alert("x")</script>&'
    svg = str(duration_trend_svg(_days([(1, 1, 1.0, 1.0)]), title=title,
                                 chart_id='x" onload="alert(1)'))

    assert "<script>" not in svg
    root = _parse(svg)
    assert root.find(f"{SVG}title").text == title  # shown as text, exactly
    assert root.get("aria-labelledby") == "xonloadalert1-title"
    assert not [el for el in root.iter() if any(name.startswith("on") for name in el.attrib)]


def test_a_day_without_runs_breaks_the_duration_lines():
    root = _parse(duration_trend_svg(_days([(1, 1, 2.0, 3.0), (1, 1, 2.0, 3.0), None,
                                            (1, 1, 4.0, 5.0), (1, 1, 4.0, 5.0)]), title="t"))

    median = root.find(f"{SVG}g[@data-series='median duration']")
    lines = median.findall(f"{SVG}polyline")
    assert len(lines) == 2
    assert all(len(line.get("points").split()) == 2 for line in lines)


def test_a_lone_day_is_a_dot_and_the_axis_switches_to_minutes_for_long_runs():
    root = _parse(duration_trend_svg(_days([None, (1, 1, 600.0, 1500.0), None]), title="t"))

    median = root.find(f"{SVG}g[@data-series='median duration']")
    assert median.find(f"{SVG}circle") is not None and median.find(f"{SVG}polyline") is None
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "duration (min)" in texts
    assert "25" in texts  # 1500 s = 25 min, the top tick


def test_each_day_has_a_tooltip_with_its_numbers():
    root = _parse(duration_trend_svg(_days([(4, 3, 2.5, 7.0), None]), title="t"))

    tips = [r.find(f"{SVG}title").text for r in root.iter(f"{SVG}rect")
            if r.find(f"{SVG}title") is not None]
    assert tips == ["2026-03-01: 4 ended, 3 succeeded (75 %), median 2.5 s, max 7 s",
                    "2026-03-02: no ended runs"]


def test_success_rate_bars_are_scaled_to_the_plot_height():
    root = _parse(duration_trend_svg(_days([(4, 2, 1.0, 1.0), (2, 2, 1.0, 1.0), (3, 0, 1.0, 1.0)]),
                                     title="t"))

    bars = {float(r.get("data-rate")): r for r in root.iter(f"{SVG}rect") if r.get("data-rate")}
    assert sorted(bars) == [0.0, 0.5, 1.0]
    assert float(bars[0.5].get("height")) * 2 == pytest.approx(float(bars[1.0].get("height")), abs=0.2)
    assert bars[0.0].get("fill") != bars[1.0].get("fill")  # all failed: a mark of its own


def test_no_runs_at_all_says_so():
    root = _parse(duration_trend_svg(_days([None] * 30), title="t"))

    assert "No ended runs in these days." in [t.text for t in root.iter(f"{SVG}text")]


@pytest.mark.parametrize(("value", "ceiling"), [(0, 1), (0.3, 0.5), (1, 1), (1.2, 2), (2.2, 2.5),
                                                (7, 10), (48, 50), (120, 200), (999, 1000)])
def test_nice_ceiling(value, ceiling):
    assert nice_ceiling(value) == pytest.approx(ceiling)
