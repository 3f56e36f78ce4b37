"""The registry's instruments and the text exposition format 0.0.4, read back with dpfd.metrics.parse."""

from __future__ import annotations

import math

import pytest

from dpfd.metrics import CallbackMetric, CollectorGroup, Counter, Gauge, Histogram, Registry, render
from dpfd.metrics.exposition import format_value
from dpfd.metrics.parse import ParseError, parse


def test_exact_text_of_a_small_registry() -> None:
    r = Registry()
    c = Counter("demo_requests_total", "Requests handled.", ["code"], registry=r)
    c.labels("200").inc()
    c.labels("200").inc(2)
    c.labels("500").inc()
    g = Gauge("demo_temperature_celsius", "A temperature.", registry=r)
    g.set(21.5)
    h = Histogram("demo_latency_seconds", "A latency.", buckets=[0.1, 1], registry=r)
    h.observe(0.05)
    h.observe(0.1)  # a value equal to a bound counts in that bucket (le is <=)
    h.observe(3)
    assert render(r) == (
        "# HELP demo_latency_seconds A latency.\n"
        "# TYPE demo_latency_seconds histogram\n"
        'demo_latency_seconds_bucket{le="0.1"} 2\n'
        'demo_latency_seconds_bucket{le="1.0"} 2\n'
        'demo_latency_seconds_bucket{le="+Inf"} 3\n'
        "demo_latency_seconds_sum 3.15\n"
        "demo_latency_seconds_count 3\n"
        "# HELP demo_requests_total Requests handled.\n"
        "# TYPE demo_requests_total counter\n"
        'demo_requests_total{code="200"} 3\n'
        'demo_requests_total{code="500"} 1\n'
        "# HELP demo_temperature_celsius A temperature.\n"
        "# TYPE demo_temperature_celsius gauge\n"
        "demo_temperature_celsius 21.5\n"
    )


def test_label_values_and_help_are_escaped_and_read_back() -> None:
    r = Registry()
    awkward = 'a "quoted" back\\slash\nnew line, {braces}=and,commas'
    c = Counter("demo_total", 'Help with a back\\slash and a\nnewline and "quotes".', ["what", "other"], registry=r)
    c.labels(awkward, "").inc()
    text = render(r)
    assert '\\"quoted\\"' in text and "back\\\\slash" in text and "\\nnew line" in text
    assert '# HELP demo_total Help with a back\\\\slash and a\\nnewline and "quotes".' in text
    assert len(text.splitlines()) == 3, "an escaped newline must not split a line"
    scrape = parse(text)
    fam = scrape.families["demo_total"]
    assert fam.type == "counter" and fam.help == 'Help with a back\\slash and a\nnewline and "quotes".'
    assert fam.samples == [("demo_total", {"what": awkward, "other": ""}, 1.0)]


def test_histogram_buckets_are_cumulative_per_label_set() -> None:
    r = Registry()
    h = Histogram("demo_seconds", "d", ["kind"], buckets=[0.01, 0.1, 1.0], registry=r)
    for v in (0.005, 0.05, 0.5, 5.0, 0.05):
        h.labels("a").observe(v)
    h.labels("b").observe(0.5)
    s = parse(render(r))
    assert s.families["demo_seconds"].type == "histogram"
    assert [s.value("demo_seconds_bucket", kind="a", le=le) for le in ("0.01", "0.1", "1.0", "+Inf")] == [1, 3, 4, 5]
    assert [s.value("demo_seconds_bucket", kind="b", le=le) for le in ("0.01", "0.1", "1.0", "+Inf")] == [0, 0, 1, 1]
    assert s.value("demo_seconds_count", kind="a") == 5
    assert s.value("demo_seconds_sum", kind="a") == pytest.approx(5.605)


def test_callback_metrics_read_at_scrape_time() -> None:
    r = Registry()
    state = {"alive": 3, "dead": 1}

    def members() -> list[tuple[tuple[str, ...], float]]:
        return [((k,), float(v)) for k, v in state.items()]

    CallbackMetric("demo_members", "Members by state.", "gauge", members, ["state"], registry=r)
    CallbackMetric.single("demo_sent_total", "Sent.", "counter", lambda: 7, registry=r)
    s = parse(render(r))
    assert s.value("demo_members", state="alive") == 3 and s.value("demo_sent_total") == 7
    state["alive"] = 4
    assert parse(render(r)).value("demo_members", state="alive") == 4


def test_a_failing_collector_costs_only_its_own_family() -> None:
    r = Registry()
    Counter("demo_ok_total", "fine", registry=r).inc()

    def broken() -> float:
        raise RuntimeError("gone")

    CallbackMetric.single("demo_broken", "fails", "gauge", broken, registry=r)
    s = parse(render(r))
    assert s.value("demo_ok_total") == 1 and "demo_broken" not in s.families


def test_collector_group_unregisters_what_it_added() -> None:
    r = Registry()
    group = CollectorGroup(r)
    group.add(CallbackMetric.single("demo_a", "a", "gauge", lambda: 1, registry=None))
    assert r.names() == ["demo_a"]
    group.close()
    assert r.names() == []
    CallbackMetric.single("demo_a", "a again", "gauge", lambda: 2, registry=r)  # the name is free again


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda r: Counter("demo_things", "no _total", registry=r), "end in _total"),
        (lambda r: Gauge("demo-bad", "dash", registry=r), "not a valid Prometheus name"),
        (lambda r: Gauge("demo_g", "label", ["__reserved"], registry=r), "cannot be a label name"),
        (lambda r: Histogram("demo_h", "le", ["le"], registry=r), "cannot be a label name"),
        (lambda r: Histogram("demo_h", "buckets", buckets=[1, 0.5], registry=r), "increasing"),
        (lambda r: Gauge("demo_g", "twice", ["a", "a"], registry=r), "repeat"),
    ],
)
def test_invalid_definitions_are_refused(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make(Registry())  # type: ignore[operator]


def test_misuse_is_refused() -> None:
    r = Registry()
    c = Counter("demo_total", "c", ["a"], registry=r)
    with pytest.raises(ValueError, match="already"):
        Counter("demo_total", "again", registry=r)
    with pytest.raises(ValueError, match="takes labels"):
        c.labels("x", "y")
    with pytest.raises(ValueError, match=r"use \.labels"):
        c.inc()
    with pytest.raises(ValueError, match="only goes up"):
        c.labels("x").inc(-1)
    with pytest.raises(TypeError, match="label values are str"):
        c.labels(3)  # type: ignore[arg-type]


def test_removed_series_stop_being_exposed() -> None:
    r = Registry()
    g = Gauge("demo_g", "g", ["name"], registry=r)
    g.labels("a").set(1)
    g.labels("b").set(2)
    g.remove("a")
    assert parse(render(r)).values("demo_g") == [2]


def test_special_values() -> None:
    assert [format_value(v) for v in (math.inf, -math.inf, 3.0, 0.25, 1e20)] == ["+Inf", "-Inf", "3", "0.25", "1e+20"]
    assert format_value(math.nan) == "NaN"
    r = Registry()
    Gauge("demo_nan", "n", registry=r).set(math.nan)
    assert math.isnan(parse(render(r)).value("demo_nan") or 0.0)


@pytest.mark.parametrize(
    "text",
    [
        "demo{a=1} 2\n",  # unquoted label value
        'demo{a="1} 2\n',  # unterminated
        "demo 2 3 4\n",  # too many fields
        "demo x\n",  # not a number
        'demo{a="1",a="2"} 1\n',  # a label twice
        'demo{a="\\q"} 1\n',  # bad escape
    ],
)
def test_the_parser_refuses_malformed_lines(text: str) -> None:
    with pytest.raises(ParseError):
        parse(text)
