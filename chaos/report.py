"""The report of a chaos run: the timeline chart and the results section of
docs/reliability.md (written between its markers, the rest of the page kept)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chaos.run import Run

MARK_START = "<!-- chaos:results:start -->"
MARK_END = "<!-- chaos:results:end -->"


def chart(run: Run, path: Path) -> None:
    """Throughput, errors and backlog over time, faults shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = run.samples
    times = [s.at for s in samples]
    fig, (top, middle, bottom) = plt.subplots(3, 1, sharex=True, figsize=(10, 7))
    accepted = _rate([s.accepted for s in samples], times)
    made = _rate([s.notifications for s in samples], times)
    errors = _rate([s.errors for s in samples], times)
    top.plot(times, accepted, label="orders accepted/s")
    top.plot(times, made, label="notifications/s")
    top.legend(loc="upper right", fontsize=8)
    middle.plot(times, errors, color="tab:red", label="HTTP errors/s")
    middle.legend(loc="upper right", fontsize=8)
    bottom.plot(times, [s.backlog for s in samples], color="tab:purple", label="backlog")
    bottom.legend(loc="upper right", fontsize=8)
    bottom.set_xlabel("seconds since the first order")
    colours = {
        "kill -9 leader": "tab:red",
        "partition": "tab:orange",
        "freeze PostgreSQL": "tab:blue",
        "restart PostgreSQL": "tab:cyan",
        "kill redis": "tab:green",
        "kill -9 gateway": "tab:olive",
    }
    for fault in run.faults:
        for axis in (top, middle, bottom):
            if fault.end - fault.start > 1:
                axis.axvspan(
                    fault.start, fault.end, color=colours.get(fault.kind, "grey"), alpha=0.2
                )
            else:
                axis.axvline(fault.start, color="grey", linestyle="--", linewidth=0.8)
        top.annotate(
            fault.kind.replace("crash ", ""),
            (fault.start, top.get_ylim()[1]),
            fontsize=7,
            rotation=90,
            va="top",
        )
    fig.suptitle(f"make chaos: {len(run.answers)} orders at {run.rate:g}/s, three-node broker")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _rate(cumulative: Sequence[int], times: Sequence[float], window: int = 5) -> list[float]:
    """Per-second rate of a running count, over the last `window` samples (smooths the
    steps a count taken every second or so shows)."""
    rates = [0.0]
    for k in range(1, len(cumulative)):
        first = max(0, k - window)
        span = times[k] - times[first] or 1.0
        rates.append((cumulative[k] - cumulative[first]) / span)
    return rates


def markdown(result: dict[str, Any], *, command: str, chart_name: str, settle: float) -> str:
    """The results section of docs/reliability.md."""
    lines = [
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: `{command}`; "
        f"{result['users']} users ({result['webhook_users']} with a webhook), "
        f"{result['rate']:g} orders/s offered open loop, {result['achieved_rate']:g}/s answered "
        "(64 requests in flight at most: when answers slow down, so does the offered load).",
        "",
        f"**Verdict: {'PASS' if result['passed'] else 'FAIL'}**. Orders placed "
        f"{result['orders']['placed']}, accepted (201) {result['orders']['accepted']}, "
        f"outcome unknown to the client {result['orders']['unknown']}.",
        "",
        "| effect | expected | lost | duplicated | unexpected | redelivered (same id) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for kind, counts in result["tallies"].items():
        lines.append(
            f"| {kind} | {counts['expected']} | {counts['lost']} | {counts['duplicated']} | "
            f"{counts['unexpected']} | {counts['redelivered']} |"
        )
    errors = ", ".join(f"{k}: {v}" for k, v in result["http_errors"].items()) or "none"
    classes = result.get("error_classes")
    if classes is None:  # a result from before the errors were classified
        lines += [
            "",
            f"HTTP answers other than 201: {errors} (outside the documented 503: "
            f"{result['forbidden_errors']}).",
            "",
        ]
    else:
        lines += [
            "",
            f"HTTP attempts {result.get('attempts', 0)}; the last answer of each order, other "
            f"than 201: {errors}. Every attempt other than a 201, classified: "
            + (", ".join(f"{k} {v}" for k, v in classes.items()) or "none")
            + f". Outside what the API documents for these faults: {result['forbidden_errors']}"
            f". Orders retried after a reset connection (same Idempotency-Key): "
            f"{result.get('retried', 0)}.",
            "",
        ]
    by_kind = result.get("faults_by_kind")
    if by_kind:
        lines += [
            "Faults injected: " + ", ".join(f"{k} {v}" for k, v in sorted(by_kind.items())) + ".",
            "",
        ]
    if result.get("faults_skipped"):
        lines += [
            "Faults skipped because the previous one of their kind was not over yet: "
            + ", ".join(f"{k} {v}" for k, v in sorted(result["faults_skipped"].items()))
            + ".",
            "",
        ]
    if result.get("faults_not_injected"):
        lines += [
            "Faults that could not be injected: " + "; ".join(result["faults_not_injected"]) + ".",
            "",
        ]
    lines += [
        "Left at the end (all must be 0): "
        + ", ".join(f"{k} {v}" for k, v in result["leftovers"].items())
        + f"; settled {settle:.0f} s after the last order.",
        "",
        "| fault | target | at (s) | lasted (s) | errors | 503s: median / max latency (s) "
        "| errors until (s after its end) | backlog back to its level after (s) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for fault in result["faults"]:
        back = fault["recovered_after"]
        latency = (
            f"{fault['503_p50']} / {fault['503_max']}" if fault.get("503_p50") is not None else "-"
        )
        until = fault.get("errors_until")
        lines.append(
            f"| {fault['fault']} | {fault['target']} | {fault['at']} | {fault['lasted']} | "
            f"{fault.get('errors', '-')} | {latency} | {'-' if until is None else until} | "
            f"{'not within the run' if back is None else back} |"
        )
    restarts = ", ".join(f"{k} {v}" for k, v in sorted(result["restarts"].items())) or "none"
    lines += ["", f"Processes restarted by the supervisor: {restarts}.", ""]
    lines += [f"![timeline](reliability/{chart_name})", ""]
    return "\n".join(lines)


def write_docs(section: str, doc: Path) -> None:
    text = doc.read_text()
    start, end = text.index(MARK_START), text.index(MARK_END)
    doc.write_text(text[: start + len(MARK_START)] + "\n" + section + "\n" + text[end:])
