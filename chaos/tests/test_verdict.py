"""The verdict's counting: lost, duplicated, redelivered, errors and recovery."""

from __future__ import annotations

from chaos.verdict import Fault, forbidden_errors, http_errors, recovery_time, tally


def test_one_effect_per_key_passes() -> None:
    result = tally(["o1", "o2"], [("o1", "d1"), ("o2", "d2")])
    assert result.ok
    assert (result.lost, result.duplicated, result.redelivered) == ([], [], 0)


def test_a_key_without_effect_is_lost() -> None:
    result = tally(["o1", "o2"], [("o1", "d1")])
    assert not result.ok
    assert result.lost == ["o2"]


def test_two_distinct_effects_for_one_key_are_a_duplicate() -> None:
    result = tally(["o1"], [("o1", "d1"), ("o1", "d2")])
    assert result.duplicated == ["o1"]
    assert not result.ok


def test_the_same_effect_received_twice_is_a_redelivery_not_a_duplicate() -> None:
    result = tally(["o1"], [("o1", "d1"), ("o1", "d1"), ("o1", "d1")])
    assert result.ok
    assert result.redelivered == 2


def test_keys_expected_twice_need_two_effects() -> None:
    # A user with two webhook endpoints: one order, two deliveries.
    result = tally(["o1", "o1"], [("o1", "d1")])
    assert result.lost == ["o1"]
    assert tally(["o1", "o1"], [("o1", "d1"), ("o1", "d2")]).ok


def test_an_effect_for_an_order_never_accepted_is_unexpected() -> None:
    result = tally(["o1"], [("o1", "d1"), ("o9", "d9")])
    assert result.unexpected == ["o9"]
    assert not result.ok


def test_an_order_whose_answer_was_lost_may_have_one_effect() -> None:
    assert tally([], [("o9", "d9")], ignore=["o9"]).ok
    assert tally([], [("o9", "d9"), ("o9", "d8")], ignore=["o9"]).unexpected == ["o9"]


def test_http_errors_are_counted_by_status_and_only_503_is_allowed() -> None:
    statuses = [201, 201, 503, 503, 500, 0]
    assert http_errors(statuses) == {"0": 1, "500": 1, "503": 2}
    assert forbidden_errors(statuses) == 2
    assert forbidden_errors([201, 503]) == 0


def test_recovery_is_measured_from_the_fault_end_to_the_backlog_level_before_it() -> None:
    samples = [(0.0, 5), (10.0, 6), (12.0, 400), (20.0, 900), (30.0, 300), (34.0, 8), (40.0, 5)]
    fault = Fault("kill", "rabbit@rmq1", start=11.0, end=25.0)
    assert recovery_time(fault, samples, slack=5) == 9.0
    assert recovery_time(fault, samples, slack=0) == 15.0
    assert recovery_time(fault, samples[:5], slack=0) is None


def test_expected_keys_may_come_as_the_keys_of_a_mapping() -> None:
    # The accepted orders are kept as {order id: user}: the keys count, not the values.
    accepted = {"o1": 0, "o2": 7}
    assert tally(accepted, [("o1", "d1"), ("o2", "d2")]).ok
