"""Token bucket, circuit breaker and Retry-After parsing (pure, fake time)."""

from __future__ import annotations

from datetime import timedelta
from email.utils import format_datetime

import pytest

from core.clock import utc_now
from sources import CircuitBreaker, TokenBucket, parse_retry_after


def test_token_bucket_first_call_allowed_then_waits_interval() -> None:
    bucket = TokenBucket(30.0)
    assert bucket.try_acquire(100.0)
    assert not bucket.try_acquire(110.0)
    assert bucket.seconds_until_token(110.0) == pytest.approx(20.0)
    assert bucket.try_acquire(130.0)


def test_token_bucket_burst_capacity() -> None:
    bucket = TokenBucket(10.0, capacity=3)
    assert [bucket.try_acquire(0.0) for _ in range(4)] == [True, True, True, False]


def test_token_bucket_zero_interval_never_limits() -> None:
    bucket = TokenBucket(0.0)
    assert all(bucket.try_acquire(0.0) for _ in range(100))


def test_breaker_opens_after_threshold_consecutive_failures() -> None:
    breaker = CircuitBreaker(failure_threshold=3, base_backoff_s=10.0)
    for _ in range(2):
        breaker.record_failure(0.0)
    assert breaker.state == "closed" and breaker.allow(0.0)
    breaker.record_failure(0.0)
    assert breaker.reopens_at == 10.0 and not breaker.allow(5.0)


def test_breaker_success_resets_failure_streak() -> None:
    breaker = CircuitBreaker(failure_threshold=2)
    breaker.record_failure(0.0)
    breaker.record_success()
    breaker.record_failure(1.0)
    assert breaker.state == "closed"


def test_breaker_half_open_allows_one_probe_after_backoff() -> None:
    breaker = CircuitBreaker(failure_threshold=1, base_backoff_s=10.0)
    breaker.record_failure(0.0)
    assert breaker.allow(10.0) and breaker.state == "half_open"
    assert not breaker.allow(10.0)  # a second caller waits for the probe's outcome


def test_breaker_failed_probe_doubles_backoff_up_to_cap() -> None:
    breaker = CircuitBreaker(failure_threshold=1, base_backoff_s=10.0, max_backoff_s=25.0)
    breaker.record_failure(0.0)
    reopen_times = []
    now = 0.0
    for _ in range(3):
        now = breaker.reopens_at or now
        assert breaker.allow(now)
        breaker.record_failure(now)
        reopen_times.append((breaker.reopens_at or 0.0) - now)
    assert reopen_times == [20.0, 25.0, 25.0]


def test_breaker_successful_probe_closes() -> None:
    breaker = CircuitBreaker(failure_threshold=1, base_backoff_s=10.0)
    breaker.record_failure(0.0)
    assert breaker.allow(10.0)
    breaker.record_success()
    assert breaker.state == "closed" and breaker.consecutive_failures == 0


def test_breaker_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker(failure_threshold=0)


@pytest.mark.parametrize(
    ("header", "expected"),
    [("120", 120.0), (" 3 ", 3.0), ("-5", 0.0), ("999999", 3600.0), ("soon", None), ("", None), (None, None)],
)
def test_retry_after_seconds_form(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_retry_after_http_date_form() -> None:
    header = format_datetime(utc_now() + timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(header) == pytest.approx(90.0, abs=2.0)
