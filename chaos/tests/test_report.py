"""The results section: written between the markers, everything else of the page kept."""

from __future__ import annotations

from pathlib import Path

from chaos.report import MARK_END, MARK_START, markdown, write_docs

RESULT = {
    "passed": False,
    "users": 20,
    "webhook_users": 5,
    "rate": 50.0,
    "achieved_rate": 31.5,
    "orders": {"placed": 10, "accepted": 9, "unknown": 1},
    "tallies": {
        "mails": {"expected": 9, "lost": 1, "duplicated": 0, "unexpected": 0, "redelivered": 2}
    },
    "http_errors": {"503": 1},
    "forbidden_errors": 0,
    "leftovers": {"outbox unsent (auth, orders)": 0},
    "faults": [
        {
            "fault": "partition",
            "target": "rabbit@rmq2",
            "at": 40.0,
            "lasted": 20.5,
            "recovered_after": None,
        },
    ],
    "restarts": {"orders.relay": 1},
}


def test_the_section_states_the_verdict_and_every_count() -> None:
    text = markdown(RESULT, command="make chaos CHAOS_ORDERS=10", chart_name="t.png", settle=3)
    assert "**Verdict: FAIL**" in text
    assert "50 orders/s offered open loop, 31.5/s answered" in text
    assert "| mails | 9 | 1 | 0 | 0 | 2 |" in text
    assert "503: 1" in text
    assert "| partition | rabbit@rmq2 | 40.0 | 20.5 | - | - | - | not within the run |" in text
    assert "orders.relay 1" in text
    assert "![timeline](reliability/t.png)" in text


def test_only_the_text_between_the_markers_is_replaced(tmp_path: Path) -> None:
    doc = tmp_path / "reliability.md"
    doc.write_text(f"# Title\n\n{MARK_START}\nold results\n{MARK_END}\n\n## After\n")
    write_docs("new results", doc)
    assert doc.read_text() == f"# Title\n\n{MARK_START}\nnew results\n{MARK_END}\n\n## After\n"


def test_the_section_classifies_every_error_and_shows_each_faults_503s() -> None:
    result = {
        **RESULT,
        "error_classes": {"503 during an outage": 7, "504": 1},
        "forbidden_errors": 1,
        "attempts": 12,
        "retried": 1,
        "faults_by_kind": {"freeze PostgreSQL": 2, "kill redis": 1},
        "faults": [
            {
                "fault": "freeze PostgreSQL",
                "target": "orders PostgreSQL",
                "at": 24.0,
                "lasted": 10.0,
                "recovered_after": 3.5,
                "errors": 7,
                "503": 7,
                "503_p50": 4.1,
                "503_max": 6.9,
                "errors_until": 1.2,
            }
        ],
    }
    text = markdown(result, command="make chaos", chart_name="t.png", settle=3)
    assert "503 during an outage 7, 504 1" in text
    assert "Outside what the API documents for these faults: 1" in text
    assert "Faults injected: freeze PostgreSQL 2, kill redis 1." in text
    assert (
        "| freeze PostgreSQL | orders PostgreSQL | 24.0 | 10.0 | 7 | 4.1 / 6.9 | 1.2 | 3.5 |"
        in text
    )
