import pytest

from chartsync.core.trends import trend, weeks_on_chart


@pytest.mark.parametrize(
    ("position", "previous", "state", "expected"),
    [
        (5, None, "NEW", "new"),
        (5, None, None, "new"),
        (5, None, "RE_ENTRY", "re-entry"),
        (3, 7, "UP", "up"),
        (9, 7, None, "down"),
        (7, 7, None, "same"),
    ],
)
def test_trend(position, previous, state, expected):
    assert trend(position, previous, state) == expected


def test_weeks_on_chart_from_days_and_weeks():
    assert weeks_on_chart(1, "DOC") == 1
    assert weeks_on_chart(8, "DOC") == 2
    assert weeks_on_chart(14, "DOC") == 2
    assert weeks_on_chart(3, "WOC") == 3
    assert weeks_on_chart(None, "WOC") is None
