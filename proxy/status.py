"""`tenantry status`: what a running proxy is doing, per tenant, from its /status endpoint.

:func:`snapshot` builds the JSON the proxy serves; :func:`render` turns it into the table the
command prints. Both are plain functions, so the table is tested without a proxy.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from tenantry.tenants.quotas import RATE_KEYS

if TYPE_CHECKING:
    from tenantry.proxy.server import ProxyServer

STARTED = time.time()


def snapshot(server: ProxyServer) -> dict[str, Any]:
    users: dict[str, dict[str, int]] = {}
    for conn in server.connections:
        tenant_id, user = conn.meter.tenant_id, conn.principal_name or ""
        by_user = users.setdefault(tenant_id, {})
        by_user[user] = by_user.get(user, 0) + 1
    rates = server.usage.rates()
    tenants = []
    for tenant_id in sorted(set(server.registry.tenants) | set(users)):
        meters = server.quotas.meters.get(tenant_id)
        quotas = {}
        for resource in RATE_KEYS:
            limit = meters.effective_rate(resource) if meters else None
            rate = rates.get(tenant_id, {}).get(resource, 0.0)
            quotas[resource] = {"rate": rate, "limit": limit, "utilisation": rate / limit if limit else None}
        t = server.stats.tenants.get(tenant_id)
        tenants.append({
            "tenant": tenant_id,
            "connections": sum(users.get(tenant_id, {}).values()),
            "users": users.get(tenant_id, {}),
            "quotas": quotas,
            "throttle_seconds": dict(t.throttle_seconds) if t else {},
            "bytes_in": t.bytes_in if t else 0,
            "bytes_out": t.bytes_out if t else 0,
            "records_in": t.records_in if t else 0,
        })
    brokers = [{"broker": b, "up": s.up, "connects": s.connects, "errors": dict(s.errors)}
               for b, s in sorted(server.stats.brokers.items())]
    return {
        "uptime_seconds": round(time.time() - STARTED, 1),
        "ready": server.health.ready,
        "connections": len(server.connections),
        "event_loop_lag_seconds": server.stats.loop_lag_last,
        "tenants": tenants,
        "brokers": brokers,
        "fleet": server.fleet.status() if server.fleet is not None else None,
    }


def _rate(quota: dict[str, Any], unit: str) -> str:
    text = _human(quota["rate"], unit)
    if quota["limit"]:
        text += f" / {_human(quota['limit'], unit)} ({quota['utilisation'] * 100:.0f}%)"
    return text


def _human(value: float, unit: str) -> str:
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.1f} {prefix}{unit}"
    return f"{value:.0f} {unit}"


def render(status: dict[str, Any]) -> str:
    """The snapshot as a table: one line per tenant (tenant "" is connections not logged in)."""
    lines = [f"ready: {'yes' if status['ready'] else 'NO'}   connections: {status['connections']}   "
             f"uptime: {status['uptime_seconds']:.0f} s   event-loop lag: "
             f"{status['event_loop_lag_seconds'] * 1000:.1f} ms", ""]
    header = ("TENANT", "CONNS", "PRODUCE", "FETCH", "REQUESTS", "THROTTLED")
    rows = [header]
    for t in status["tenants"]:
        q = t["quotas"]
        rows.append((t["tenant"] or "(not logged in)", str(t["connections"]), _rate(q["produce"], "B/s"),
                     _rate(q["fetch"], "B/s"), _rate(q["requests"], "req/s"),
                     f"{sum(t['throttle_seconds'].values()):.1f} s"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.append("")
    for b in status["brokers"]:
        state = "unknown" if b["up"] is None else "up" if b["up"] else "DOWN"
        errors = ", ".join(f"{k} {v}" for k, v in sorted(b["errors"].items())) or "no errors"
        lines.append(f"broker {b['broker']}: {state}, {b['connects']} connections opened, {errors}")
    if status.get("fleet"):
        lines += ["", *_fleet(status["fleet"])]
    return "\n".join(lines)


_UNITS = {"produce": "B/s", "fetch": "B/s", "requests": "req/s", "connections": "conn/s", "max_connections": "conns"}


def _fleet(fleet: dict[str, Any]) -> list[str]:
    """Each tenant limit: the fleet's use against it, and every replica's slice."""
    state = "coordinated" if fleet["coordinated"] else f"NOT coordinated ({fleet['last_error'] or 'no reports'}): " \
        f"each replica enforces its limits / {fleet['fleet_size']}"
    lines = [f"fleet: {len(fleet['replicas'])} replicas, {state}; this one is {fleet['replica']}"]
    rows = [("TENANT", "LIMIT", "FLEET USE", "SLICES")]
    for item in fleet["limits"]:
        unit = _UNITS[item["limit"].partition("/")[0]]
        use = f"{_human(item['used'], unit)} / {_human(item['configured'], unit)}"
        slices = ", ".join(f"{r}{' (this)' if r == fleet['replica'] else ''} {_human(v, unit)}"
                           for r, v in item["slices"].items())
        rows.append((item["tenant"], item["limit"], use, slices))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return lines + ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
