"""The soak's report: its section of docs/reliability.md and the chart of its curves."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chaos.soak import Soak

CHART = "soak.png"
MARK_START = "<!-- soak:results:start -->"
MARK_END = "<!-- soak:results:end -->"


def _percent(value: float | None) -> str:
    return "restarted" if value is None else f"{value:+.1f} %"


def markdown(result: dict[str, Any], *, command: str, settle: float) -> str:
    """The results section of the soak, between its markers in docs/reliability.md."""
    load, mail = result["load"], result["mail_connections"]
    lines = [
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: `{command}`; "
        f"{result['minutes']:g} minutes at {result['rate']:g} orders/s offered open loop "
        f"({result['achieved_rate']:g}/s answered), {result['users']} users "
        f"({result['webhook_users']} with a webhook). Measured after a warm-up of "
        f"{result['warmup_minutes']:g} min; inbox and outbox retention {result['retention']} s, "
        f"purged every {result['purge_interval']} s. The machine: {load['cpus']} CPUs shared "
        f"with other work, load average during the run {load['mean']} on average, "
        f"{load['max']} at most.",
        "",
        f"**Verdict: {'PASS' if result['passed'] else 'FAIL'}**. Orders placed "
        f"{result['orders']['placed']}, accepted (201) {result['orders']['accepted']}, "
        f"outcome unknown to the client {result['orders']['unknown']}. The `make chaos` "
        "verdict (nothing lost or duplicated, no HTTP error but 503, nothing left over): "
        f"{'pass' if result['effects_passed'] else 'FAIL'}.",
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
    restarts = ", ".join(f"{k} {v}" for k, v in sorted(result["restarts"].items())) or "none"
    lines += [
        "",
        f"HTTP answers other than 201: {errors}. Processes that died and were restarted: "
        f"{restarts}. Left at the end: "
        + ", ".join(f"{k} {v}" for k, v in result["leftovers"].items())
        + f"; settled {settle:.0f} s after the last order.",
        "",
        "Resident memory and open files of every process: the median of the first samples "
        "after the warm-up against the median of the last ones (growth must stay under "
        "10 %). Connections that follow the load are counted apart: a web worker's from its "
        "clients, and the SMTP connections between the delivery worker and the sink (one per "
        "delivery thread with mail to send, closed when it has none). Those SMTP "
        f"connections peaked at {mail['peak']}, for {mail['bound']} delivery threads"
        f"{'' if mail['ok'] else ' (**more than one per thread: FAIL**)'}.",
        "",
        "| process | RSS after warm-up (MiB) | RSS at the end (MiB) | growth | "
        "open files after warm-up | at the end | growth |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    files = {f["series"]: f for f in result["files"]}
    for memory in result["memory"]:
        fds = files.get(memory["series"], {"start": "-", "end": "-", "growth": None})
        lines.append(
            f"| {memory['series']} | {memory['start']:.1f} | {memory['end']:.1f} | "
            f"{_percent(memory['growth'])} | {fds['start']:g} | {fds['end']:g} | "
            f"{_percent(fds['growth'])} |"
        )
    for series, changed in result["files_changed"].items():
        kinds = ", ".join(f"{kind} {count:+d}" for kind, count in changed.items()) or "none"
        lines.append(f"\nOpen files of {series} that changed over the measured span: {kinds}.")
    lines += [
        "",
        "Tables (all but the data below): the largest row count in each half of the "
        "measured span; bounded when the second is at most 10 % above the first, plus ten seconds "
        "and one purge interval of orders.",
        "",
        "| table | peak, first half | peak, second half | bounded |",
        "|---|---:|---:|---|",
    ]
    for table in result["tables"]:
        lines.append(
            f"| {table['table']} | {table['first_half']} | {table['second_half']} | "
            f"{'yes' if table['ok'] else '**no**'} |"
        )
    data = ", ".join(f"{k} {v}" for k, v in sorted(result["data_tables"].items()))
    lines += [
        "",
        f"The suite's data, which grows with every order by design, at the end: {data}.",
        "",
        f"![soak: memory, open files and table sizes](reliability/{CHART})",
        "",
    ]
    return "\n".join(lines)


def write_section(section: str, doc: Path) -> None:
    """Replace what is between the soak's markers; the rest of the page stays as it is."""
    text = doc.read_text()
    start, end = text.index(MARK_START), text.index(MARK_END)
    doc.write_text(text[: start + len(MARK_START)] + "\n" + section + "\n" + text[end:])


def chart(soak: Soak, path: Path) -> None:
    """Resident memory, open files and bookkeeping tables over time, the warm-up shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from chaos.soak import DATA_TABLES

    fig, (memory, files, tables) = plt.subplots(3, 1, sharex=True, figsize=(11, 10))
    for name, points in sorted(soak.rss.items()):
        series = soak.relative(points)
        memory.plot([t for t, _ in series], [v / 2**20 for _, v in series], label=name)
    for name, points in sorted(soak.fds.items()):
        series = soak.relative(points)
        files.plot([t for t, _ in series], [v for _, v in series], label=name)
    for name, counts in sorted(soak.tables.items()):
        if name in DATA_TABLES:
            continue
        rows = soak.relative(counts)
        if not any(v for _, v in rows):
            continue  # an empty table would only crowd the legend
        tables.plot([t for t, _ in rows], [v for _, v in rows], label=name)
    memory.set_ylabel("resident memory, MiB")
    files.set_ylabel("open files\n(less client connections)")
    tables.set_ylabel("rows")
    tables.set_xlabel("seconds since the first order")
    end = soak.orders / soak.rate
    for axis in (memory, files, tables):
        axis.axvspan(0, soak.warmup_minutes * 60, color="grey", alpha=0.15)
        axis.axvline(end, color="grey", linestyle="--", linewidth=0.8)
        axis.grid(alpha=0.3)
        axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7)
    memory.set_title("per process (gunicorn workers one by one); grey: warm-up, dashed: last order")
    tables.set_title("tables other than the data: inbox and outbox purged after the retention")
    fig.suptitle(
        f"make soak: {soak.minutes:g} min at {soak.rate:g} orders/s, retention {soak.retention} s"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
