"""Kubernetes semantics the models rely on: selectors, quantities, durations, names."""

from __future__ import annotations

from decimal import Decimal

import pytest

from dpfd.api.meta import LabelSelector, node_selector_matches, selector_matches
from dpfd.api.names import label_value_error, qualified_name_error
from dpfd.api.quantity import parse_duration, parse_quantity, scaled_int_or_percent

HOST = {"feature.node.kubernetes.io/dpu-enabled": "true", "zone": "a", "cores": "64"}


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        (None, HOST, False),  # a nil selector selects nothing
        ({}, HOST, True),  # an empty one selects everything
        ({}, None, True),
        ({"matchLabels": {"feature.node.kubernetes.io/dpu-enabled": "true"}}, HOST, True),
        ({"matchLabels": {"feature.node.kubernetes.io/dpu-enabled": "false"}}, HOST, False),
        ({"matchLabels": {"zone": "a", "rack": "1"}}, HOST, False),
        ({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}, HOST, True),
        ({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}, HOST, False),
        ({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["b"]}]}, HOST, True),
        ({"matchExpressions": [{"key": "rack", "operator": "NotIn", "values": ["1"]}]}, HOST, True),
        ({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}, HOST, False),
        ({"matchExpressions": [{"key": "zone", "operator": "Exists"}]}, HOST, True),
        ({"matchExpressions": [{"key": "rack", "operator": "Exists"}]}, HOST, False),
        ({"matchExpressions": [{"key": "rack", "operator": "DoesNotExist"}]}, HOST, True),
        (
            {"matchLabels": {"zone": "a"}, "matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]},
            HOST,
            False,
        ),
    ],
)
def test_label_selector(selector: object, labels: dict[str, str] | None, matches: bool) -> None:
    assert selector_matches(selector, labels) is matches  # type: ignore[arg-type]
    if selector is not None:
        assert selector_matches(LabelSelector.model_validate(selector), labels) is matches


def test_node_selector_terms_are_ored_and_support_gt_lt() -> None:
    sel = {
        "nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
            {"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["32"]}]},
        ]
    }
    assert node_selector_matches(sel, HOST)
    assert not node_selector_matches(sel, {"zone": "c", "cores": "16"})
    lt = {"nodeSelectorTerms": [{"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["32"]}]}]}
    assert not node_selector_matches(lt, HOST)
    assert not node_selector_matches(lt, {"cores": "many"})
    assert not node_selector_matches({"nodeSelectorTerms": [{}]}, HOST)  # an empty term selects nothing
    fields = {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["w1"]}]}]}
    assert node_selector_matches(fields, {}, {"metadata.name": "w1"})
    assert not node_selector_matches(None, HOST)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("16Gi", Decimal(16 * 2**30)),
        ("500m", Decimal("0.5")),
        ("3500m", Decimal("3.5")),
        ("2", Decimal(2)),
        (4, Decimal(4)),
        ("1.5", Decimal("1.5")),
        ("2k", Decimal(2000)),
        ("1e3", Decimal(1000)),
        ("32768Mi", Decimal(32 * 2**30)),
        ("100n", Decimal("1E-7")),
    ],
)
def test_parse_quantity(text: str | int, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["lots", "5 Gi", "1Qi", "", "Gi", "1.2.3"])
def test_parse_quantity_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="is not a quantity"):
        parse_quantity(text)


def test_parse_duration_and_percentages() -> None:
    assert parse_duration("10m") == 600
    assert parse_duration("1h30m") == 5400
    assert parse_duration("1.5h") == 5400
    assert parse_duration("250ms") == Decimal("0.25")
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration("10 minutes")
    assert scaled_int_or_percent("25%", 10, round_up=True) == 3
    assert scaled_int_or_percent("25%", 10, round_up=False) == 2
    assert scaled_int_or_percent(4, 10, round_up=True) == 4
    with pytest.raises(ValueError):
        scaled_int_or_percent("25", 10, round_up=True)


def test_label_names() -> None:
    assert qualified_name_error("feature.node.kubernetes.io/dpu-0-pci-address") is None
    assert qualified_name_error("app") is None
    assert qualified_name_error("Example.com/x") is not None  # prefixes are lowercase DNS names
    assert qualified_name_error("a/" + "x" * 64) == "name part must be no more than 63 characters, got 64"
    assert qualified_name_error("/x") == "prefix part must be non-empty"
    assert label_value_error("") is None
    assert label_value_error("0000-03-00") is None
    assert label_value_error("a b") is not None
