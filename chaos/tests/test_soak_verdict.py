"""The soak's verdict: a process that keeps growing fails, a flat or warming one passes, a
purged table passes and one never purged fails, and the report says which."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import psutil

from chaos.soak import client_connections, default_warmup, file_kinds, server_connections
from chaos.soak_report import MARK_END, MARK_START, markdown, write_section
from chaos.soak_verdict import bounded, growth, resident, tables_bounded

WARMUP = 300.0
END = 1500.0


def every(step: float, until: float, value) -> list[tuple[float, float]]:
    """(time, value(time)) every `step` seconds from 0 to `until`."""
    count = int(until / step) + 1
    return [(k * step, float(value(k * step))) for k in range(count)]


def test_memory_that_climbs_after_the_warm_up_fails() -> None:
    # 100 MiB, then 1 MiB more per minute: 20 % over the measured 20 minutes.
    leaking = every(5, END, lambda t: 100 + max(0.0, t - WARMUP) / 60)
    result = growth("orders worker 1", leaking, warmup=WARMUP, end=END)
    assert not result.ok
    assert result.ratio > 0.10


def test_memory_that_grows_only_while_warming_up_passes() -> None:
    # Doubles during the warm-up (caches, pools), flat after it, with a spike now and then.
    warming = every(5, END, lambda t: 50 + min(t, WARMUP) / 6 + (30 if t % 400 == 0 else 0))
    result = growth("gateway", warming, warmup=WARMUP, end=END)
    assert result.ok
    assert abs(result.ratio) < 0.01


def test_growth_just_under_and_just_over_the_limit() -> None:
    def ramp(total: float):
        return lambda t: 100 * (1 + total * max(0.0, t - WARMUP) / (END - WARMUP))

    assert growth("p", every(5, END, ramp(0.08)), warmup=WARMUP, end=END).ok
    assert not growth("p", every(5, END, ramp(0.14)), warmup=WARMUP, end=END).ok


def test_a_process_that_went_away_before_the_end_fails() -> None:
    gone = every(5, 900, lambda t: 100)
    result = growth("orders.relay", gone, warmup=WARMUP, end=END)
    assert result.missing
    assert not result.ok


def test_every_process_is_judged() -> None:
    results = resident(
        {
            "flat": every(5, END, lambda t: 12),
            "leaking fds": every(5, END, lambda t: 12 + t // 100),
        },
        warmup=WARMUP,
        end=END,
    )
    assert [(r.series, r.ok) for r in results] == [("flat", True), ("leaking fds", False)]


def saw_tooth(t: float) -> int:
    """An inbox at 30 events/s, purged of rows older than 120 s every 30 s."""
    return int(30 * (120 + t % 30))


def test_a_purged_table_is_bounded() -> None:
    samples = [(t, saw_tooth(t)) for t in range(0, 1500, 15)]
    assert bounded("notifications.inbox", samples, warmup=WARMUP, slack=300).ok


def test_a_table_nothing_purges_is_not_bounded() -> None:
    samples = [(t, 30 * t) for t in range(0, 1500, 15)]
    result = bounded("orders.outbox", samples, warmup=WARMUP, slack=300)
    assert not result.ok
    assert result.second_half > result.first_half


def test_the_data_tables_are_not_held_to_a_bound() -> None:
    growing = [(float(t), 30 * t) for t in range(0, 1500, 15)]
    results = tables_bounded(
        {"orders.orders": growing, "orders.outbox": growing},
        warmup=WARMUP,
        data_tables=["orders.orders"],
    )
    assert [(b.table, b.ok) for b in results] == [("orders.outbox", False)]


def test_the_warm_up_outlasts_the_first_purges() -> None:
    assert default_warmup(30, 120) == 7.5
    assert default_warmup(3, 120) == 3.0  # longer than the purges need: a quarter is less
    assert default_warmup(3, 40) == 1.0


RESULT = {
    "passed": False,
    "effects_passed": True,
    "minutes": 20.0,
    "rate": 30.0,
    "achieved_rate": 29.9,
    "users": 20,
    "webhook_users": 5,
    "warmup_minutes": 5.0,
    "retention": 120,
    "purge_interval": 30,
    "load": {"cpus": 2, "mean": 3.2, "max": 6.1},
    "orders": {"placed": 36000, "accepted": 36000, "unknown": 0},
    "tallies": {
        "mails": {"expected": 36000, "lost": 0, "duplicated": 0, "unexpected": 0, "redelivered": 0}
    },
    "http_errors": {},
    "restarts": {},
    "leftovers": {"deliveries pending": 0},
    "memory": [
        {"series": "orders worker 1", "start": 80.5, "end": 97.0, "growth": 20.5, "ok": False}
    ],
    "files": [
        {"series": "orders worker 1", "start": 14.0, "end": 14.0, "growth": 0.0, "ok": True},
        {"series": "orders.relay", "start": 8.0, "end": 10.0, "growth": 25.0, "ok": False},
    ],
    "files_changed": {"orders.relay": {"tcp to postgresql": 2}},
    "mail_connections": {"peak": 3, "bound": 4, "ok": True},
    "tables": [
        {"table": "notifications.inbox", "first_half": 4500, "second_half": 4470, "ok": True}
    ],
    "data_tables": {"orders.orders": 36000},
}


def test_the_section_names_the_verdict_each_process_and_each_table() -> None:
    text = markdown(RESULT, command="make soak SOAK_MINUTES=20 SOAK_RATE=30", settle=4)
    assert "**Verdict: FAIL**" in text
    assert "load average during the run 3.2 on average, 6.1 at most" in text
    assert "| orders worker 1 | 80.5 | 97.0 | +20.5 % | 14 | 14 | +0.0 % |" in text
    assert "| notifications.inbox | 4500 | 4470 | yes |" in text
    assert "orders.orders 36000" in text
    assert (
        "Open files of orders.relay that changed over the measured span: tcp to postgresql +2"
        in text
    )
    assert "SMTP connections peaked at 3, for 4 delivery threads." in text
    assert "![soak: memory, open files and table sizes](reliability/soak.png)" in text


def test_only_the_soak_section_is_replaced(tmp_path: Path) -> None:
    doc = tmp_path / "reliability.md"
    chaos = "<!-- chaos:results:start -->\nchaos results\n<!-- chaos:results:end -->\n"
    doc.write_text(f"# Chaos\n{chaos}\n# Soak\n{MARK_START}\nold\n{MARK_END}\n")
    write_section("new", doc)
    assert doc.read_text() == f"# Chaos\n{chaos}\n# Soak\n{MARK_START}\nnew\n{MARK_END}\n"


def test_a_workers_client_connections_are_counted_apart_from_its_own_sockets() -> None:
    """The accepted end of each connection on the port counts; the listener and the
    connections the process opened itself (to a database, say) do not."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        accepted = [listener.accept()[0] for _ in clients]
        try:
            assert client_connections(psutil.Process(), port) == 3
            accepted[0].close()
            assert client_connections(psutil.Process(), port) == 2
        finally:
            for sock in clients + accepted:
                sock.close()


def test_connections_to_a_server_are_counted_by_the_process_that_opened_them() -> None:
    """The delivery worker's connections to the SMTP sink: those it opened to the port, not
    the ends the server accepted (which the same process holds here)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        opened = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        accepted = [listener.accept()[0] for _ in opened]
        try:
            assert server_connections(psutil.Process(), port) == 2
            opened[1].close()
            assert server_connections(psutil.Process(), port) == 1
        finally:
            for sock in opened + accepted:
                sock.close()


def test_open_files_are_named_by_kind_and_by_the_server_a_connection_talks_to(
    tmp_path: Path,
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        names = {port: "smtp"}
        before = file_kinds(psutil.Process(), names)
        client = socket.create_connection(("127.0.0.1", port))
        server, _ = listener.accept()
        read, write = os.pipe()
        try:
            with (tmp_path / "log").open("w"):
                after = file_kinds(psutil.Process(), names)
        finally:
            for fd in (read, write):
                os.close(fd)
            client.close()
            server.close()
    assert before["tcp listening (smtp)"] == 1
    assert after["tcp to smtp"] - before["tcp to smtp"] == 1
    assert after["tcp clients of smtp"] - before["tcp clients of smtp"] == 1
    assert after["pipe"] - before["pipe"] == 2
    assert after[f"file {tmp_path / 'log'}"] == 1
