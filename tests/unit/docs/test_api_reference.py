"""docs/api-reference.md: generated from the models, committed up to date, and what its hand-kept tables say about
the code (cross-field rules, update rules, webhook defaults, condition names) is checked against the code."""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pydantic import BaseModel

from dpfd.api import defaults, immutability, provisioning
from dpfd.api.base import DPFModel
from dpfd.api.defaults import apply_defaults
from dpfd.api.registry import KINDS
from dpfd.api.typewalk import item_type, model_class, unwrap

REPO = Path(__file__).resolve().parents[3]
REFERENCE = REPO / "docs" / "api-reference.md"
REGENERATE = "regenerate with: .venv/bin/python scripts/gen-api-docs.py"


@pytest.fixture(scope="module")
def gen() -> Iterator[ModuleType]:
    """scripts/gen-api-docs.py as a module (its file name is not an importable name)."""
    spec = importlib.util.spec_from_file_location("gen_api_docs", REPO / "scripts" / "gen-api-docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


@pytest.fixture(scope="module")
def text(gen: ModuleType) -> str:
    out: str = gen.render()
    return out


def test_committed_reference_is_up_to_date(text: str) -> None:
    assert REFERENCE.read_text() == text, f"docs/api-reference.md is stale; {REGENERATE}"


def test_render_is_deterministic(gen: ModuleType, text: str) -> None:
    assert gen.render() == text


def test_check_flag_reports_a_stale_file(gen: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "api-reference.md"
    out.write_text("# stale\n")
    assert gen.main(["--check", "--out", str(out)]) == 1
    assert "is stale" in capsys.readouterr().err
    assert gen.main(["--out", str(out)]) == 0
    assert gen.main(["--check", "--out", str(out)]) == 0


def _sections(text: str) -> dict[str, str]:
    parts = re.split(r"^## ", text, flags=re.MULTILINE)
    return {part.split("\n", 1)[0]: part for part in parts[1:]}


def test_every_kind_has_its_section_with_group_scope_and_fields(text: str) -> None:
    sections = _sections(text)
    for info in KINDS.values():
        section = sections[info.kind]
        assert f"apiVersion `{info.api_version}`, kind `{info.kind}`" in section
        assert "scope Namespaced" in section
        spec = model_class(unwrap(info.model.model_fields["spec"].annotation)[0])
        assert spec is not None
        for name in spec.model_fields:
            assert f"| `spec.{name}` |" in section, f"{info.kind}: spec.{name} missing"


def test_field_rows_carry_types_defaults_and_constraints(text: str) -> None:
    dpu, cluster, bfb = (_sections(text)[k] for k in ("DPU", "DPUCluster", "BFB"))
    assert "| `spec.nodeName` | string |  | yes | non-empty; immutable |" in dpu
    assert "| `spec.pciAddress` | string |  |  | immutable once set |" in dpu
    assert '| `spec.nodeEffect` | object | `{"drain": {"automaticNodeReboot": true}}` |' in dpu
    assert "| `spec.maxNodes` | integer | `1000` |  | 1\u20131000 |" in cluster
    # A pattern's `|` is escaped, or it would split the table cell.
    assert r"| `spec.url` | string |  | yes | pattern `^(http\|https)://.+\.bfb$`; immutable |" in bfb
    assert "immutable; defaulted on create: `<namespace>-<name>.bfb` when absent" in bfb
    assert "`Initializing` → `Node Effect` → `Pending`" in dpu
    assert "| `DPUDaemonReachable` | controller (leader) |" in dpu


def test_every_link_points_at_a_heading(text: str) -> None:
    anchors = {h.strip().lower().replace(" ", "-") for h in re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE)}
    targets = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert targets and targets <= anchors, sorted(targets - anchors)


def test_api_overview_links_the_reference() -> None:
    assert "(api-reference.md)" in (REPO / "docs" / "api.md").read_text()


# ---------------------------------------------------------------------------------- the hand-kept tables


def _models_beneath(model: type[BaseModel]) -> Iterator[type[BaseModel]]:
    seen: set[type[BaseModel]] = set()
    todo: list[Any] = [model]
    while todo:
        base = unwrap(todo.pop())[0]
        found = model_class(base) or model_class(unwrap(item_type(base))[0])
        if found is None or found in seen:
            continue
        seen.add(found)
        yield found
        todo.extend(f.annotation for f in found.model_fields.values())


def _models_with_rules() -> set[type[BaseModel]]:
    out: set[type[BaseModel]] = set()
    for info in KINDS.values():
        for model in _models_beneath(info.model):
            out.update(c for c in model.__mro__ if c is not DPFModel and "rules" in vars(c))
    return out


def test_every_model_with_rules_is_described(gen: ModuleType) -> None:
    with_rules = _models_with_rules()
    assert len(with_rules) > 30  # the walk found the rules
    described = set(gen.RULES)
    assert with_rules - described == set(), "describe these models' rules() in RULES of scripts/gen-api-docs.py"
    assert described - with_rules == set(), "RULES describes models that have no rules() of their own"


def test_probed_immutability_matches_the_update_rules(gen: ModuleType) -> None:
    found = {info.kind: gen.immutable_fields(info) for info in KINDS.values()}
    assert found["BFB"] == {"spec.url": "immutable", "spec.fileName": "immutable"}
    assert found["DPU"] == {
        "spec.nodeName": "immutable",
        "spec.pciAddress": "immutable once set",
        "spec.cluster.name": "immutable once set",
        "spec.cluster.namespace": "immutable once set",
    }
    assert found["DPUCluster"] == {"spec.kubeconfig": "immutable once set"}
    flavor_spec = model_class(unwrap(provisioning.DPUFlavor.model_fields["spec"].annotation)[0])
    assert flavor_spec is not None
    assert set(found["DPUFlavor"]) == {f"spec.{name}" for name in flavor_spec.model_fields}  # the whole spec
    assert {kind for kind, paths in found.items() if paths} | set(gen.UPDATE_RULES) == set(immutability._RULES)


def test_ipam_update_rule_is_what_the_code_enforces(gen: ModuleType) -> None:
    assert set(gen.UPDATE_RULES) == {"DPUServiceIPAM"}

    def net(cidr: str) -> dict[str, Any]:
        return {"spec": {"ipv4Network": {"network": cidr}}}

    assert immutability.update_problems("DPUServiceIPAM", net("10.0.0.0/16"), net("10.0.0.0/24"))
    assert not immutability.update_problems("DPUServiceIPAM", net("10.0.0.0/24"), net("10.0.0.0/16"))
    switched = {"spec": {"ipv4Subnet": {"subnet": "10.1.0.0/24"}}}
    assert not immutability.update_problems("DPUServiceIPAM", net("10.0.0.0/16"), switched)


def test_webhook_defaults_are_what_the_api_server_fills_in(gen: ModuleType) -> None:
    assert set(gen.WEBHOOK_DEFAULTS) == set(defaults._WEBHOOKS)
    meta = {"name": "img", "namespace": "dpf"}
    bfb = apply_defaults({"apiVersion": "provisioning.dpu.nvidia.com/v1alpha1", "kind": "BFB", "metadata": meta,
                          "spec": {"url": "http://x/a.bfb"}})  # fmt: skip
    assert bfb["spec"]["fileName"] == "dpf-img.bfb"
    assert dict(gen.WEBHOOK_DEFAULTS["BFB"])["spec.fileName"].startswith("`<namespace>-<name>.bfb`")

    def dpuset(spec: dict[str, Any]) -> dict[str, Any]:
        obj = {"apiVersion": "provisioning.dpu.nvidia.com/v1alpha1", "kind": "DPUSet", "metadata": meta, "spec": spec}
        out: dict[str, Any] = apply_defaults(obj)["spec"]
        return out

    assert dpuset({})["strategy"] == {"type": "Recreate"}
    assert dpuset({"strategy": {"type": "RollingUpdate"}})["strategy"]["rollingUpdate"] == {"maxUnavailable": 1}
    documented = dict(gen.WEBHOOK_DEFAULTS["DPUSet"])
    assert '{"type": "Recreate"}' in documented["spec.strategy"]
    assert documented["spec.strategy.rollingUpdate.maxUnavailable"].startswith("`1`")


def _string_literals() -> set[str]:
    found: set[str] = set()
    for root in ("dpfd", "controller"):
        for path in (REPO / root).rglob("*.py"):
            if "proto" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    found.add(node.value)
    return found


def test_condition_types_and_reasons_exist_in_the_code(gen: ModuleType) -> None:
    literals = _string_literals()
    from dpfd.host.provisioning import machine, phases

    generated = set(gen._dms_reasons()) | {machine._reason_of(p) for p in phases.HAPPY_PATH}
    named = {d.type for docs in gen.CONDITIONS.values() for d in docs}
    named |= {r for docs in gen.CONDITIONS.values() for d in docs for r in d.reasons}
    named |= {p for phases_ in gen.REPORTED_PHASES.values() for p in phases_}
    missing = sorted(n for n in named if n not in literals and n not in generated)
    assert missing == [], f"named in the reference but nowhere in dpfd/ or controller/: {missing}"
    assert {"DMSInstallError", "DMSUnreachable"} <= set(gen._dms_reasons())
    assert set(gen.CONDITIONS) <= {info.kind for info in KINDS.values()}
