from datetime import date, timedelta
from xml.etree import ElementTree

from chartsync.core.plots import Series, bar_chart, column_chart, line_chart

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


def test_line_chart_marks_a_lone_point_so_a_single_day_is_not_an_empty_plot():
    root = parse(line_chart("One day", [Series("syncs", [(date(2026, 11, 1), 501.0)])]))
    assert [c.find(f"{NS}title").text for c in root.findall(f"{NS}circle")] == ["syncs, 2026-11-01: 501"]
    assert "no data yet" not in ElementTree.tostring(root, encoding="unicode")


def test_column_chart_stacks_the_parts_of_each_column_and_says_when_empty():
    svg = column_chart("Outcome by month", [("Jan 2026", [28, 2, 1]), ("Feb 2026", [28, 0, 0])],
                       ["success", "failed", "skipped"], x_label="Period")
    root = parse(svg)
    bars = [r for r in root.findall(f"{NS}rect") if r.find(f"{NS}title") is not None]
    assert [b.find(f"{NS}title").text for b in bars] == [
        "Jan 2026: 28 success", "Jan 2026: 2 failed", "Jan 2026: 1 skipped", "Feb 2026: 28 success"]
    heights = [float(b.get("height")) for b in bars]
    assert heights[0] == heights[3] and heights[0] == 14 * heights[1]
    assert "Jan 2026" in svg and "Period" in svg and "no data yet" not in svg
    zero = parse(column_chart("Coverage", [("Jan 2026", [50.0]), ("Feb 2026", [0.0])], ["stored"], unit="%"))
    assert [t.text for t in zero.iter(f"{NS}title")][-1] == "Feb 2026: 0%"  # a hairline, not a gap
    for empty in ([], [("Jan 2026", [0, 0, 0])]):
        assert "nothing synced" in column_chart("Outcome", empty, ["success"], empty_text="nothing synced")
