"""The verdict's counting: lost, duplicated, redelivered, errors and recovery."""

from __future__ import annotations

from chaos.verdict import (
    Call,
    Fault,
    classify,
    during_fault,
    forbidden_classes,
    forbidden_errors,
    http_errors,
    recovery_time,
    tally,
)


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


FREEZE = Fault("freeze PostgreSQL", "orders PostgreSQL", 10.0, 20.0)
GATEWAY = Fault("kill -9 gateway", "gateway#2", 40.0, 45.0)


def _classify(calls: list[Call]) -> dict[str, int]:
    return classify(
        calls,
        [FREEZE, GATEWAY],
        allows_503=lambda f: f.kind == "freeze PostgreSQL",
        resets=frozenset({"kill -9 gateway"}),
        grace=5.0,
    )


def test_a_503_is_allowed_only_while_a_dependency_of_the_request_is_out() -> None:
    classes = _classify(
        [
            Call(12.0, 15.0, 503),  # during the freeze
            Call(24.0, 24.5, 503),  # within the grace after it
            Call(30.0, 30.1, 503),  # long after: a 503 nothing explains
            Call(12.0, 12.1, 201),
        ]
    )
    assert classes == {"503 during an outage": 2, "503 outside any outage": 1}
    assert forbidden_classes(classes) == 1


def test_resets_are_allowed_only_while_a_gateway_is_killed_and_other_errors_never() -> None:
    classes = _classify(
        [
            Call(40.5, 40.6, 0, "connection"),
            Call(5.0, 5.1, 0, "connection"),
            Call(12.0, 42.0, 0, "timeout"),
            Call(12.0, 27.0, 504),
            Call(41.0, 41.0, 500),
        ]
    )
    assert classes == {
        "500": 1,
        "504": 1,
        "connection error": 1,
        "connection reset by a killed gateway": 1,
        "no answer (client timeout)": 1,
    }
    assert forbidden_classes(classes) == 4


def test_a_faults_503s_are_timed_and_its_last_error_placed() -> None:
    seen = during_fault(
        FREEZE,
        [Call(11.0, 13.0, 503), Call(12.0, 18.0, 503), Call(19.0, 21.5, 503), Call(22, 23, 201)],
    )
    assert seen == {"errors": 3, "503": 3, "503_p50": 2.5, "503_max": 6.0, "errors_until": 1.5}
    assert during_fault(GATEWAY, [Call(1.0, 2.0, 201)])["errors_until"] is None
