"""Resource fitting against the flavor, and the message naming what does not fit."""

from __future__ import annotations

from decimal import Decimal

from controller.dpudeployment.fitting import fitting_problem, format_quantity, missing_resources
from controller.dpudeployment.values import merge_values


def test_fits_within_resources_less_reserved() -> None:
    flavor, reserved = {"cpu": "16", "memory": "16Gi"}, {"cpu": "4", "memory": "4Gi"}
    assert missing_resources(flavor, reserved, [{"cpu": "6", "memory": "6Gi"}, {"cpu": "6", "memory": "6Gi"}]) == {}


def test_names_each_resource_short_of_what_is_needed() -> None:
    missing = missing_resources(
        {"cpu": "16", "memory": "16Gi"},
        {"cpu": "4", "memory": "4Gi"},
        [{"cpu": "10", "memory": "6Gi"}, {"cpu": "2500m", "memory": "6Gi", "nvidia.com/sf": 2}],
    )
    assert missing == {"cpu": Decimal("0.5"), "nvidia.com/sf": Decimal(2)}
    assert fitting_problem(missing) == (
        "there are not enough resources for DPUServices to fit in this DPUDeployment: "
        "Additional resources needed: cpu=500m, nvidia.com/sf=2"
    )


def test_flavor_without_dpu_resources_fits_anything() -> None:
    assert missing_resources(None, None, [{"cpu": "1000"}]) == {}
    assert fitting_problem({}) == ""


def test_format_quantity() -> None:
    assert format_quantity(Decimal(2**31)) == "2Gi"
    assert format_quantity(Decimal(3)) == "3"
    assert format_quantity(Decimal("0.25")) == "250m"


def test_merge_values_config_wins_recursively() -> None:
    assert merge_values({"a": {"b": 2}, "l": [1]}, {"a": {"b": 1, "c": 3}, "l": [0, 0], "t": 1}) == {
        "a": {"b": 2, "c": 3},
        "l": [1],
        "t": 1,
    }
    assert merge_values(None, None) is None
    assert merge_values(None, {"a": 1}) == {"a": 1}
