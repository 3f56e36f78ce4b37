"""DPF's chain flows as text: cookie, learn actions, outputs (pure functions)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from dpfd.dpu.flows.applier import chain_lines
from dpfd.dpu.flows.model import (
    PortUnresolved,
    chain_cookie,
    chain_flows,
    chain_texts,
    flows_for,
    fnv64a,
    spec_selectors,
    switch_flows,
)
from dpfd.dpu.flows.ofctl import flow_cookie


@pytest.mark.parametrize(
    ("data", "want"),
    [
        ("", 0xCBF29CE484222325),
        ("a", 0xAF63DC4C8601EC8C),
        ("foobar", 0x85944171F73967E8),
    ],
)
def test_fnv64a_known_vectors(data: str, want: int) -> None:
    assert fnv64a(data) == want
    assert fnv64a(data.encode()) == want


def test_cookie_is_fnv64a_of_namespace_slash_name() -> None:
    assert chain_cookie("ns", "chain-dpu1") == fnv64a("ns/chain-dpu1")
    assert chain_cookie("ns", "a") != chain_cookie("ns2", "a")


def test_two_port_switch_matches_dpf() -> None:
    c = 0x1234
    flows = switch_flows(c, [3, 7])
    assert [f.text() for f in flows] == [
        "cookie=0x1234,table=0,priority=20,in_port=3,actions="
        "learn(cookie=0x1234,idle_timeout=10,table=0,priority=30,in_port=7,dl_dst=dl_src,output:NXM_OF_IN_PORT[]),"
        "output:7",
        "cookie=0x1234,table=0,priority=20,in_port=7,actions="
        "learn(cookie=0x1234,idle_timeout=10,table=0,priority=30,in_port=3,dl_dst=dl_src,output:NXM_OF_IN_PORT[]),"
        "output:3",
    ]


def test_three_ports_learn_every_other_port_then_output_to_each() -> None:
    flows = switch_flows(1, [1, 2, 3])
    assert [f.in_port for f in flows] == [1, 2, 3]
    actions = flows[1].actions
    assert actions.count("learn(") == 2
    assert "in_port=1,dl_dst" in actions and "in_port=3,dl_dst" in actions
    assert actions.endswith("output:1,output:3")
    assert "output:2" not in actions


def test_switch_with_fewer_than_two_distinct_ports_has_no_flows() -> None:
    assert switch_flows(1, []) == []
    assert switch_flows(1, [4]) == []
    assert switch_flows(1, [4, 4]) == []
    assert len(switch_flows(1, [4, 5, 4])) == 2


def test_chain_flows_concatenate_switches() -> None:
    flows = chain_flows(9, [[1, 2], [3], [2, 4, 5]])
    assert [f.in_port for f in flows] == [1, 2, 2, 4, 5]
    assert {f.cookie for f in flows} == {9}


def _spec(*switches: list[str]) -> dict[str, Any]:
    return {
        "switches": [{"ports": [{"serviceInterface": {"matchLabels": {"port": p}}} for p in sw]} for sw in switches]
    }


def test_flows_for_maps_selectors_through_port_names() -> None:
    flows = flows_for("ns", "c", _spec(["p0", "pf0hpf"]), lambda labels: labels["port"], {"p0": 1, "pf0hpf": 2})
    assert [(f.in_port, f.cookie) for f in flows] == [(1, chain_cookie("ns", "c")), (2, chain_cookie("ns", "c"))]


def test_flows_for_names_the_missing_port() -> None:
    with pytest.raises(PortUnresolved, match="'pf0hpf'"):
        flows_for("ns", "c", _spec(["p0", "pf0hpf"]), lambda labels: labels["port"], {"p0": 1})


def test_chain_lines_delete_the_cookie_then_add() -> None:
    flows = switch_flows(0xAB, [1, 2])
    lines = chain_lines(0xAB, tuple(f.text() for f in flows))
    assert lines[0] == "delete cookie=0xab/-1"
    assert lines[1:] == [f"add {f.text()}" for f in flows]
    assert chain_lines(0xAB, None) == ["delete cookie=0xab/-1"]


def test_flow_cookie_from_dump_lines() -> None:
    assert flow_cookie(" cookie=0x1a2b, table=0, priority=20,in_port=1 actions=output:2") == 0x1A2B
    assert flow_cookie(" priority=0 actions=NORMAL") == 0


def test_spec_selectors_reads_each_switch_s_match_labels() -> None:
    spec = _spec(["p0", "p1"], ["p2"])
    spec["switches"][0]["ports"][0]["serviceInterface"]["ipam"] = {"matchLabels": {"pool": "a"}}
    assert spec_selectors(spec) == [[{"port": "p0"}, {"port": "p1"}], [{"port": "p2"}]]


@pytest.mark.parametrize(
    ("spec", "where"),
    [
        ({}, "switches"),
        ({"switches": []}, "switches"),
        ({"switches": [{"ports": [{"serviceInterface": {}}]}]}, "matchLabels"),
        ({"switches": [{"ports": [{"serviceInterface": {"matchLabels": {"a": 1}}}]}]}, "matchLabels"),
    ],
)
def test_spec_selectors_explains_a_malformed_spec(spec: dict[str, Any], where: str) -> None:
    with pytest.raises(ValidationError, match=where):
        spec_selectors(spec)


@pytest.mark.parametrize(
    "switches",
    [[[3, 7]], [[1, 2, 3]], [[4, 5, 4]], [[1], [2, 3], []], [[10, 11], [12, 13, 14, 15], [11, 10]], []],
)
def test_chain_texts_are_chain_flows_texts(switches: list[list[int]]) -> None:
    cookie = chain_cookie("ns", "c")
    assert chain_texts(cookie, switches) == tuple(f.text() for f in chain_flows(cookie, switches))
