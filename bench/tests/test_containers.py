"""`make bench-containers` without Docker or servers: its record, ratios, parsing and options."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench import containers, containers_report, report
from bench.containers_report import (
    COMMAND,
    HEADING,
    MODES,
    evidence_section,
    memory_groups,
    ratio,
    ratios,
    replace_section,
    write_docs,
)
from bench.containers_sides import (
    BENCH_ENV,
    compose_override,
    parse_docker_stats,
    parse_size,
    suite_services,
)
from gateway.nginx.render import edge_limit_values
from tests.compose import stack as compose_stack

ROOT = Path(__file__).resolve().parents[2]
MIB = 2**20


def runs(rps: list[float], p50: float, p99: float, errors: int = 0) -> dict[str, Any]:
    items = [
        {
            "rps": r,
            "p50_ms": p50,
            "p99_ms": p99,
            "errors": errors,
            "requests": int(r * 10),
            "generator_cpu_share": 0.2,
        }
        for r in rps
    ]
    return {"runs": items, "summary": report.http_cell(items)}


def side(rps: float, p50: float, start: float, memory: dict[str, int]) -> dict[str, Any]:
    return {
        "start_seconds": start,
        "seed_seconds": 20.0,
        "memory": {"idle": memory, "loaded": {k: 2 * v for k, v in memory.items()}},
        "requests": {
            mode: runs([rps * 0.9, rps, rps * 1.1], p50, p50 * 4, errors=1 if mode == "post" else 0)
            for mode in MODES
        },
    }


@pytest.fixture
def results() -> dict[str, Any]:
    return {
        "meta": {
            "started": "2026-12-03 10:00 UTC",
            "command": "python -m bench.containers --write-docs",
            "cpus": 2,
            "cpu_model": "AMD EPYC 7B13",
            "load_before": "1.00 0.50 0.25",
            "seconds": 10.0,
            "connections": 16,
            "threads": 1,
            "rounds": 3,
            "tag": "compose-test",
            "users": 8,
            "orders_per_user": 40,
        },
        "sides": {
            "bare": side(500.0, 10.0, 20.0, {"orders": 100 * MIB, "gateway": 100 * MIB}),
            "containers": side(
                400.0,
                12.5,
                120.0,
                {"orders": 150 * MIB, "edge": 50 * MIB, "orders-db": 300 * MIB, "redis": 10 * MIB},
            ),
        },
    }


# -- ratios --------------------------------------------------------------------------------


def test_a_ratio_is_containers_over_bare_and_none_without_a_positive_base():
    assert ratio(400.0, 500.0) == 0.8
    assert ratio(1.0, 3.0) == 0.33
    assert ratio(5.0, 0.0) is None
    assert ratio(None, 5.0) is None
    assert ratio(float("nan"), 5.0) is None


def test_ratios_compare_the_medians_start_up_and_the_suites_own_memory(results):
    got = ratios(results)

    assert got["get_one"] == {"rps": 0.8, "p50_ms": 1.25, "p99_ms": 1.25}
    assert got["start"] == {"seconds": 6.0}
    # The state containers (databases, Redis) are not the suite's own processes: 400 / 400.
    assert got["memory"] == {"suite_bytes": 1.0}


def test_memory_groups_set_the_state_services_apart_on_the_containers_side_only():
    sample = {"orders": 3, "orders-db": 5, "rabbitmq": 7, "mailpit": 11}

    assert memory_groups("containers", sample) == (14, 12)
    assert memory_groups("bare", {"orders": 3, "nginx": 4}) == (7, None)


# -- the decision record -------------------------------------------------------------------

RECORD = """# 0005: containers

## Context

Two ways to run.

## Evidence

Not measured yet.

```sh
make up
```

## Later

Kept as it is.
"""


def test_replace_section_swaps_the_section_and_keeps_what_is_around_it():
    text = replace_section(RECORD, HEADING, "## Evidence\n\nMeasured.\n")

    assert "Not measured yet" not in text and "make up" not in text
    assert text.startswith("# 0005: containers\n\n## Context\n\nTwo ways to run.\n\n")
    assert "## Evidence\n\nMeasured.\n\n## Later\n\nKept as it is.\n" in text


def test_replace_section_also_replaces_a_last_section_up_to_the_end():
    text = replace_section("# T\n\n## Evidence\n\nold\nlines\n", HEADING, "## Evidence\n\nnew")

    assert text == "# T\n\n## Evidence\n\nnew\n"


def test_replace_section_refuses_a_text_without_the_heading():
    with pytest.raises(ValueError, match="Evidence"):
        replace_section("# T\n\n## Context\n", HEADING, "## Evidence\n")


def test_the_evidence_names_date_machine_command_and_the_measured_figures(results):
    section = evidence_section(results, ROOT / "bench/results/containers-x.json")

    assert section.startswith(HEADING + "\n")
    prose = " ".join(section.split())  # the introduction is wrapped
    assert "**2026-12-03 10:00 UTC**" in prose
    assert "AMD EPYC 7B13, 2 cores" in prose
    assert f"`{COMMAND}`" in prose
    assert "`bench/results/containers-x.json`" in prose
    assert "`-t1 -c16 -d10s`" in prose and "320 orders" in prose
    assert max(len(line) for line in section.splitlines() if not line.startswith("|")) <= 90
    lines = section.splitlines()
    first = lines.index("| GET one order | bare processes | 500 (450–550) | 10.0 | 40.0 | 0 |")
    assert lines[first + 1] == "| | containers | 400 (360–440) | 12.5 | 50.0 | 0 |"
    assert lines[first + 2] == "| | containers / bare | 0.80× | 1.25× | 1.25× | |"
    assert "| POST an order | bare processes | 500 (450–550) | 10.0 | 40.0 | 3 |" in lines
    assert "| start-up until the edge is ready, s | 20 | 120 | 6.00× |" in lines
    assert "| memory of the suite's processes, MiB, after the load | 400 | 400 | 1.00× |" in lines
    assert any(line.endswith("| 310 / 620 | |") for line in lines)


def test_write_docs_rewrites_only_the_evidence_of_the_real_record(results, tmp_path):
    record = tmp_path / "0005.md"
    original = containers_report.DECISION.read_text()
    record.write_text(original)

    write_docs(results, tmp_path / "containers-x.json", record)

    text = record.read_text()
    before = original.split(HEADING)[0]
    assert text.startswith(before)
    assert "Not measured yet" not in text
    assert "| GET one order | bare processes |" in text
    assert text.count(HEADING) == 1


def test_results_are_named_like_the_other_benchmarks_results():
    from datetime import UTC, datetime

    path = containers_report.results_path(datetime(2026, 12, 3, 9, 5, 7, tzinfo=UTC))

    assert path == ROOT / "bench/results/containers-2026-12-03T090507Z.json"


# -- missing images ------------------------------------------------------------------------


def test_missing_images_are_the_ones_docker_cannot_inspect(monkeypatch):
    absent = {"flask-suite/gateway:t", "flask-suite-local/redis:t"}

    def inspect(argv: list[str], **_: Any) -> subprocess.CompletedProcess[bytes]:
        return subprocess.CompletedProcess(argv, 1 if argv[-1] in absent else 0)

    monkeypatch.setattr(compose_stack.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(compose_stack.subprocess, "run", inspect)

    assert sorted(compose_stack.missing_images("t")) == sorted(absent)


def test_without_docker_every_image_is_missing(monkeypatch):
    monkeypatch.setattr(compose_stack.shutil, "which", lambda name: None)

    assert compose_stack.missing_images("t") == compose_stack.required_images("t")
    assert len(compose_stack.required_images("t")) == 10


def test_the_missing_images_message_is_one_line_naming_them_and_the_fix():
    message = compose_stack.missing_images_message(["flask-suite/auth:x", "flask-suite/orders:x"])

    assert "\n" not in message
    assert "run `make compose-test` first" in message
    assert message.endswith("flask-suite/auth:x, flask-suite/orders:x")


def test_the_command_stops_with_that_line_before_starting_anything(monkeypatch, capsys):
    monkeypatch.setattr(containers, "missing_images", lambda tag: [f"flask-suite/auth:{tag}"])

    def no_run(*_: Any) -> None:
        raise AssertionError("nothing may start when images are missing")

    monkeypatch.setattr(containers, "Run", no_run)

    assert containers.main(["--tag", "mine"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "make compose-test" in err and "flask-suite/auth:mine" in err


# -- the compose stack, outside pytest ----------------------------------------------------


def test_a_new_stack_adds_overrides_after_the_project_files_and_has_its_own_secrets():
    first = compose_stack.new_stack("t", extra_files=["/x/bench.yml"], prefix="suite-bench")
    second = compose_stack.new_stack("t")

    assert first.files == [*compose_stack.compose_files(), "-f", "/x/bench.yml"]
    assert first.project.startswith("suite-bench-") and first.project != second.project
    assert first.edge == f"http://127.0.0.1:{first.env['EDGE_PORT']}"
    assert first.env["SUITE_TAG"] == "t"
    assert first.env["AUTH_DB_PASSWORD"] != second.env["AUTH_DB_PASSWORD"]


def test_a_failed_compose_command_raises_a_plain_error_with_its_output(monkeypatch):
    stack = compose_stack.new_stack("t")

    def failing(argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(argv, 1, stdout="", stderr="no such service: x")

    monkeypatch.setattr(compose_stack.subprocess, "run", failing)

    with pytest.raises(compose_stack.ComposeError, match="no such service: x"):
        stack.compose("ps", "-q", "x")


# -- docker stats --------------------------------------------------------------------------


def test_sizes_in_dockers_binary_and_decimal_units():
    assert parse_size("0B") == 0
    assert parse_size("45.5MiB") == round(45.5 * MIB)
    assert parse_size(" 1.5GiB ") == round(1.5 * 2**30)
    assert parse_size("200kB") == 200_000
    with pytest.raises(ValueError):
        parse_size("--")


def test_docker_stats_lines_become_bytes_per_compose_service():
    out = (
        "suite-bench-ab12cd-orders-consumer-1\t45.5MiB / 23.47GiB\n"
        "suite-bench-ab12cd-orders-db-1\t1.5GiB / 23.47GiB\n"
        "suite-bench-ab12cd_edge_1\t200kB / 23.47GiB\n"  # docker-compose 1.x names
        "suite-bench-ab12cd-broker-users-1\t-- / --\n"  # exited
        "someone-else-orders-1\t900MiB / 23.47GiB\n"
        "garbage line\n"
    )

    assert parse_docker_stats(out, "suite-bench-ab12cd") == {
        "orders-consumer": round(45.5 * MIB),
        "orders-db": round(1.5 * 2**30),
        "edge": 200_000,
    }


# -- the compose override ------------------------------------------------------------------


def test_the_override_gives_the_stack_the_bare_suites_limits_and_token_lifetime():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    override = compose_override(compose)["services"]

    services = suite_services(compose)
    assert {"auth", "orders", "notifications", "gateway", "orders-consumer"} <= set(services)
    assert not {"redis", "rabbitmq", "orders-db", "edge", "mailpit"} & set(services)
    for name in services:
        assert override[name]["environment"] == BENCH_ENV
    # Every limit docker-compose.yml sets is overridden: the gateway's and the edge's.
    gateway_limits = {k for k in compose["services"]["gateway"]["environment"] if "RATE" in k}
    assert gateway_limits and gateway_limits <= set(override["gateway"]["environment"])
    edge_limits = set(compose["services"]["edge"]["environment"]) & set(edge_limit_values({}))
    assert edge_limits == set(edge_limit_values({}))
    assert override["edge"]["environment"] == edge_limit_values(BENCH_ENV)
    assert override["edge"]["environment"]["EDGE_IP_RATE"] == "10000000r/m"


def test_the_bare_side_runs_with_the_same_settings_as_make_bench():
    source = (ROOT / "bench" / "harness.py").read_text()

    for name, value in BENCH_ENV.items():
        assert f'"{name}": "{value}"' in source


# -- options and progress ------------------------------------------------------------------


def test_options_default_to_make_bench_s_load_and_the_compose_test_images():
    args = containers.parse_args([])

    assert (args.seconds, args.connections, args.rounds) == (10.0, 16, 3)
    assert args.tag == "compose-test" and args.write_docs is False


def test_options_are_read_and_checked():
    args = containers.parse_args(["--seconds", "2", "--connections", "4", "--write-docs"])

    assert (args.seconds, args.connections, args.write_docs) == (2.0, 4, True)
    assert args.argv == ["--seconds", "2", "--connections", "4", "--write-docs"]
    with pytest.raises(SystemExit):
        containers.parse_args(["--rounds", "0"])
    with pytest.raises(SystemExit):
        containers.parse_args(["--connections", "many"])


def test_a_heartbeat_logs_while_a_long_step_runs_and_stops_after_it():
    lines: list[str] = []

    with containers.heartbeat(lines.append, "starting", every=0.02):
        time.sleep(0.15)
    count = len(lines)
    time.sleep(0.1)

    assert count >= 2 and all(line.startswith("starting: ") for line in lines)
    assert len(lines) == count
