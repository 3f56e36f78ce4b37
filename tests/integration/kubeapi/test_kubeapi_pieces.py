"""The emulated API's pure helpers: patches, selectors, printer-column JSONPath, ages, protobuf bodies."""

from __future__ import annotations

import pytest

from dpfd.sim.kubeapi import jsonpath, protobuf
from dpfd.sim.kubeapi.patch import PatchError, json_patch, merge_patch, strategic_merge_patch
from dpfd.sim.kubeapi.selectors import SelectorError, parse_field_selector, parse_label_selector
from dpfd.sim.kubeapi.tables import human_duration


def test_merge_patch_rfc7386() -> None:
    target = {"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]}
    assert merge_patch(target, {"a": "z", "c": {"f": None}, "l": [3]}) == {"a": "z", "c": {"d": "e"}, "l": [3]}
    assert target == {"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]}  # the input is not changed


def test_strategic_merge_directives() -> None:
    target = {"m": {"x": 1, "y": 2}, "n": {"k": 1}, "keep": 1}
    patch = {"m": {"$patch": "replace", "z": 3}, "n": {"$patch": "delete"}, "$setElementOrder/l": [], "l": [1]}
    assert strategic_merge_patch(target, patch) == {"m": {"z": 3}, "keep": 1, "l": [1]}


def test_strategic_merge_lists_by_key() -> None:
    pod = {"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}, {"name": "c"}]},
           "metadata": {"finalizers": ["x", "y"]}}  # fmt: skip
    # what kubectl sends after changing a's image, removing c and swapping finalizer y for z
    patch = {
        "spec": {"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                 "containers": [{"name": "a", "image": "2"}, {"name": "c", "$patch": "delete"}]},
        "metadata": {"$setElementOrder/finalizers": ["x", "z"], "$deleteFromPrimitiveList/finalizers": ["y"],
                     "finalizers": ["z"]},
    }  # fmt: skip
    assert strategic_merge_patch(pod, patch) == {
        "spec": {"containers": [{"name": "a", "image": "2"}, {"name": "b", "image": "1"}]},
        "metadata": {"finalizers": ["x", "z"]},
    }
    # well-known keys merge without directives; unknown lists are replaced
    status = {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Other"}], "list": [1, 2]}
    merged = strategic_merge_patch(status, {"conditions": [{"type": "Ready", "status": "True"}], "list": [3]})
    assert merged == {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Other"}], "list": [3]}


def test_json_patch_operations() -> None:
    doc = {"spec": {"list": ["a", "c"], "x~y/z": 1}}
    out = json_patch(doc, [
        {"op": "add", "path": "/spec/list/1", "value": "b"},
        {"op": "add", "path": "/spec/list/-", "value": "d"},
        {"op": "replace", "path": "/spec/x~0y~1z", "value": 2},
        {"op": "copy", "from": "/spec/list/0", "path": "/spec/first"},
        {"op": "move", "from": "/spec/first", "path": "/spec/moved"},
        {"op": "test", "path": "/spec/moved", "value": "a"},
        {"op": "remove", "path": "/spec/list/3"},
    ])  # fmt: skip
    assert out == {"spec": {"list": ["a", "b", "c"], "x~y/z": 2, "moved": "a"}}
    assert doc == {"spec": {"list": ["a", "c"], "x~y/z": 1}}
    with pytest.raises(PatchError, match="testing value"):
        json_patch(doc, [{"op": "test", "path": "/spec/list/0", "value": "nope"}])
    with pytest.raises(PatchError, match="missing"):
        json_patch(doc, [{"op": "replace", "path": "/spec/absent", "value": 1}])


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ("a=1", {"a": "1"}, True),
        ("a==1,b!=2", {"a": "1"}, True),
        ("a!=1", {"a": "1"}, False),
        ("a in (1, 2),!b", {"a": "2"}, True),
        ("a notin (1,2)", {}, True),
        ("x.io/role", {"x.io/role": ""}, True),
        ("n>3,n<10", {"n": "5"}, True),
        ("n>3", {"n": "x"}, False),
    ],
)
def test_label_selectors(selector: str, labels: dict[str, str], matches: bool) -> None:
    parsed = parse_label_selector(selector)
    assert parsed is not None
    assert parsed.matches({"metadata": {"labels": labels}}) is matches


def test_selector_errors_and_field_selectors() -> None:
    with pytest.raises(SelectorError):
        parse_label_selector("a in 1")
    assert parse_label_selector(" ") is None
    fields = parse_field_selector(r"spec.nodeName=h\,1,metadata.name!=x")
    assert fields is not None and fields.exact("spec.nodeName") == "h,1"
    assert fields.matches({"metadata": {"name": "y"}, "spec": {"nodeName": "h,1"}})
    assert not fields.matches({"metadata": {"name": "x"}, "spec": {"nodeName": "h,1"}})


def test_printer_column_jsonpath() -> None:
    obj = {"status": {"conditions": [{"type": "Init", "status": "True"}, {"type": "Ready", "status": "False"}]},
           "metadata": {"labels": {"a.io/x": "1"}}, "items": [{"n": 1}, {"n": 2}]}  # fmt: skip
    assert jsonpath.find(obj, '.status.conditions[?(@.type=="Ready")].status') == ["False"]
    assert jsonpath.find(obj, "{.status.conditions[?(@.type!='Ready')].type}") == ["Init"]
    assert jsonpath.find(obj, r".metadata.labels.a\.io/x") == ["1"]
    assert jsonpath.find(obj, ".items[*].n") == [1, 2]
    assert jsonpath.find(obj, ".items[-1].n") == [2]
    assert jsonpath.find(obj, ".status.phase") == []


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(5, "5s"), (119, "119s"), (150, "2m30s"), (600, "10m"), (3 * 3600 + 60, "3h1m"), (50 * 3600, "2d2h")],
)
def test_ages_read_like_kubectl(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


def test_protobuf_bodies() -> None:
    # byte for byte what `kubectl create configmap x --from-literal=a=b` (v1.32) sends
    captured = bytes.fromhex(
        "6b3873000a0f0a0276311209436f6e6669674d6170121b0a110a017812001a0022002a0032003800420012060a01611201621a002200"
    )
    assert protobuf.decode(captured) == {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"},
                                         "data": {"a": "b"}}  # fmt: skip
    assert protobuf.decode(_configmap_body())["metadata"] == {"name": "x", "labels": {"l": "v"}}
    with pytest.raises(protobuf.ProtobufError):
        protobuf.decode(b"not protobuf")


def _field(number: int, payload: bytes) -> bytes:
    return bytes([number << 3 | 2, len(payload)]) + payload


def _configmap_body() -> bytes:
    meta = _field(1, b"x") + _field(2, b"") + _field(11, _field(1, b"l") + _field(2, b"v"))
    raw = _field(1, meta) + _field(2, _field(1, b"a") + _field(2, b"b"))
    type_meta = _field(1, b"v1") + _field(2, b"ConfigMap")
    return b"k8s\x00" + _field(1, type_meta) + _field(2, raw) + _field(3, b"") + _field(4, b"")
