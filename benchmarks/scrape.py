"""Reading the proxy's own histograms from its /metrics, to difference them around a measured run."""

from __future__ import annotations

import math
import urllib.request
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families


@dataclass
class Histogram:
    """Cumulative bucket counts by upper bound (seconds), as Prometheus exposes them."""

    buckets: dict[float, float] = field(default_factory=dict)

    @property
    def count(self) -> float:
        return self.buckets.get(math.inf, 0.0)

    def __sub__(self, earlier: Histogram) -> Histogram:
        return Histogram({bound: n - earlier.buckets.get(bound, 0.0) for bound, n in self.buckets.items()})

    def __add__(self, other: Histogram) -> Histogram:
        bounds = self.buckets.keys() | other.buckets.keys()
        return Histogram({b: self.buckets.get(b, 0.0) + other.buckets.get(b, 0.0) for b in bounds})

    def quantile_bound(self, q: float) -> float:
        """The upper bound of the bucket holding quantile `q`: the figure is at most this (0 if empty)."""
        if not self.count:
            return 0.0
        return next(bound for bound, n in sorted(self.buckets.items()) if n >= q * self.count)


def histogram(metrics_url: str, name: str, labels: dict[str, str]) -> Histogram:
    """The histogram `name` with `labels` (a subset) from `metrics_url`/metrics, summed over other labels."""
    with urllib.request.urlopen(f"{metrics_url}/metrics", timeout=30) as answer:
        text = answer.read().decode()
    found = Histogram()
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for sample in family.samples:
            if sample.name == f"{name}_bucket" and labels.items() <= sample.labels.items():
                bound = float(sample.labels["le"])
                found.buckets[bound] = found.buckets.get(bound, 0.0) + sample.value
    return found


def total(metrics_url: str, sample_name: str, labels: dict[str, str] | None = None) -> float:
    """The sum of the samples `sample_name` whose labels include `labels`, from `metrics_url`/metrics."""
    with urllib.request.urlopen(f"{metrics_url}/metrics", timeout=30) as answer:
        text = answer.read().decode()
    wanted = (labels or {}).items()
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == sample_name and wanted <= sample.labels.items())
