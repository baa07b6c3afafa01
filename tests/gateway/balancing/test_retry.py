"""gateway.retry.may_retry."""

import pytest

from gateway.retry import may_retry


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"])
def test_idempotent_methods_retry_after_the_request_was_sent(method):
    assert may_retry(method, True, 1, 1)


@pytest.mark.parametrize("method", ["POST", "PATCH", "CONNECT", "get"])
def test_other_methods_retry_only_when_nothing_was_sent(method):
    assert not may_retry(method, True, 1, 3)
    assert may_retry(method, False, 1, 3)


def test_attempts_are_bounded_by_retries():
    assert [may_retry("GET", True, attempt, 2) for attempt in (1, 2, 3)] == [True, True, False]
    assert not may_retry("GET", False, 1, 0)


def test_a_consumed_body_is_never_replayed():
    assert not may_retry("PUT", True, 1, 1, body_replayable=False)
    assert may_retry("PUT", False, 1, 1, body_replayable=False)
