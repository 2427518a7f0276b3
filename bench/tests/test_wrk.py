"""wrk's results as the benchmark reads them: throughput, latency, every kind of error."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from bench.wrk import WrkError, parse_output, run_wrk, write_rows

LINE = (
    'WRK_JSON {"requests":1200,"duration_us":2000000,"bytes":1,"non2xx":3,'
    '"errors":{"connect":1,"read":0,"write":0,"status":2,"timeout":4},'
    '"latency_us":{"p50":1500,"p90":4000,"p99":9000,"max":12000,"mean":2000.0}}'
)


def test_a_result_line_gives_throughput_latency_and_errors():
    result = parse_output("Running 2s test\n" + LINE + "\n", cpu_seconds=0.5)

    assert result.rps == 600
    assert (result.p50_ms, result.p99_ms) == (1.5, 9.0)
    assert result.errors == 3 + 1 + 4
    assert result.generator_cpu_share == 0.25


def test_output_without_a_result_line_is_an_error():
    with pytest.raises(WrkError, match="no result line"):
        parse_output("unable to connect to 127.0.0.1:1\n", cpu_seconds=0.0)


@pytest.fixture
def items_server() -> Iterator[str]:
    """A tiny server: /items/<n> answers 200 for n <= 10 and 404 above."""

    @Request.application
    def app(request: Request) -> Response:
        number = int(request.path.rsplit("/", 1)[1])
        return Response("{}", status=200 if number <= 10 else 404)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_wrk_counts_every_answer_outside_2xx_as_an_error(items_server: str, tmp_path: Path):
    good = run_wrk(
        items_server,
        "item",
        write_rows([("1",), ("2",)], tmp_path, "good"),
        seconds=1,
        connections=2,
    )
    bad = run_wrk(
        items_server,
        "item",
        write_rows([("1",), ("99",)], tmp_path, "bad"),
        seconds=1,
        connections=2,
    )

    assert good.requests > 0 and good.errors == 0
    assert bad.non2xx > 0
    assert bad.generator_cpu_seconds > 0
