"""Prometheus instruments (Counter, Gauge, Histogram, CallbackMetric) and the Registry that collects them.

Our own rather than `prometheus_client`: that library guards every update with a threading lock, keeps process-wide
state we would have to reset between daemons and tests, and ships no type information for mypy --strict. dpfd and
the controller update metrics from one event loop thread only, so an update here is a dict lookup and an addition,
with no lock (see tests/unit/metrics for the cost in ns). Values read at scrape time (gossip counters, the intent
view, leadership) are CallbackMetrics: the hot paths of those parts pay nothing for being measured.

Not thread-safe: update instruments from the event loop's thread (grpc and aiohttp callbacks run there).
"""

from __future__ import annotations

import bisect
import logging
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Generic, Literal, Protocol, TypeVar

log = logging.getLogger(__name__)

MetricType = Literal["counter", "gauge", "histogram"]
LabelValues = tuple[str, ...]

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

# Prometheus' default buckets (seconds): suit request latencies from a few ms to 10 s.
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True, slots=True)
class Sample:
    """One line of the exposition: a sample name (the family's, or with _bucket/_sum/_count), labels, value."""

    name: str
    labels: tuple[tuple[str, str], ...]
    value: float


@dataclass(frozen=True, slots=True)
class Family:
    """Every sample of one metric, with its HELP and TYPE."""

    name: str
    type: MetricType
    help: str
    samples: list[Sample]


class Collector(Protocol):
    """Anything a Registry can collect: the family names it owns, and their samples now."""

    @property
    def names(self) -> tuple[str, ...]: ...

    def collect(self) -> Iterable[Family]: ...


class Registry:
    """The metrics one /metrics endpoint serves. A name belongs to one collector: registering it twice is a bug."""

    def __init__(self) -> None:
        self._collectors: dict[int, Collector] = {}
        self._owners: dict[str, int] = {}

    def register(self, collector: Collector) -> None:
        taken = [n for n in collector.names if n in self._owners]
        if taken:
            raise ValueError(f"metric {taken[0]!r} is registered already")
        self._collectors[id(collector)] = collector
        for n in collector.names:
            self._owners[n] = id(collector)

    def unregister(self, collector: Collector) -> None:
        if self._collectors.pop(id(collector), None) is not None:
            for n in collector.names:
                self._owners.pop(n, None)

    def names(self) -> list[str]:
        return sorted(self._owners)

    def collect(self) -> list[Family]:
        """Every family, sorted by name. A collector that fails is left out (and logged), not the whole scrape."""
        families: list[Family] = []
        for collector in list(self._collectors.values()):
            try:
                families.extend(collector.collect())
            except Exception as e:
                log.warning("metrics collector %s failed: %s: %s", collector.names, type(e).__name__, e)
        families.sort(key=lambda f: f.name)
        return families


# The registry dpfd's and the controller's instruments register in, and their /metrics serves.
REGISTRY = Registry()


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise ValueError(f"metric name {name!r} is not a valid Prometheus name ([a-zA-Z_:][a-zA-Z0-9_:]*)")


def _check_labels(name: str, labelnames: Sequence[str], reserved: tuple[str, ...] = ()) -> tuple[str, ...]:
    for label in labelnames:
        if not _LABEL.match(label) or label.startswith("__") or label in reserved:
            raise ValueError(f"metric {name!r}: {label!r} cannot be a label name")
    if len(set(labelnames)) != len(labelnames):
        raise ValueError(f"metric {name!r}: label names repeat: {list(labelnames)}")
    return tuple(labelnames)


class CounterValue:
    """One counter series: only goes up (a restart of the process resets it, which Prometheus expects)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError(f"a counter only goes up; inc({amount})")
        self.value += amount


class GaugeValue:
    """One gauge series: a value that goes up and down."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def set(self, value: float) -> None:
        self.value = float(value)

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount


class HistogramValue:
    """One histogram series: counts per bucket (not cumulative; the exposition adds them up) and the sum."""

    __slots__ = ("_bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: the first bound >= value, so a value equal to a bound lands in that bucket (le is <=).
        self.counts[bisect.bisect_left(self._bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)


V = TypeVar("V", CounterValue, GaugeValue, HistogramValue)


class _Metric(Generic[V]):
    """A named family of series, one per combination of label values."""

    type: ClassVar[MetricType]

    def __init__(
        self, name: str, help: str, labelnames: Sequence[str] = (), *, registry: Registry | None = REGISTRY
    ) -> None:
        _check_name(name)
        self.name = name
        self.help = help
        self.labelnames = _check_labels(name, labelnames, self._reserved())
        self._series: dict[LabelValues, V] = {}
        self._single: V | None = None if self.labelnames else self._series.setdefault((), self._new())
        if registry is not None:
            registry.register(self)

    def _reserved(self) -> tuple[str, ...]:
        return ()

    def _new(self) -> V:
        raise NotImplementedError

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name,)

    def labels(self, *values: str) -> V:
        """The series for these label values (in labelnames order), made on first use."""
        series = self._series.get(values)
        if series is None:
            series = self._add(values)
        return series

    def _add(self, values: LabelValues) -> V:
        if len(values) != len(self.labelnames):
            raise ValueError(f"metric {self.name!r} takes labels {list(self.labelnames)}, got {list(values)}")
        for v in values:
            if not isinstance(v, str):
                raise TypeError(f"metric {self.name!r}: label values are str, got {v!r}")
        return self._series.setdefault(values, self._new())

    def remove(self, *values: str) -> None:
        """Forget one series (an object that is gone should not keep reporting its last value)."""
        self._series.pop(values, None)

    def _only(self) -> V:
        if self._single is None:
            raise ValueError(f"metric {self.name!r} has labels {list(self.labelnames)}: use .labels(...)")
        return self._single

    def _label_pairs(self, values: LabelValues) -> tuple[tuple[str, str], ...]:
        return tuple(zip(self.labelnames, values, strict=True))

    def collect(self) -> Iterable[Family]:
        return [Family(self.name, self.type, self.help, list(self._samples()))]

    def _samples(self) -> Iterable[Sample]:
        raise NotImplementedError


class Counter(_Metric[CounterValue]):
    """Counts things that happen. The name ends in _total (Prometheus convention)."""

    type = "counter"

    def __init__(
        self, name: str, help: str, labelnames: Sequence[str] = (), *, registry: Registry | None = REGISTRY
    ) -> None:
        if not name.endswith("_total"):
            raise ValueError(f"counter {name!r}: counter names end in _total")
        super().__init__(name, help, labelnames, registry=registry)

    def _new(self) -> CounterValue:
        return CounterValue()

    def inc(self, amount: float = 1.0) -> None:
        self._only().inc(amount)

    @property
    def value(self) -> float:
        return self._only().value

    def _samples(self) -> Iterable[Sample]:
        for values, s in self._series.items():
            yield Sample(self.name, self._label_pairs(values), s.value)


class Gauge(_Metric[GaugeValue]):
    """A value that goes up and down."""

    type = "gauge"

    def _new(self) -> GaugeValue:
        return GaugeValue()

    def set(self, value: float) -> None:
        self._only().set(value)

    def inc(self, amount: float = 1.0) -> None:
        self._only().inc(amount)

    def dec(self, amount: float = 1.0) -> None:
        self._only().dec(amount)

    @property
    def value(self) -> float:
        return self._only().value

    def _samples(self) -> Iterable[Sample]:
        for values, s in self._series.items():
            yield Sample(self.name, self._label_pairs(values), s.value)


class Histogram(_Metric[HistogramValue]):
    """A distribution (durations, sizes) in cumulative buckets, with a sum and a count."""

    type = "histogram"

    def __init__(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        registry: Registry | None = REGISTRY,
    ) -> None:
        bounds = tuple(float(b) for b in buckets if not math.isinf(b))
        if not bounds or list(bounds) != sorted(set(bounds)):
            raise ValueError(f"histogram {name!r}: buckets must be increasing and not empty, got {list(buckets)}")
        self.bounds = bounds
        super().__init__(name, help, labelnames, registry=registry)

    def _reserved(self) -> tuple[str, ...]:
        return ("le",)

    def _new(self) -> HistogramValue:
        return HistogramValue(self.bounds)

    def observe(self, value: float) -> None:
        self._only().observe(value)

    def _samples(self) -> Iterable[Sample]:
        les = [_le(b) for b in self.bounds] + ["+Inf"]
        for values, s in self._series.items():
            pairs = self._label_pairs(values)
            running = 0
            for le, n in zip(les, s.counts, strict=True):
                running += n
                yield Sample(f"{self.name}_bucket", (*pairs, ("le", le)), float(running))
            yield Sample(f"{self.name}_sum", pairs, s.sum)
            yield Sample(f"{self.name}_count", pairs, float(running))


def _le(bound: float) -> str:
    # Go's formatting, as Prometheus' own clients write le: 1 -> "1.0", 0.005 -> "0.005".
    return repr(float(bound))


Reading = Iterable[tuple[LabelValues, float]]


class CallbackMetric:
    """A counter or gauge whose series are read at scrape time from `read()`: (label values, value) pairs.

    For numbers that live elsewhere already (gossip counters, the size of the intent view, leadership): nothing
    is updated on their hot paths."""

    def __init__(
        self,
        name: str,
        help: str,
        type: Literal["counter", "gauge"],
        read: Callable[[], Reading],
        labelnames: Sequence[str] = (),
        *,
        registry: Registry | None = REGISTRY,
    ) -> None:
        _check_name(name)
        if type == "counter" and not name.endswith("_total"):
            raise ValueError(f"counter {name!r}: counter names end in _total")
        self.name = name
        self.help = help
        self.type: MetricType = type
        self.labelnames = _check_labels(name, labelnames)
        self._read = read
        if registry is not None:
            registry.register(self)

    @classmethod
    def single(
        cls,
        name: str,
        help: str,
        type: Literal["counter", "gauge"],
        read: Callable[[], float],
        *,
        registry: Registry | None = REGISTRY,
    ) -> CallbackMetric:
        """One series without labels."""
        return cls(name, help, type, lambda: [((), read())], registry=registry)

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name,)

    def collect(self) -> Iterable[Family]:
        samples = []
        for values, value in self._read():
            if len(values) != len(self.labelnames):
                raise ValueError(f"metric {self.name!r} takes labels {list(self.labelnames)}, read {list(values)}")
            samples.append(Sample(self.name, tuple(zip(self.labelnames, values, strict=True)), float(value)))
        return [Family(self.name, self.type, self.help, samples)]


class CollectorGroup:
    """Several collectors registered and unregistered together (the metrics of one running part)."""

    def __init__(self, registry: Registry = REGISTRY) -> None:
        self.registry = registry
        self._members: list[Collector] = []

    def add(self, collector: Collector) -> None:
        self.registry.register(collector)
        self._members.append(collector)

    def close(self) -> None:
        for c in reversed(self._members):
            self.registry.unregister(c)
        self._members.clear()
