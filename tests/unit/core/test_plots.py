from datetime import date, timedelta
from xml.etree import ElementTree

from chartsync.core.plots import Series, bar_chart, line_chart

NS = "{http://www.w3.org/2000/svg}"


def parse(svg: str):
    return ElementTree.fromstring(svg)


def test_line_chart_is_valid_svg_with_one_path_per_series():
    days = [date(2026, 11, 1) + timedelta(days=i) for i in range(10)]
    svg = line_chart("Success rate", [Series("success %", [(d, 90 + i % 3) for i, d in enumerate(days)]),
                                      Series("failed", [(d, i) for i, d in enumerate(days)])], unit="%")
    root = parse(svg)
    assert root.find(f"{NS}title").text == "Success rate"
    assert len(root.findall(f"{NS}polyline")) == 2
    assert "2026-11-01" in svg and "2026-11-10" in svg


def test_line_chart_escapes_labels_and_handles_no_data():
    svg = line_chart("<script>", [Series("a&b", [])])
    root = parse(svg)
    assert "no data yet" in svg and "<script>" not in svg
    assert root.find(f"{NS}title").text == "<script>"


def test_bar_chart_scales_bars_to_the_largest_value():
    root = parse(bar_chart("Slowest charts", [("chart-a", 40.0), ("chart-b", 10.0)], unit=" s"))
    widths = [float(r.get("width")) for r in root.findall(f"{NS}rect")]
    assert widths[0] == 4 * widths[1]
