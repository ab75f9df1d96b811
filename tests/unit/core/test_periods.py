from datetime import UTC, date, datetime, timedelta

from chartsync.core import calendar, periods


def test_buckets_follow_the_window():
    assert [periods.bucket_size(d) for d in (7, 30, 90, 365)] == ["day", "day", "week", "month"]
    day = date(2026, 6, 17)  # a Wednesday
    assert periods.bucket_start(day, "week") == date(2026, 6, 15)
    assert periods.bucket_start(day, "month") == date(2026, 6, 1)
    assert periods.bucket_label(date(2026, 6, 1), "month") == "Jun 2026"


def test_percent_sum_and_mean_by_bucket():
    rows = [(date(2026, 5, 31), 1, 1), (date(2026, 6, 1), 1, 1), (date(2026, 6, 2), 0, 1), (date(2026, 7, 1), 0, 0)]
    assert periods.percent_by_bucket(rows) == [(date(2026, 5, 1), 100.0), (date(2026, 6, 1), 50.0)]
    assert periods.sum_by_bucket([(date(2026, 6, 1), [1, 0]), (date(2026, 6, 9), [0, 1])]) == [
        (date(2026, 6, 1), [1.0, 1.0])]
    assert periods.mean_by_bucket([(date(2026, 6, 1), 10.0, 1), (date(2026, 6, 2), 40.0, 2),
                                   (date(2026, 6, 3), 99.0, 0)]) == [(date(2026, 6, 1), 30.0)]


def test_catchup_progress_rate_and_eta():
    now = datetime(2026, 6, 15, 12, tzinfo=UTC)
    running = periods.CatchupProgress(done=165, total=365, recent=50, now=now)
    assert (running.remaining, running.running, running.rate_per_hour) == (200, True, 50.0)
    assert running.eta == now + timedelta(hours=4)
    stalled = periods.CatchupProgress(done=165, total=365, recent=0, now=now)
    assert (stalled.running, stalled.eta) == (False, None)
    done = periods.CatchupProgress(done=366, total=365, recent=3, now=now)
    assert (done.complete, done.running, done.eta, done.percent) == (True, False, None, 100.0)


def test_freshness_counts_from_the_end_of_the_period():
    published = calendar.published_at(calendar.Frequency.WEEKLY, date(2026, 6, 5))
    assert published == datetime(2026, 6, 12, tzinfo=UTC)
    assert periods.lag_seconds(published + timedelta(hours=3), published) == 3 * 3600
    assert periods.lag_seconds(published - timedelta(hours=1), published) == 0.0
    assert periods.lag_seconds(None, published) is None


def test_counting_periods_agrees_with_listing_them():
    first = date(2025, 11, 27)
    for freq in (calendar.Frequency.DAILY, calendar.Frequency.WEEKLY, calendar.Frequency.MONTHLY):
        for last in (first - timedelta(days=1), first, date(2026, 2, 28), date(2026, 11, 26)):
            for weekday in (None, 0, 4):
                assert calendar.count_periods_between(freq, first, last, weekday) == len(
                    calendar.periods_between(freq, first, last, weekday)), (freq, last, weekday)
