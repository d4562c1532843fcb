"""Turn the results of a run into targets, `BENCHMARKS.md` and a console summary."""

import math
import statistics
from dataclasses import dataclass
from typing import Any

from bench.chart import draw_chart

__all__ = [
    "Target",
    "disturbances",
    "draw_chart",
    "errors",
    "overload_line",
    "render",
    "summary",
    "targets",
]

RUNS = (
    "service-default",
    "baseline-default",
    "service-cheap",
    "baseline-cheap",
    "service-notify-default",
)


@dataclass(frozen=True)
class Target:
    """One goal of the issue, what was measured, and whether it holds."""

    name: str
    goal: str
    measured: str
    passed: bool


def _rows(value: int) -> str:
    return f"{value:,}"


def ratio(numerator: float, denominator: float) -> float:
    """Return `numerator / denominator`, NaN (which fails every target) when dividing by 0."""
    return numerator / denominator if denominator else math.nan


def efficiency(results: dict[str, Any]) -> float:
    """Return the cycle rate at the default parameters divided by the argon2 ceiling."""
    rate: float = results["cycle"]["service-default"]["cycles_per_second"]
    return ratio(rate, results["ceiling"]["pairs_per_second"])


HEAD_TO_HEAD_RATIOS = {
    "efficiency": ("service", "ceiling"),
    "against_baseline": ("service", "baseline"),
    "with_notifications": ("notifying", "service"),
    # service ÷ baseline, split by the service hashing on its event loop (`bench.hash_on_loop`).
    "own_work": ("on loop", "baseline"),
    "beside_the_loop": ("service", "on loop"),
}


RATIO_LABELS = {
    "efficiency": "service ÷ ceiling",
    "against_baseline": "service ÷ baseline",
    "with_notifications": "notifying ÷ service",
    "own_work": "on loop ÷ baseline",
    "beside_the_loop": "service ÷ on loop",
}


def round_ratios(rates: dict[str, float]) -> dict[str, float]:
    """Return one round's ratios (those whose two contenders ran): see HEAD_TO_HEAD_RATIOS."""
    return {
        name: ratio(rates[numerator], rates[denominator])
        for name, (numerator, denominator) in HEAD_TO_HEAD_RATIOS.items()
        if numerator in rates and denominator in rates
    }


def round_line(one_round: dict[str, Any]) -> str:
    """Say one head-to-head round's rates and ratios in a line."""
    rates, ratios = one_round["rates"], round_ratios(one_round["rates"])
    line = (
        f"ceiling {rates['ceiling']:.1f}, service {rates['service']:.1f}, "
        f"baseline {rates['baseline']:.1f}, notifying {rates['notifying']:.1f}"
    )
    if "on loop" in rates:
        line += f", on loop {rates['on loop']:.1f}"
    said = ", ".join(f"{RATIO_LABELS[name]} {value:.3f}" for name, value in ratios.items())
    return f"{line}; {said}"


def head_to_head(results: dict[str, Any]) -> dict[str, float]:
    """Return the median over the head-to-head rounds of each ratio and of each rate."""
    rounds = results["head_to_head"]["rounds"]
    ratios = [round_ratios(one_round["rates"]) for one_round in rounds]
    medians = {name: statistics.median(r[name] for r in ratios) for name in ratios[0]}
    for contender in rounds[0]["rates"]:
        medians[contender] = statistics.median(r["rates"][contender] for r in rounds)
    return medians


def head_to_head_healthz(results: dict[str, Any]) -> dict[str, float]:
    """Return each contender's median over the rounds of its `/healthz` p99, in ms."""
    rounds = results["head_to_head"]["rounds"]
    if "healthz_p99_ms" not in rounds[0]:
        return {}
    return {
        contender: statistics.median(r["healthz_p99_ms"][contender] for r in rounds)
        for contender in rounds[0]["healthz_p99_ms"]
    }


def targets(results: dict[str, Any]) -> list[Target]:
    """Evaluate every target of the issue against `results`.

    The overhead at the cheapest argon2 (service vs baseline) is no longer one: the notes
    give it as information.
    """
    cycle = results["cycle"]
    service = cycle["service-default"]
    small, large = results["scale"]["sizes"][0], results["scale"]["sizes"][-1]
    growth = ratio(large["latency_ms"]["p50"], small["latency_ms"]["p50"])
    purge = results["scale"]["purge"]
    rss = max(max(cycle[label]["peak_rss_mb"]) for label in ("service-default", "service-cheap"))
    medians = head_to_head(results)
    received = sum(r["notifications_received"] for r in results["head_to_head"]["rounds"])
    rounds = f"median of {len(results['head_to_head']['rounds'])} rounds"
    return [
        Target(
            "Efficiency (cycles/s ÷ ceiling), default argon2",
            "≥ 0.90",
            f"{medians['efficiency']:.3f} ({rounds}; {medians['service']:.1f} ÷ "
            f"{medians['ceiling']:.1f})",
            medians["efficiency"] >= 0.90,
        ),
        Target(
            "Service ÷ naive baseline, cycles/s, default argon2",
            "≥ 1.00",
            f"{medians['against_baseline']:.3f} ({rounds}; {medians['service']:.1f} ÷ "
            f"{medians['baseline']:.1f})",
            medians["against_baseline"] >= 1.00,
        ),
        Target(
            "Notifications on (receivers answering in 0.5 s) ÷ off, cycles/s, default argon2",
            "≥ 0.95",
            f"{medians['with_notifications']:.3f} ({rounds}; {medians['notifying']:.1f} ÷ "
            f"{medians['service']:.1f}; {received:,} notifications received)",
            medians["with_notifications"] >= 0.95,
        ),
        Target(
            "`/healthz` p99 while hashes saturate the CPUs",
            "≤ 20 ms",
            f"{service['healthz_ms']['p99']:.1f} ms",
            service["healthz_ms"]["p99"] <= 20,
        ),
        Target(
            f"Reveal p50 at {_rows(large['size'])} rows vs {_rows(small['size'])} rows",
            "≤ 1.25x",
            f"{growth:.2f}x ({large['latency_ms']['p50']:.2f} vs "
            f"{small['latency_ms']['p50']:.2f} ms)",
            growth <= 1.25,
        ),
        Target(
            f"Purge of {_rows(purge['expired_rows'])} expired rows",
            "≤ 60 s",
            f"{purge['seconds']:.1f} s",
            purge["seconds"] <= 60,
        ),
        Target(
            "Reveal p99 during the purge",
            "≤ 100 ms",
            f"{purge['latency_ms']['p99']:.1f} ms",
            purge["latency_ms"]["p99"] <= 100,
        ),
        Target(
            "Peak RSS per worker, scenarios 2 and 4",
            "≤ 200 MB",
            f"{rss:.0f} MB",
            rss <= 200,
        ),
        *_overload_targets(results),
    ]


def _overload(results: dict[str, Any], connections: int, admission: str) -> dict[str, Any] | None:
    for run in results.get("overload", []):
        if run["connections"] == connections and run["admission"] == admission:
            found: dict[str, Any] = run
            return found
    return None


def overload_line(run: dict[str, Any]) -> str:
    """One line on an overload run, for the console."""
    refused = sum(run["refused"].values())
    ledger = run["ledger"]
    return (
        f"{run['goodput']:.1f} cycles/s, accepted p50/p99 "
        f"{_ms(run['accepted_ms'], 'p50', 'p99')} ms, {refused} refused"
        + (f" (p99 {run['refused_ms']['p99']:.1f} ms)" if refused else "")
        + f", /healthz p99 {run['healthz_ms']['p99']:.1f} ms, "
        f"ledger {ledger['pending']} refused reveals revealed after, "
        f"{len(ledger['violations'])} kinds of violation"
    )


def _overload_targets(results: dict[str, Any]) -> list[Target]:
    # Only a run with a saturation point (the full profile) has targets to judge.
    multiples = results["profile"].get("overload_multiples", ())
    clients = results["profile"]["clients"]
    saturation = _overload(results, clients, "on")
    if saturation is None:
        return []
    found = []
    for multiple in multiples:
        if multiple == 1:
            continue
        run = _overload(results, clients * multiple, "on")
        if run is not None:
            share = ratio(run["goodput"], saturation["goodput"])
            found.append(
                Target(
                    f"Overload goodput at {multiple}x ({run['connections']} connections) "
                    f"vs saturation ({clients}), admission on",
                    "≥ 0.90",
                    f"{share:.2f} ({run['goodput']:.1f} vs {saturation['goodput']:.1f} cycles/s)",
                    share >= 0.90,
                )
            )
    on = [run for run in results["overload"] if run["admission"] == "on"]
    timeout = on[0]["queue_timeout_seconds"]
    accepted = max(run["accepted_ms"]["p99"] for run in on)
    refused_runs = [run for run in on if run["refused_ms"]["n"]]
    refused = max((run["refused_ms"]["p99"] for run in refused_runs), default=math.nan)
    healthz = max(run["healthz_ms"]["p99"] for run in on)
    rss = max(max(run["peak_rss_mb"]) for run in on)
    goal_ms = (timeout + 0.5) * 1000
    found += [
        Target(
            "Overload: accepted requests p99, worst run, admission on",
            f"≤ {goal_ms:.0f} ms",
            f"{accepted:.0f} ms",
            accepted <= goal_ms,
        ),
        Target(
            "Overload: refused requests p99, worst run, admission on",
            "≤ 50 ms",
            f"{refused:.1f} ms" if refused_runs else "none refused",
            not refused_runs or refused <= 50,
        ),
        Target(
            "Overload: `/healthz` p99, worst run, admission on",
            "≤ 20 ms",
            f"{healthz:.1f} ms",
            healthz <= 20,
        ),
        Target(
            "Overload: peak RSS per worker, admission on",
            "≤ 250 MB",
            f"{rss:.0f} MB",
            rss <= 250,
        ),
    ]
    return found


def errors(results: dict[str, Any]) -> list[str]:
    """Everything that went wrong (as opposed to slow) in the run."""
    problems = []
    for run in results.get("overload", []):
        label = f"overload {run['connections']} connections, admission {run['admission']}"
        for what, count in {**run["errors"], **run["healthz_errors"]}.items():
            problems.append(f"{label}: {count} x {what}")
        for what, count in run["ledger"]["violations"].items():
            problems.append(f"{label}: ledger: {count} x {what}")
        if run["admission"] == "off" and run["refused"]:
            problems.append(f"{label}: refusals with the unbounded queue")
    for label, run in results["cycle"].items():
        for what, count in {**run["errors"], **run["healthz_errors"]}.items():
            problems.append(f"{label}: {count} x {what}")
        if run["cycles"] == 0:
            problems.append(f"{label}: no cycle completed")
    for size in results["scale"]["sizes"]:
        for what, count in size["errors"].items():
            problems.append(f"scale {size['size']:,} rows: {count} x {what}")
    purge = results["scale"]["purge"]
    for what, count in purge["errors"].items():
        problems.append(f"reveals during purge: {count} x {what}")
    if results["profile"]["name"] == "full":
        # On a quiet machine paced reveals stay far below capacity: a refusal is a fault. The
        # smoke run, never quiet, fails on errors only.
        for phase, refused in _scale_refusals(results):
            problems.append(f"{phase}: {refused:,} reveals refused at capacity")
    if purge["left_expired"] or purge["purged"] != purge["expired_rows"]:
        problems.append(
            f"purge removed {purge['purged']:,} of {purge['expired_rows']:,} expired rows, "
            f"{purge['left_expired']:,} left"
        )
    if purge.get("receipts_left_pending"):
        problems.append(
            f"after the purge {purge['receipts_left_pending']:,} receipts of expired secrets "
            "still say pending"
        )
    return problems


def _scale_refusals(results: dict[str, Any]) -> list[tuple[str, int]]:
    scale = results["scale"]
    phases = [(f"scale {size['size']:,} rows", size) for size in scale["sizes"]]
    phases.append(("reveals during purge", scale["purge"]))
    return [(name, phase["refused"]) for name, phase in phases if phase.get("refused")]


def disturbances(results: dict[str, Any], threshold: float = 0.05) -> list[str]:
    """Measured windows in which other work on the machine took over `threshold` of the CPU."""
    found = []
    other = results["ceiling"].get("other_processes_share", 0.0)
    if other > threshold:
        found.append(f"the ceiling ({other:.0%})")
    for label, run in ((label, results["cycle"][label]) for label in RUNS):
        shares = run["cpu"]["share_of_machine"]
        share = shares.get("other processes", 0.0)
        if share > threshold:
            found.append(f"{label} ({share:.0%})")
        workers = [value for name, value in shares.items() if name.startswith("worker")]
        if workers and min(workers) < 0.25 * sum(workers):
            found.append(f"{label} (one worker got most of the connections)")
    scale = results["scale"]
    for phase in scale["sizes"]:
        share = phase.get("other_processes_share", 0.0)
        if share > threshold:
            found.append(f"reveals at {phase['size']:,} rows ({share:.0%})")
    share = scale["purge"].get("other_processes_share", 0.0)
    if share > threshold:
        found.append(f"the purge ({share:.0%})")
    for run in results.get("overload", []):
        share = run["cpu"]["share_of_machine"].get("other processes", 0.0)
        if share > threshold:
            found.append(f"overload {run['connections']} {run['admission']} ({share:.0%})")
    return found


def _verdict(target: Target) -> str:
    return "**PASS**" if target.passed else "**FAIL**"


def _ms(summary: dict[str, float], *keys: str) -> str:
    return " / ".join(f"{summary[key]:.1f}" for key in keys)


def _share(run: dict[str, Any], *groups: str) -> str:
    shares = run["cpu"]["share_of_machine"]
    return f"{sum(shares.get(group, 0.0) for group in groups) * 100:.0f}%"


def _cycle_table(results: dict[str, Any]) -> list[str]:
    ceiling = results["ceiling"]["pairs_per_second"]
    lines = [
        "| Run | Cycles/s | ÷ ceiling | create p50 / p95 / p99 | reveal p50 / p95 / p99 "
        "| cycle p50 / p99 | `/healthz` p50 / p99 / max | Errors |",
        "| --- | ---: | ---: | --- | --- | --- | --- | ---: |",
    ]
    for label in RUNS:
        run = results["cycle"][label]
        latency = run["latency_ms"]
        share = ratio(run["cycles_per_second"], ceiling)
        efficiency = f"{share:.2f}" if label.endswith("default") else "—"
        lines.append(
            f"| {label} | {run['cycles_per_second']:.1f} | {efficiency} "
            f"| {_ms(latency['create'], 'p50', 'p95', 'p99')} "
            f"| {_ms(latency['reveal'], 'p50', 'p95', 'p99')} "
            f"| {_ms(latency['cycle'], 'p50', 'p99')} "
            f"| {_ms(run['healthz_ms'], 'p50', 'p99', 'max')} "
            f"| {sum(run['errors'].values()) + sum(run['healthz_errors'].values())} |"
        )
    return lines


def _per_cycle(run: dict[str, Any]) -> str:
    costs = run.get("cpu_ms_per_cycle")
    if not costs:
        return "—"
    workers = f"{costs['workers']:.2f}"
    if "event loops" in costs:  # results saved before the split have none
        workers += f" ({costs['event loops']:.2f} + {costs['other threads']:.2f})"
    return " / ".join([workers, *(f"{costs[name]:.2f}" for name in ("postgres", "load generator"))])


def _cpu_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| Run | Machine busy | Server workers (each) | PostgreSQL | Load generator | Poller "
        "| Other processes | Load generator, of one core | CPU ms per cycle: workers (event "
        "loops + other threads) / PostgreSQL / load generator |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for label in RUNS:
        run = results["cycle"][label]
        workers = [name for name in run["cpu"]["seconds"] if name.startswith("worker")]
        lines.append(
            f"| {label} | {_share(run, 'machine')} | {_share(run, *workers)} "
            f"({' / '.join(_share(run, worker) for worker in workers)}) "
            f"| {_share(run, 'postgres')} | {_share(run, 'load generator')} "
            f"| {_share(run, 'healthz poller')} | {_share(run, 'other processes')} "
            f"| {run['loadgen_cpu_of_one_core'] * 100:.0f}% "
            f"| {_per_cycle(run)} |"
        )
    return lines


def _receipts(size: dict[str, Any]) -> str:
    # Results saved before receipts existed have no receipt counts.
    if "receipts_at_start" not in size:
        return ""
    return (
        f"; receipts {_rows(size['receipts_at_start'])}, "
        f"{_rows(size['receipts_revealed'])} of them revealed"
    )


def _purged_receipts(purge: dict[str, Any]) -> str:
    if "receipts" not in purge:
        return ""
    return (
        f"; receipts {_rows(purge['receipts'])}, {_rows(purge['receipts_expired'])} "
        "marked expired by the purge"
    )


def _scale_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| Table | Bulk load | Reveals | Reveal p50 / p95 / p99 / max (ms) | Errors |",
        "| --- | ---: | ---: | --- | ---: |",
    ]
    for size in results["scale"]["sizes"]:
        lines.append(
            f"| {_rows(size['size'])} live rows ({_rows(size['rows_at_start'])} → "
            f"{_rows(size['rows_at_end'])} with the revealed ones{_receipts(size)}) "
            f"| {size['load_seconds']:.1f} s "
            f"| {size['reveals']} | {_ms(size['latency_ms'], 'p50', 'p95', 'p99', 'max')} "
            f"| {sum(size['errors'].values())} |"
        )
    purge = results["scale"]["purge"]
    lines.append(
        f"| during the purge of {_rows(purge['expired_rows'])} expired rows "
        f"(beside {_rows(purge['live_rows'])} live{_purged_receipts(purge)}) "
        f"| {purge['load_seconds']:.1f} s "
        f"| {purge['reveals']} | {_ms(purge['latency_ms'], 'p50', 'p95', 'p99', 'max')} "
        f"| {sum(purge['errors'].values())} |"
    )
    return lines


def _overload_table(results: dict[str, Any]) -> list[str]:
    runs = results.get("overload", [])
    if not runs:
        return []
    profile = results["profile"]
    lines = [
        "## Overload",
        "",
        "The service at its default argon2, `HASH_QUEUE_TIMEOUT_SECONDS=inf` (admission off: "
        "the unbounded queue of before) against the default "
        f"{next((r['queue_timeout_seconds'] for r in runs if r['admission'] == 'on'), 1.0)} s "
        "(admission on), each at "
        + ", ".join(f"{m}x" for m in profile["overload_multiples"])
        + f" the {profile['clients']} connections that saturate the workers; "
        f"{profile['overload_warmup_seconds']:.0f} s warm-up, "
        f"{profile['overload_seconds']:.0f} s measured. Each connection loops create → reveal "
        "(`bench.loadgen overload`): a 503 at capacity is never retried, the cycle is given up "
        + (
            "and the client waits `Retry-After` before its next one"
            if profile["overload_honours_retry_after"]
            else "and the client starts its next one at once"
        )
        + ". Goodput counts whole cycles. Latencies in ms; accepted = creates and reveals "
        "answered other than 503, refused = those answered 503. Afterwards the ledger check "
        "reveals each secret whose reveal was refused (once: it must come back whole; a "
        "second reveal must 404) and tries again a sample of those revealed during the run "
        "(each must 404).",
        "",
        "| Connections | Admission | Goodput (cycles/s) | Accepted p50 / p99 | Refused (p99) "
        "| `/healthz` p99 | Peak RSS per worker (MB) | Load generators (CPU of a core each) "
        "| Ledger | Errors |",
        "| ---: | --- | ---: | --- | --- | ---: | --- | --- | --- | ---: |",
    ]
    for run in runs:
        refused = sum(run["refused"].values())
        refused_cell = f"{refused:,} ({run['refused_ms']['p99']:.1f})" if refused else "0"
        ledger = run["ledger"]
        violations = sum(ledger["violations"].values())
        ledger_cell = (
            f"{ledger['pending']:,} revealed after, {ledger['rechecked']:,} rechecked: "
            + (f"**{violations} violations**" if violations else "OK")
        )
        errors = sum(run["errors"].values()) + sum(run["healthz_errors"].values())
        lines.append(
            f"| {run['connections']} | {run['admission']} | {run['goodput']:.1f} "
            f"| {_ms(run['accepted_ms'], 'p50', 'p99')} | {refused_cell} "
            f"| {run['healthz_ms']['p99']:.1f} "
            f"| {' / '.join(f'{peak:.0f}' for peak in run['peak_rss_mb'])} "
            f"| {run['loadgen_processes']} ({run['loadgen_cpu_of_one_core']:.0%}) "
            f"| {ledger_cell} | {errors} |"
        )
    return [*lines, ""]


def _memory_table(results: dict[str, Any]) -> list[str]:
    lines = ["| Run | Peak RSS per worker (MB) |", "| --- | --- |"]
    for label in RUNS:
        peaks = results["cycle"][label]["peak_rss_mb"]
        lines.append(f"| {label} | {' / '.join(f'{peak:.0f}' for peak in peaks)} |")
    return lines


def _machine(results: dict[str, Any]) -> list[str]:
    machine = results["machine"]
    packages = ", ".join(f"{name} {version}" for name, version in machine["packages"].items())
    return [
        f"- **Machine**: {machine['cpu']}, {machine['cores']} cores, "
        f"{machine['memory_gib']:.0f} GiB RAM, {machine['os']}.",
        f"- **Software**: Python {machine['python']}, PostgreSQL {machine['postgresql']}; "
        f"{packages}.",
        f"- **Code**: commit {machine['commit']}.",
    ]


def _worker_ms(run: dict[str, Any]) -> str:
    costs = run.get("cpu_ms_per_cycle")
    return f"{costs['workers']:.1f} ms" if costs else "—"


def _notes(results: dict[str, Any]) -> list[str]:
    cycle = results["cycle"]
    ceiling = results["ceiling"]
    service, baseline = cycle["service-default"], cycle["baseline-default"]
    cheap, baseline_cheap = cycle["service-cheap"], cycle["baseline-cheap"]
    small, large = results["scale"]["sizes"][0], results["scale"]["sizes"][-1]
    return [
        f"- **Ceiling.** One hash costs {ceiling['hash_ms']:.1f} ms and one verify "
        f"{ceiling['verify_ms']:.1f} ms on an idle core, so {ceiling['cores']} cores predict "
        f"{ceiling['predicted_pairs_per_second']:.1f} pairs/s; {ceiling['pairs_per_second']:.1f} "
        "were measured with one process per core and nothing else running.",
        f"- **Efficiency in the single 30 s run** {efficiency(results):.2f} (the targets take "
        "the head-to-head rounds instead): the service ran "
        f"{service['cycles_per_second']:.1f} cycles/s against that ceiling, while the same two "
        f"cores also ran PostgreSQL ({_share(service, 'postgres')} of the machine), the load "
        f"generator ({_share(service, 'load generator')}) and the poller. The baseline ran "
        f"{baseline['cycles_per_second']:.1f} cycles/s (service ÷ baseline "
        f"{ratio(service['cycles_per_second'], baseline['cycles_per_second']):.2f}x). CPU per "
        f"cycle in the workers: {_worker_ms(service)} in the service, {_worker_ms(baseline)} "
        "in the baseline.",
        f"- **Responsiveness**: `/healthz` p99 {service['healthz_ms']['p99']:.1f} ms in the "
        f"service against {baseline['healthz_ms']['p99']:.1f} ms in the baseline, which hashes "
        "on its event loop.",
        "- **Overhead** (information, no longer a target): with the cheapest argon2 "
        f"({results['cheap_costs']['hash_ms']:.2f} ms a hash) the service ran "
        f"{cheap['cycles_per_second']:.0f} cycles/s, the baseline "
        f"{baseline_cheap['cycles_per_second']:.0f}: "
        f"{ratio(cheap['cycles_per_second'], baseline_cheap['cycles_per_second']):.2f}x. "
        f"The workers spent {_worker_ms(cheap)} of CPU per cycle against the baseline's "
        f"{_worker_ms(baseline_cheap)}: see the profile for where the difference goes.",
        f"- **Scale**: reveal p50 {small['latency_ms']['p50']:.2f} ms at "
        f"{_rows(small['size'])} rows, {large['latency_ms']['p50']:.2f} ms at "
        f"{_rows(large['size'])} rows "
        f"({ratio(large['latency_ms']['p50'], small['latency_ms']['p50']):.2f}x).",
    ]


def _profile_lines(results: dict[str, Any]) -> list[str]:
    profiles = results.get("profiles") or {}
    if not profiles:
        return []
    labels = [label for label in RUNS if label in profiles]
    lines = [
        "## Profile: where the workers' CPU goes",
        "",
        "py-spy sampled both workers of each contender for "
        f"{results['profile']['profile_seconds']:.0f} s under the same cycle load, after the "
        "measured window (so it does not slow the figures "
        "above). Share of on-CPU samples; an operation counts every sample with it anywhere on "
        "the stack, so rows overlap.",
        "",
        f"| Operation | {' | '.join(labels)} |",
        f"| --- | {' | '.join('---:' for _ in labels)} |",
    ]
    for operation in profiles[labels[0]]["operations"]:
        shares = " | ".join(f"{profiles[label]['operations'][operation]:.1%}" for label in labels)
        lines.append(f"| {operation} | {shares} |")
    lines.append(f"| samples | {' | '.join(str(profiles[label]['samples']) for label in labels)} |")
    for label in ("service-cheap", "service-default"):
        if label in profiles:
            lines += ["", f"Most time of their own, {label}:", ""]
            lines += [
                f"- {entry['share']:.1%} `{entry['function']}`"
                for entry in profiles[label]["top_self"]
            ]
    return [*lines, ""]


def _disturbance_lines(results: dict[str, Any]) -> list[str]:
    disturbed = disturbances(results)
    if not disturbed:
        return []
    return [
        "> **Disturbed run.** Other work on the machine took more than 5% of the CPU during: "
        f"{', '.join(disturbed)}. Those figures understate what the contenders can do.",
        "",
    ]


def _head_to_head_lines(results: dict[str, Any]) -> list[str]:
    found = results["head_to_head"]
    rounds = found["rounds"]
    medians = head_to_head(results)
    ratios = [round_ratios(one_round["rates"]) for one_round in rounds]
    # Older results have no "on loop": their table has neither its rate nor its ratios.
    shown = [name for name in CONTENDERS if name in rounds[0]["rates"]]
    computed = [name for name in HEAD_TO_HEAD_RATIOS if name in ratios[0]]
    head = ["Round", "Order", *(name.capitalize() for name in shown)]
    head += [RATIO_LABELS[name].capitalize() for name in computed]
    rows = [
        [
            str(index),
            " → ".join(one_round["order"]),
            *(f"{one_round['rates'][name]:.1f}" for name in shown),
            *(f"{round_ratio[name]:.3f}" for name in computed),
        ]
        for index, (one_round, round_ratio) in enumerate(zip(rounds, ratios, strict=True), 1)
    ]
    rows.append(
        [
            "median",
            "",
            *(f"{medians[name]:.1f}" for name in shown),
            *(f"**{medians[name]:.3f}**" for name in computed),
        ]
    )
    described = [CONTENDER_DESCRIPTIONS[name] for name in shown]
    lines = [
        "## Head to head at the default argon2: the targets' ratios",
        "",
        f"{len(rounds)} rounds; in each, {_and(described)} run {found['seconds']:.0f} s "
        "each, a fresh server "
        "every run, in an order that rotates from round to round. A round's ratios compare "
        "runs at most a minute or two apart, so a drift of the shared machine weighs on both "
        "sides of each; the targets take the median of the rounds' ratios. Rates in cycles/s "
        "(the ceiling in hash + verify pairs/s).",
        "",
        "| " + " | ".join(head) + " |",
        "| ---: | --- | " + " | ".join("---:" for _ in head[2:]) + " |",
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
    ]
    return lines + (_split_lines(results, medians, ratios) if "on loop" in shown else [])


CONTENDER_DESCRIPTIONS = {
    "ceiling": "the ceiling (argon2 alone, one process per core)",
    "service": "the service",
    "baseline": "the baseline",
    "notifying": (
        "the service with every secret asking to be notified (receivers answering after 0.5 s)"
    ),
    "on loop": "the service hashing on its event loop (*on loop*, `bench/hash_on_loop.py`)",
}
CONTENDERS = tuple(CONTENDER_DESCRIPTIONS)


def _and(items: list[str]) -> str:
    return ", ".join(items[:-1]) + " and " + items[-1]


def _split_lines(
    results: dict[str, Any], medians: dict[str, float], ratios: list[dict[str, float]]
) -> list[str]:
    def median_and_range(name: str) -> str:
        low, high = min(r[name] for r in ratios), max(r[name] for r in ratios)
        return f"**{medians[name]:.3f}** ({low:.3f} to {high:.3f} across the rounds)"

    healthz = head_to_head_healthz(results)
    latency = (
        f" `/healthz` p99, the median of the rounds: service {healthz['service']:.1f} ms, "
        f"on loop {healthz['on loop']:.1f} ms, baseline {healthz['baseline']:.1f} ms, "
        f"notifying {healthz['notifying']:.1f} ms (the target is ≤ 20 ms)."
        if healthz
        else ""
    )
    return [
        "**Where service ÷ baseline goes.** *On loop* is the service's code with one "
        "change: each worker hashes on its event loop, as the baseline does. "
        f"On loop ÷ baseline, {median_and_range('own_work')}, is what the service's own work "
        "costs at the default argon2: encryption at rest, receipts, the storage quota, the "
        "attempt claims, admission, rate limits, metrics. Service ÷ on loop, "
        f"{median_and_range('beside_the_loop')}, is what hashing in a thread beside the "
        "event loop costs instead. The benchmark does not measure why; a likely cause is "
        "that two loops and two hash threads share two cores, so a loop that wakes takes a "
        "core from a hash for a while. Hashing beside the loop keeps other requests "
        "answered while hashes run; hashing on the loop makes them wait behind each hash:"
        + latency,
        "",
    ]


def _delivery_lines(results: dict[str, Any]) -> list[str]:
    found = results["delivery"]
    ours, theirs = found["median_ms"]["ours"], found["median_ms"]["httpcore"]
    per_round = found["cpu_ms_per_delivery"]
    return [
        "## Webhook delivery: our sender against httpcore's pool",
        "",
        "The notifier's sender (`api/webhooks/delivery.py`: h11's framing on connections it "
        "keeps itself) replaced httpcore's connection pool, a maintained library. Both POST "
        "the same signed body to one local receiver answering at once, "
        f"{found['concurrency']} at a time as a notifier's batch does, "
        f"{found['deliveries_per_round']:,} deliveries a round, {found['rounds']} rounds in "
        "alternating order; CPU of the sending process per delivery, in ms.",
        "",
        "| Sender | Median | Rounds |",
        "| --- | ---: | --- |",
        f"| ours | {ours:.3f} | {' / '.join(f'{v:.3f}' for v in per_round['ours'])} |",
        f"| httpcore | {theirs:.3f} | {' / '.join(f'{v:.3f}' for v in per_round['httpcore'])} |",
        "",
        f"httpcore ÷ ours: **{ratio(theirs, ours):.2f}x** the CPU per delivery. The rule for "
        "hand-written infrastructure is a lead of at least 5%: "
        + ("it holds, so the sender stays." if theirs >= ours * 1.05 else "it does not hold.")
        + " The notifier runs in the processes that serve reveals, so what it spends, they "
        "lose (see the head-to-head rounds).",
        "",
    ]


def render(results: dict[str, Any], *, chart: str) -> str:
    """Return the whole `BENCHMARKS.md` for `results`, linking the chart at path `chart`."""
    profile = results["profile"]
    default, cheap = results["argon2"]["default"], results["argon2"]["cheap"]
    command = "scripts/bench --smoke" if profile["name"] == "smoke" else "scripts/bench"
    verdicts = targets(results)
    lines = [
        "# Benchmarks",
        "",
        f"A fresh run of `{command}` ({results['duration_seconds'] / 60:.1f} minutes), "
        f"started {results['started_at']}. The file is generated: run the command again to "
        "refresh it. `scripts/bench --smoke` is the short variant CI runs; it fails on errors, "
        "never on timing.",
        "",
        "## Targets",
        "",
        "| Target | Goal | Measured | Result |",
        "| --- | --- | --- | --- |",
        *(f"| {t.name} | {t.goal} | {t.measured} | {_verdict(t)} |" for t in verdicts),
        "",
        f"{sum(t.passed for t in verdicts)} of {len(verdicts)} targets hold. The overhead "
        "against the baseline at the cheapest argon2 is information, no longer a target (see "
        "*Notes*). The one piece of hand-written infrastructure, the webhook sender, stays "
        "on its own figure (see *Webhook delivery*).",
        "",
        *_disturbance_lines(results),
        f"![Benchmark chart]({chart})",
        "",
        "## What it ran on",
        "",
        *_machine(results),
        "",
        "## How it measures",
        "",
        "- **Contenders**: the service (`uvicorn main:app`) and the naive baseline "
        "(`bench/baseline/app.py`: `async def` routes, argon2 called in the handler, "
        "select → verify → delete), each started as `uvicorn … --workers 2 --no-access-log` "
        "on the same PostgreSQL database, made for the run and dropped after it (each its own "
        "table). The head-to-head rounds add an A/B: the service hashing on its event loop "
        "as the baseline does (`bench/hash_on_loop.py`).",
        f"- **Argon2id**: the service's defaults, m={default[0]} KiB, t={default[1]}, "
        f"p={default[2]}; the cheapest, m={cheap[0]} KiB, t={cheap[1]}, p={cheap[2]} "
        "(allowed only with `ALLOW_WEAK_ARGON2=true`). Both contenders get the same.",
        f"- **Load**: {profile['clients']} clients in {profile['loadgen_processes']} "
        "load-generator process(es) (asyncio + uvloop over a minimal HTTP/1.1 keep-alive "
        "client, to leave the cores to the servers), each looping `POST /generate` → "
        "`GET /secrets/{key}?passphrase=…` on a kept-alive connection and checking the "
        "secret; the clients start 10 ms apart so both workers get a share of the "
        "connections (the CPU table shows each worker's part); "
        f"{profile['warmup_seconds']:.0f} s warm-up, then {profile['cycle_seconds']:.0f} s "
        "measured. Every error is counted; the run fails on any.",
        f"- **Responsiveness**: a separate process polls `GET /healthz` every "
        f"{profile['health_interval_seconds'] * 1000:.0f} ms over four kept-alive "
        "connections (each pinned to whichever worker accepted it).",
        f"- **Scale** (service, cheapest argon2 so the database's share shows): the table is "
        f"bulk-loaded (`INSERT … SELECT generate_series` for filler rows, COPY for "
        f"{profile['reveals_per_size']:,} real secrets and a few more to warm up on), each "
        "secret with its pending receipt as the service writes it, so the receipts table "
        "grows alongside and every reveal also updates a receipt; both tables are "
        f"vacuumed, and the real secrets revealed at {profile['reveal_rate']:.0f}/s after an "
        "unrecorded warm-up of 3 s at that rate. Then "
        f"{profile['purge_rows']:,} expired rows are purged by `api.domain.purge.purge_expired` "
        "while reveals continue at the same rate; it marks their receipts expired in the "
        "same transactions.",
        "- **CPU and memory**: psutil reads the CPU time of every process over the "
        "measured window and samples each worker's RSS every 100 ms.",
        "- **A shared machine**: before each scenario the benchmark waits (at most "
        f"{profile['quiet_budget_seconds'] / 60:.0f} minutes in all) until other processes use "
        "under 10% of the CPU; a scenario in which they took more than 10% is measured again "
        f"(up to {profile['retries']} more times) and the cleanest attempt is kept. What they "
        "took anyway is in the *Other processes* column. Attempts this run: "
        + ", ".join(f"{name} {count}" for name, count in results.get("attempts", {}).items())
        + ".",
        "",
        "## Scenarios 1-5: ceiling, cycles, responsiveness, overhead, baseline",
        "",
        f"Ceiling (scenario 1): **{results['ceiling']['pairs_per_second']:.1f}** hash + verify "
        f"pairs/s on {results['ceiling']['cores']} cores "
        f"(hash {results['ceiling']['hash_ms']:.1f} ms, verify "
        f"{results['ceiling']['verify_ms']:.1f} ms on one core). Latencies in ms.",
        "",
        *_cycle_table(results),
        "",
        "Where the CPU went during each measured window (share of all cores):",
        "",
        *_cpu_table(results),
        "",
        *_head_to_head_lines(results),
        *_delivery_lines(results),
        "## Scenario 6: scale",
        "",
        *_scale_table(results),
        "",
        f"Purge: **{results['scale']['purge']['seconds']:.1f} s** for "
        f"{results['scale']['purge']['purged']:,} rows in batches of "
        f"{results['scale']['purge']['batch_size']:,}.",
        "",
        "## Scenario 7: memory",
        "",
        *_memory_table(results),
        "",
        *_overload_table(results),
        *_profile_lines(results),
        "## Notes",
        "",
        *_notes(results),
        "",
    ]
    return "\n".join(lines)


def summary(results: dict[str, Any]) -> str:
    """Return a short plain-text account for the console."""
    lines = [f"[bench] {results['profile']['name']} run, {results['duration_seconds']:.0f} s"]
    for label in RUNS:
        run = results["cycle"][label]
        lines.append(
            f"  {label:17} {run['cycles_per_second']:8.1f} cycles/s   healthz p99 "
            f"{run['healthz_ms']['p99']:7.1f} ms   peak RSS "
            f"{max(run['peak_rss_mb']):5.0f} MB"
        )
    for run in results.get("overload", []):
        lines.append(
            f"  overload {run['connections']:4} admission {run['admission']:3}  "
            + overload_line(run)
        )
    for one_round in results["head_to_head"]["rounds"]:
        lines.append(f"  head to head: {round_line(one_round)}")
    medians = results["delivery"]["median_ms"]
    lines.append(
        f"  webhook delivery, CPU ms each: ours {medians['ours']:.3f}, "
        f"httpcore {medians['httpcore']:.3f}"
    )
    for disturbed in disturbances(results):
        lines.append(f"  disturbed by other processes: {disturbed}")
    for phase, refused in _scale_refusals(results):
        lines.append(f"  refused at capacity: {phase}, {refused:,} reveals")
    for target in targets(results):
        verdict = "PASS" if target.passed else "FAIL"
        lines.append(f"  {verdict}  {target.name}: {target.measured} (goal {target.goal})")
    return "\n".join(lines)
