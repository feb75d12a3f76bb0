"""The results of a run: results.json, report.md, PNG plots, and the summary table printed at the end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

from benchmarks.peers.kroxylicious import VERSION as KROXYLICIOUS

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

#: The issue's targets on this 2-core machine: (what, how to read it from the results, goal, higher is better).
TARGETS = (
    ("produce vs direct, tenant mode", ("ceiling", "ratio_produce"), 0.90, True),
    ("consume vs direct, tenant mode", ("ceiling", "ratio_consume"), 0.90, True),
    ("produce vs direct, tenant mode, records encrypted", ("ceiling", "ratio_produce_encrypted"), 0.70, True),
    ("consume vs direct, tenant mode, records encrypted", ("ceiling", "ratio_consume_encrypted"), 0.70, True),
    ("proxy CPU per GB produced, encrypted, over Kroxylicious record encryption's",
     ("ceiling", "cpu_vs_kroxylicious_enc_produce"), 1.0, False),
    ("proxy CPU per GB consumed, encrypted, over Kroxylicious record encryption's",
     ("ceiling", "cpu_vs_kroxylicious_enc_consume"), 1.0, False),
    ("proxy CPU s per GB produced, tenant mode", ("ceiling", "cpu_s_per_gb_produce"), 2.5, False),
    ("proxy CPU s per GB consumed, tenant mode", ("ceiling", "cpu_s_per_gb_consume"), 0.7, False),
    ("p99 added at 50% load, tenant mode, end to end (ms)", ("latency", "p99_added_at_50"), 1.0, False),
    ("p99 added at 50% load, tenant mode, in the proxy (ms, bucket bound)", ("latency", "p99_in_proxy_at_50"),
     1.0, False),
    ("RSS with 10,000 idle tenant connections (MB)", ("connections", "rss_mb_at_10000"), 150.0, False),
    ("quota accuracy (worst, % off)", ("quotas", "worst_error_pct"), 5.0, False),
    ("fleet quota accuracy (worst, % off)", ("fleet", "worst_error_pct"), 10.0, False),
)


def derived(results: dict[str, Any]) -> None:
    """Add the figures the targets read (where the scenario ran)."""
    ceiling = results.get("ceiling")
    if ceiling:
        for kind in ("produce", "consume"):
            cpu = ceiling.get(f"{kind}_proxy", {}).get("proxy_cpu_s_per_gb")
            if cpu is not None:
                ceiling[f"cpu_s_per_gb_{kind}"] = cpu
            ours = ceiling.get(f"{kind}_encrypted", {}).get("proxy_cpu_s_per_gb")
            theirs = ceiling.get(f"{kind}_kroxylicious_enc", {}).get("proxy_cpu_s_per_gb")
            if ours is not None and theirs:
                ceiling[f"cpu_vs_kroxylicious_enc_{kind}"] = ours / theirs
    latency = results.get("latency")
    if latency:
        at_50 = next((p for p in latency["points"] if p["load"] == 0.5), None)
        if at_50:
            latency["p99_added_at_50"] = at_50["added_ms"]["p99"]
            latency["p99_in_proxy_at_50"] = at_50["in_proxy_ms"]["p99"]
    connections = results.get("connections")
    if connections:
        at_10000 = next((p for p in connections["points"] if p["connections"] == 10000), None)
        if at_10000:
            connections["rss_mb_at_10000"] = at_10000["proxy_rss_mb"]


def target_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows = []
    for what, (scenario, key), goal, higher in TARGETS:
        value = results.get(scenario, {}).get(key)
        if value is None:
            rows.append((what, "not run", f"{'≥' if higher else '≤'} {goal:g}", "-"))
            continue
        met = value >= goal if higher else value <= goal
        rows.append((what, f"{value:.2f}", f"{'≥' if higher else '≤'} {goal:g}", "met" if met else "MISSED"))
    return rows


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _errors(errors: dict[str, int] | int) -> str:
    """`0`, or the count and its kinds: `12 (fetch error 6: 10, connection lost: 2)`."""
    if isinstance(errors, int):  # results written before errors had kinds
        return str(errors)
    total = sum(errors.values())
    return f"{total} ({', '.join(f'{kind}: {n}' for kind, n in sorted(errors.items()))})" if total else "0"


def plain_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows])


def _save(fig: Any, out: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out / name)
    plt.close(fig)
    return name


def plots(results: dict[str, Any], out: Path) -> list[str]:
    made = []
    ceiling = results.get("ceiling")
    if ceiling:
        fig, ax = plt.subplots(figsize=(6, 4))
        kinds = ["produce", "consume"]
        direct = [ceiling[f"{k}_direct"]["mb_per_sec"] for k in kinds]
        proxy = [ceiling[f"{k}_proxy"]["mb_per_sec"] for k in kinds]
        xs = range(len(kinds))
        ax.bar([x - 0.2 for x in xs], direct, 0.4, label="direct")
        ax.bar([x + 0.2 for x in xs], proxy, 0.4, label="through the proxy")
        ax.set_xticks(list(xs), kinds)
        ax.set_ylabel("MB/s (1 KiB records, acks=all)")
        ax.set_title("Ceiling")
        ax.legend()
        made.append(_save(fig, out, "ceiling.png"))
    latency = results.get("latency")
    if latency:
        fig, ax = plt.subplots(figsize=(6, 4))
        loads = [p["load"] * 100 for p in latency["points"]]
        for pct, style in (("p50", "o-"), ("p99", "s-"), ("p999", "^-")):
            ax.plot(loads, [p["direct"][f"{pct}_ms"] for p in latency["points"]], style, label=f"{pct} direct")
            ax.plot(loads, [p["proxy"][f"{pct}_ms"] for p in latency["points"]], style + "-", alpha=0.6,
                    label=f"{pct} proxy")
        ax.set_xlabel("load (% of the direct ceiling)")
        ax.set_ylabel("produce latency (ms)")
        ax.set_title("Latency at fixed load")
        ax.legend(fontsize="small")
        made.append(_save(fig, out, "latency.png"))
    connections = results.get("connections")
    if connections:
        fig, ax = plt.subplots(figsize=(6, 4))
        points = connections["points"]
        ax.plot([p["connections"] for p in points], [p["proxy_rss_mb"] for p in points], "o-")
        ax.set_xlabel("idle authenticated connections")
        ax.set_ylabel("proxy RSS (MB)")
        ax.set_title("Connection scale")
        made.append(_save(fig, out, "connections.png"))
    many = results.get("tenants")
    if many:
        fig, ax = plt.subplots(figsize=(6, 4))
        counts = [p["tenants"] for p in many["points"]]
        for side, style in (("direct", "o-"), ("proxy", "s-")):
            ax.plot(counts, [p[side]["steady_p99_ms"] or 0 for p in many["points"]], style, label=f"steady p99, {side}")
        ax.set_xscale("log")
        ax.set_xlabel("tenants")
        ax.set_ylabel("produce latency (ms)")
        ax.set_title("Many tenants, with one noisy")
        ax.legend()
        made.append(_save(fig, out, "tenants.png"))
    return made


def markdown(results: dict[str, Any], images: list[str]) -> str:
    meta = results["meta"]
    parts = [f"# Tenantry benchmark, {meta['started']}", "",
             f"Kafka {meta['kafka_version']}, {'quick' if meta['quick'] else 'full'} run, {meta['cpus']} cores, "
             f"{meta['seconds']:.0f} s. Every scenario runs straight to the broker and through the proxy in "
             "the same run.", "", "## Targets", "",
             table(("target", "measured", "goal", ""), target_rows(results)), ""]
    ceiling = results.get("ceiling")
    if ceiling:
        peer = "ratio_produce_kroxylicious" in ceiling
        runs = ceiling.get("runs", {})

        def mb(key: str) -> str:
            """The median, and the lowest to highest run when there were several."""
            each = [r["mb_per_sec"] for r in runs.get(key, [])]
            spread = f" ({min(each):.0f} to {max(each):.0f})" if len(each) > 1 else ""
            return f"{ceiling[key]['mb_per_sec']:.1f}{spread}"
        columns = [side for side in ("proxy", "encrypted", "transparent", "kroxylicious", "kroxylicious_mt",
                                     "kroxylicious_enc") if f"produce_{side}" in ceiling]
        names = {"proxy": "tenant mode", "encrypted": "tenant mode, encrypted", "transparent": "transparent",
                 "kroxylicious": "Kroxylicious", "kroxylicious_mt": "Kroxylicious multi-tenant",
                 "kroxylicious_enc": "Kroxylicious record encryption"}

        def cpu(key: str) -> str:
            value = ceiling[key].get("proxy_cpu_s_per_gb")
            return "-" if value is None else f"{value:.2f}"
        rows = [(k, mb(f"{k}_direct"), *(cell for side in columns for cell in (
                    mb(f"{k}_{side}"), f"{ceiling[f'ratio_{k}' if side == 'proxy' else f'ratio_{k}_{side}']:.2f}",
                    cpu(f"{k}_{side}"))))
                for k in ("produce", "consume")]
        header = ("", "direct MB/s", *(h for side in columns for h in (
            f"{names[side]} MB/s", "ratio", "CPU s/GB")))
        parts += ["## Ceiling", "", f"{ceiling['records']} records of 1 KiB per run, acks=all, in mirrored order "
                  "(direct, tenant mode, encrypted, transparent, transparent, encrypted, tenant mode, direct); "
                  "encrypted is tenant mode with record encryption on for every topic; CPU s/GB is the proxy "
                  "process's CPU seconds per GB moved; each "
                  "side's median over its runs (lowest to highest in brackets)"
                  + (f"; Kroxylicious {KROXYLICIOUS} in pass-through, with its multi-tenant filter (names "
                     "prefixed per virtual cluster, no logins) and with its record-encryption filter (every topic, "
                     "in-memory KMS), each after its own warm-up." if peer else "."), "",
                  table(header, rows), ""]
    latency = results.get("latency")
    if latency:
        peer = any(p.get("kroxylicious") for p in latency["points"])
        rows = [(f"{p['load'] * 100:.0f}%", f"{p['records_per_sec']:.0f}",
                 *(f"{p['direct'][f'{q}_ms']:.0f} / {p['proxy'][f'{q}_ms']:.0f} ({p['added_ms'][q]:+.0f})"
                   + (f" / {p['kroxylicious'][f'{q}_ms']:.0f}" if peer else "")
                   for q in ("p50", "p99", "p999")),
                 " / ".join(f"{p['spread_ms'][side]['p99'][0]:.0f} to {p['spread_ms'][side]['p99'][1]:.0f}"
                            for side in ("direct", "proxy")),
                 " / ".join(f"≤ {p['in_proxy_ms'][q]:g}" for q in ("p50", "p99", "p999")))
                for p in latency["points"]]
        rounds = latency["points"][0]["rounds"]
        parts += ["## Latency at fixed load", "",
                  "Produce latency in ms, direct / proxy (added)" + (" / Kroxylicious" if peer else "")
                  + f": ProducerPerformance's steady state (warm-up left out), median of {rounds} alternating "
                  "run(s) per side, in whole milliseconds. The p99 spread is the lowest to highest run. *In the "
                  "proxy* is the proxy's own Produce histogram (request and response handling together) over "
                  "the proxied runs, as the bound of the bucket holding p50 / p99 / p99.9.", "",
                  table(("load", "records/s", "p50", "p99", "p99.9", "p99 spread direct / proxy",
                         "in the proxy p50 / p99 / p99.9"), rows), ""]
    connections = results.get("connections")
    if connections:
        rows = [(str(p["connections"]), str(p["opened"]), f"{p['logins_per_sec']:.0f}",
                 f"{p['proxy_rss_mb']:.0f}", f"{p['kb_per_connection']:.1f}") for p in connections["points"]]
        parts += ["## Connection scale", "", f"Idle connections logged in with SCRAM-SHA-256 as users of "
                  f"{connections['tenants']} tenants.", "",
                  table(("connections", "opened", "logins/s", "proxy RSS MB", "kB per connection"), rows), ""]
    many = results.get("tenants")
    if many:
        rows = []
        for p in many["points"]:
            for side in ("direct", "proxy"):
                r = p[side]
                rows.append((str(p["tenants"]), side, f"{r['produced_mb_per_sec']:.1f}",
                             f"{r['fetched_mb_per_sec']:.1f}",
                             f"{r['steady_achieved_mb_per_sec']:.2f} / {r['steady_offered_mb_per_sec']:.0f}",
                             f"{r['steady_fairness']:.3f}", _ms(r["steady_p50_ms"]), _ms(r["steady_p99_ms"]),
                             f"{r['noisy_mb_per_sec']:.1f}", f"{r.get('proxy_cpu_pct', 0):.0f}%" if side == "proxy"
                             else "-", f"{r['proxy_rss_mb']:.0f}" if side == "proxy" else "-", _errors(r["errors"])))
        parts += ["## Many tenants", "", "Per tenant one topic, a producer and a consumer: steady, bursty, idle, and "
                  f"tenant 0 noisy (flat out; {many['noisy_quota_mb_per_sec']:.0f} MB/s produce quota through the "
                  "proxy). Fairness is Jain's index of steady tenants' achieved/offered rates.", "",
                  table(("tenants", "side", "produced MB/s", "fetched MB/s", "steady MB/s (got / offered)",
                         "fairness", "steady p50 ms", "steady p99 ms", "noisy MB/s", "proxy CPU", "proxy RSS MB",
                         "errors"), rows), ""]
    quota = results.get("quotas")
    if quota:
        rows = [(a["kind"], a["tenant"], f"{a['quota_mb_per_sec']:.2f}", f"{a['measured_mb_per_sec']:.3f}",
                 f"{a['error_pct']:+.1f}%") for a in quota["accuracy"]]
        parts += ["## Quotas", "", "Accuracy: raw clients flat out through the proxy, measured after the burst.", "",
                  table(("quota", "tenant", "configured MB/s", "measured MB/s", "off by"), rows), ""]
        rows = [(i["side"], "yes" if i["neighbour"] else "no", f"{i['victim_mb_per_sec']:.2f}",
                 _ms(i["victim_p50_ms"]), _ms(i["victim_p99_ms"]), f"{i['neighbour_mb_per_sec']:.1f}")
                for i in quota["isolation"]]
        parts += ["Isolation: a victim producing 1 MB/s beside a neighbour producing flat out (held to its quota "
                  "only through the proxy).", "",
                  table(("side", "neighbour", "victim MB/s", "victim p50 ms", "victim p99 ms", "neighbour MB/s"),
                        rows), ""]
    fleet = results.get("fleet")
    if fleet:
        rows = [(p["setup"], f"{p['measured_mb_per_sec']:.3f} / {p['quota_mb_per_sec']:.0f}", f"{p['error_pct']:+.1f}%",
                 f"{p['aggregate_mb_per_sec']:.1f}", f"{p['direct_mb_per_sec']:.1f}",
                 f"{p['aggregate_mb_per_sec'] / p['direct_mb_per_sec']:.2f}",
                 f"{p['coordination_bytes_per_sec_per_replica']:.0f}") for p in fleet["points"]]
        parts += ["## Fleet", "", "quota_coordination = kafka. A tenant's 4 MB/s produce quota with three flat-out "
                  "clients spread over the replicas (workers: spread by the kernel); aggregate: one flat-out client "
                  "per replica of a tenant without quota, beside as many straight to the broker.", "",
                  table(("setup", "tenant MB/s (got / quota)", "off by", "aggregate MB/s", "direct MB/s",
                         "ratio", "coordination B/s per replica"), rows), ""]
    parts += [f"![{name}]({name})" for name in images]
    return "\n".join(parts) + "\n"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def write(results: dict[str, Any], out: Path) -> str:
    """Write every file; return the summary table for the terminal."""
    derived(results)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    images = plots(results, out)
    (out / "report.md").write_text(markdown(results, images))
    return plain_table(("target", "measured", "goal", ""), target_rows(results))
