"""Prometheus metrics of one app, in the app's own registry so that tests can build many apps."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from serving.metric_children import LabelledChildren

# Admission reviews are answered in well under a millisecond; the API server gives up after seconds.
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass(frozen=True)
class WebhookMetrics:
    """The webhook's collectors; ``result`` is a Decision result or ``bad_request``."""

    registry: CollectorRegistry
    reviews: Counter
    latency: Histogram
    _children: LabelledChildren = field(default_factory=LabelledChildren, repr=False, compare=False)

    @classmethod
    def create(cls) -> WebhookMetrics:
        """Build fresh collectors in a fresh registry."""
        registry = CollectorRegistry(auto_describe=True)
        reviews = Counter(
            "esi_webhook_reviews",
            "Admission reviews answered, by result.",
            ["result"],
            registry=registry,
        )
        latency = Histogram(
            "esi_webhook_review_duration_seconds",
            "Time to answer one admission review.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        return cls(registry, reviews, latency)

    def observe(self, result: str, seconds: float | None = None) -> None:
        """Count one review and, when it was answered, its latency."""
        self._children(self.reviews, result).inc()
        if seconds is not None:
            self.latency.observe(seconds)

    def render(self) -> bytes:
        """The text exposition format of every collector."""
        return generate_latest(self.registry)
