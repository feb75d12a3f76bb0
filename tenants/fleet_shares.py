"""Each replica's slice of a tenant-wide limit, from what the fleet reports (the sans-I/O core of issue 19).

Every interval each replica reports, per tenant and limit, what it used and whether it held the tenant
back (throttled it), with how many of the tenant's connections were active there. From the live
replicas' last reports, every replica computes the same split, by water-filling (max-min fairness):

- a replica that did not hold the tenant back is given what it used plus room to grow (`headroom`), at
  least a small floor so that a client arriving there is not starved before the next report;
- what is left goes to the replicas that held the tenant back, in proportion to their active
  connections (two flat-out producers on one replica and one on another get two thirds and one third);
- if nobody is held back, the leftover is spread in proportion to the shares, so the slices always add
  up to the limit: the fleet together enforces the configured quota, whatever the spread.

A replica that has not reported for `expire_intervals` intervals is dropped. Without any report (the
coordination topic unreachable), a replica falls back to the limit divided by the last known fleet size.
Nothing here does I/O: the proxy feeds reports in and reads shares out.

Replicas read the reports at different moments, so their latest views differ, and slices computed from
different views need not add up to the limit (two replicas may each give themselves the room left).
With `lag_rounds` set, every replica computes from the same view instead: time is cut into rounds of
one interval (by the sending clocks), and each replica's report of `lag_rounds` rounds ago, which has
reached every replica by then, is what everyone splits by. It costs that many intervals of reaction.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Usage:
    """One replica's use of one tenant's limit over the last interval."""

    used: float  # units per second (bytes/s, requests/s, connections)
    throttled: bool  # it held the tenant back at least once
    active: int = 1  # the tenant's connections that used this limit there


@dataclass(frozen=True, slots=True)
class Report:
    replica: str
    usage: dict[tuple[str, str], Usage]  # (tenant, limit name) -> usage


def allocate(limit: float, usage: dict[str, Usage], headroom: float = 1.25,
             floor_fraction: float = 0.05) -> dict[str, float]:
    """Split `limit` over the replicas in `usage`; the shares add up to `limit`."""
    if not usage:
        return {}
    floor = limit * floor_fraction / len(usage)
    wants = {r: float("inf") if u.throttled else max(floor, u.used * headroom) for r, u in usage.items()}
    shares: dict[str, float] = {}
    remaining = limit
    satisfied = sorted((r for r in usage if not usage[r].throttled), key=lambda r: wants[r])
    held = [r for r in usage if usage[r].throttled]
    open_count = len(satisfied) + len(held)
    for replica in satisfied:  # the lightest first: each takes what it wants, up to an equal part of the rest
        shares[replica] = min(wants[replica], remaining / open_count)
        remaining -= shares[replica]
        open_count -= 1
    if held:
        weight = sum(max(usage[r].active, 1) for r in held)
        for replica in held:
            shares[replica] = remaining * max(usage[replica].active, 1) / weight
    elif remaining > 0:
        total = sum(shares.values())
        for replica in shares:
            shares[replica] += remaining * shares[replica] / total if total else remaining / len(shares)
    return shares


def allocate_count(limit: int, usage: dict[str, Usage]) -> dict[str, float]:
    """Split a limit on things that stay (connections): each replica keeps what it holds open (`used`), and
    only the room left is shared, among the replicas that refused someone, by their connections (or evenly
    among all while nobody did, so that a client may land anywhere). A full limit stays full until
    connections close, wherever the new demand is."""
    if not usage:
        return {}
    room = max(0.0, limit - sum(u.used for u in usage.values()))
    wanting = [r for r in usage if usage[r].throttled] or list(usage)
    weight = sum(max(usage[r].active, 1) for r in wanting)
    return {r: u.used + (room * max(u.active, 1) / weight if r in wanting else 0.0) for r, u in usage.items()}


@dataclass
class FleetShares:
    """This replica's view of the fleet: live replicas and its own slice of each tenant's limits."""

    me: str
    interval: float
    expire_intervals: int = 3
    clock: Callable[[], float] = time.monotonic
    lag_rounds: int = 0  # 0: split by each replica's latest report
    wall: Callable[[], float] = time.time  # the clock reports are stamped with, which cuts the rounds
    _reports: dict[str, tuple[float, Report]] = field(default_factory=dict)
    _history: dict[str, list[tuple[int, Report]]] = field(default_factory=dict)
    _fleet_size: int = 1

    def receive(self, report: Report, age: float = 0.0, sent_at: float | None = None) -> None:
        """A report read from the coordination topic (this replica's own included), sent `age` seconds ago, at
        `sent_at` by the sender's clock (None: now)."""
        self._reports[report.replica] = (self.clock() - age, report)
        history = self._history.setdefault(report.replica, [])
        history.append((self._round(self.wall() if sent_at is None else sent_at), report))
        del history[:-(self.lag_rounds + 3)]

    def _round(self, when: float) -> int:
        return int(when // self.interval)

    def current_round(self) -> int:
        return self._round(self.wall())

    def live(self) -> dict[str, Report]:
        deadline = self.clock() - self.interval * self.expire_intervals
        self._reports = {r: (at, report) for r, (at, report) in self._reports.items() if at >= deadline}
        self._history = {r: h for r, h in self._history.items() if r in self._reports}
        if self._reports:
            self._fleet_size = len(self._reports | {self.me: (0.0, Report(self.me, {}))})
        return {r: report for r, (_, report) in self._reports.items()}

    def view(self) -> dict[str, Report]:
        """The reports slices are computed from: with lag_rounds, each live replica's from that many rounds ago
        (the same on every replica); a replica too new to have one is left out, by everyone alike."""
        live = self.live()
        if not self.lag_rounds:
            return live
        settled = self._round(self.wall()) - self.lag_rounds
        view = {}
        for replica in live:
            old = [report for at, report in self._history.get(replica, []) if at <= settled]
            if old:
                view[replica] = old[-1]
        return view

    @property
    def coordinated(self) -> bool:
        """Whether reports are arriving: False means the fallback (limit / last known fleet size) is in force."""
        return bool(self.live())

    @property
    def fleet_size(self) -> int:
        self.live()
        return self._fleet_size

    def split(self, tenant: str, limit_name: str, limit: float,
              reports: dict[str, Report] | None = None, count: bool = False) -> dict[str, float]:
        """Every live replica's slice of a tenant's limit (`reports`: view() if not given); `count`: a limit on
        things that stay open (allocate_count), else a rate (allocate)."""
        reports = self.view() if reports is None else reports
        if not reports:
            return {self.me: limit / self._fleet_size}
        key = (tenant, limit_name)
        usage = {r: report.usage.get(key, Usage(0.0, False, 0)) for r, report in reports.items()}
        usage.setdefault(self.me, Usage(0.0, False, 0))
        return allocate_count(int(limit), usage) if count else allocate(limit, usage)

    def share(self, tenant: str, limit_name: str, limit: float, reports: dict[str, Report] | None = None) -> float:
        """This replica's slice of a tenant's limit."""
        return self.split(tenant, limit_name, limit, reports)[self.me]

    def share_whole(self, tenant: str, limit_name: str, limit: int, reports: dict[str, Report] | None = None) -> int:
        """This replica's slice of a limit counted in whole things (connections): the slices add up to `limit`,
        except in the fallback, where each replica keeps at least one, and 0 until this replica's report of the
        tenant is in the view."""
        reports = self.view() if reports is None else reports
        if not reports:
            return max(1, limit // self._fleet_size)
        if (tenant, limit_name) not in reports.get(self.me, Report(self.me, {})).usage:
            # Connections stay: none here until the others have seen this replica hold the tenant's (a report
            # of them in the view), or what it opened meanwhile would be room they give out again.
            return 0
        return whole(self.split(tenant, limit_name, limit, reports, count=True), limit)[self.me]


def whole(shares: dict[str, float], limit: int) -> dict[str, int]:
    """Whole slices adding up to `limit` (largest remainder; ties by replica id, so every replica agrees)."""
    floors = {r: int(s) for r, s in shares.items()}
    left = limit - sum(floors.values())
    for replica in sorted(shares, key=lambda r: (floors[r] - shares[r], r))[:max(left, 0)]:
        floors[replica] += 1
    return floors


class ReportError(ValueError):
    """A record of the coordination topic that is not a report of this format."""


_FORMAT = 1
MAX_REPORT_BYTES = 4 * 1024 * 1024  # 10,000 tenants x a few limits fit many times over


def encode_report(report: Report, sent_at: float) -> bytes:
    """A report as the value of a record on the coordination topic (its key is the replica id)."""
    usage = [[tenant, limit, u.used, u.throttled, u.active] for (tenant, limit), u in sorted(report.usage.items())]
    return json.dumps({"format": _FORMAT, "replica": report.replica, "sent_at": sent_at, "usage": usage},
                      separators=(",", ":")).encode()


def decode_report(value: bytes) -> tuple[Report, float]:
    """The report and when its replica sent it; ReportError for anything else (another format, garbage)."""
    if len(value) > MAX_REPORT_BYTES:
        raise ReportError("a report larger than MAX_REPORT_BYTES")
    try:
        data = json.loads(value)
        if data["format"] != _FORMAT:
            raise ReportError(f"report format {data['format']!r}, not {_FORMAT}")
        usage = {}
        for tenant, limit, used, throttled, active in data["usage"]:
            if not (isinstance(tenant, str) and isinstance(limit, str) and isinstance(throttled, bool)
                    and isinstance(active, int) and isinstance(used, (int, float)) and used >= 0 and active >= 0):
                raise ReportError("a usage entry of the wrong types")
            usage[(tenant, limit)] = Usage(float(used), throttled, active)
        replica, sent_at = data["replica"], data["sent_at"]
        if not isinstance(replica, str) or not replica or not isinstance(sent_at, (int, float)):
            raise ReportError("a report without its replica or time")
    except (ValueError, KeyError, TypeError) as exc:
        if isinstance(exc, ReportError):
            raise
        raise ReportError(f"not a report: {exc}") from None
    return Report(replica, usage), float(sent_at)
