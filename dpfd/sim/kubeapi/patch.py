"""JSON merge patch (RFC 7386), JSON patch (RFC 6902), and strategic merge patch treated as a merge patch."""

from __future__ import annotations

from typing import Any

from dpfd.api.jsontree import copy_json


class PatchError(ValueError):
    """The patch does not apply; answered as 422 (or 400 when the body is malformed)."""


clone = copy_json  # the name the emulator's modules use


def clone_obj(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: clone(v) if isinstance(v, (dict, list)) else v for k, v in obj.items()}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return clone(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            result[key] = merge_patch(result.get(key), value)
        else:
            result[key] = clone(value)
    return result


# Merge keys of the built-in lists a client may patch without `$setElementOrder` directives; other lists are
# replaced whole, unless the patch names their merge key in a `$setElementOrder/<field>` directive (kubectl does).
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "conditions": "type",
    "addresses": "type",
    "ownerReferences": "uid",
    "imagePullSecrets": "name",
}
_MERGED_PRIMITIVE_LISTS = {"finalizers"}
_ORDER = "$setElementOrder/"
_DELETE_FROM = "$deleteFromPrimitiveList/"


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Kubernetes' strategic merge patch, as far as it can be done without the types' schemas.

    Maps merge as in a merge patch and honour `$patch: replace|delete`. A list merges by key when the patch
    names the key in `$setElementOrder/<field>` or the field is a well-known one (containers by name, conditions
    by type, ...), and `finalizers` merges as a set with `$deleteFromPrimitiveList/finalizers`; other lists are
    replaced. `$retainKeys` is ignored.
    """
    if not isinstance(patch, dict):
        return clone(patch)
    directive = patch.get("$patch")
    body = {k: v for k, v in patch.items() if not k.startswith("$")}
    if directive == "replace":
        return {k: clone(v) for k, v in body.items() if v is not None}
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in body.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            if value.get("$patch") == "delete":
                result.pop(key, None)
            else:
                result[key] = strategic_merge_patch(result.get(key), value)
        elif isinstance(value, list):
            result[key] = _merge_list(key, result.get(key), value, patch.get(_ORDER + key))
        else:
            result[key] = value
    for key, value in patch.items():
        if key.startswith(_DELETE_FROM) and isinstance(value, list):
            field = key[len(_DELETE_FROM) :]
            if isinstance(result.get(field), list):
                result[field] = [v for v in result[field] if v not in value]
        elif key.startswith(_ORDER) and key[len(_ORDER) :] not in body:
            field = key[len(_ORDER) :]  # only the order (or removals from it) changed
            result[field] = _merge_list(field, result.get(field), [], value)
    return result


def _merge_key(field: str, items: list[Any], order: Any) -> str | None:
    """The key a list merges by, if it merges by key and every item has it."""
    if isinstance(order, list) and order and all(isinstance(o, dict) and len(o) == 1 for o in order):
        key: str | None = str(next(iter(order[0])))
    else:
        key = _MERGE_KEYS.get(field)
    return key if key and all(isinstance(i, dict) and key in i for i in items) else None


def _merge_list(field: str, current: Any, items: list[Any], order: Any) -> list[Any]:
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in items):
        return [clone(i) for i in items if not (isinstance(i, dict) and "$patch" in i)]
    old = current if isinstance(current, list) else []
    key = _merge_key(field, [*items, *old], order)
    if key is not None:
        by_key = {o[key]: clone(o) for o in old}
        for item in items:
            if item.get("$patch") == "delete":
                by_key.pop(item[key], None)
            else:
                by_key[item[key]] = strategic_merge_patch(by_key.get(item[key]), item)
        merged = list(by_key.values())
        if isinstance(order, list):  # listed items in that order, others (the server's own) after them
            rank = {o.get(key): i for i, o in enumerate(order) if isinstance(o, dict)}
            merged.sort(key=lambda v: rank.get(v[key], len(rank)))
        return merged
    primitive_order = isinstance(order, list) and not any(isinstance(o, dict) for o in order)
    if field in _MERGED_PRIMITIVE_LISTS or primitive_order:
        values = [*old, *(i for i in items if i not in old)]
        if isinstance(order, list):
            values.sort(key=lambda v: order.index(v) if v in order else len(order))
        return values
    return [clone(i) for i in items if not (isinstance(i, dict) and i.get("$patch") == "delete")]


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"JSON pointer {path!r} must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(container: list[Any], token: str, path: str, *, allow_end: bool) -> int:
    if allow_end and token == "-":
        return len(container)
    if not token.isdigit():
        raise PatchError(f"invalid array index {token!r} in {path!r}")
    i = int(token)
    if i > len(container) or (i == len(container) and not allow_end):
        raise PatchError(f"array index {i} out of bounds in {path!r}")
    return i


def _parent(doc: Any, tokens: list[str], path: str) -> Any:
    node = doc
    for t in tokens[:-1]:
        if isinstance(node, dict):
            if t not in node:
                raise PatchError(f"doc is missing path: {path!r}")
            node = node[t]
        elif isinstance(node, list):
            node = node[_index(node, t, path, allow_end=False)]
        else:
            raise PatchError(f"doc is missing path: {path!r}")
    return node


def _get(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return doc
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"doc is missing path: {path!r}")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, path, allow_end=False)]
    raise PatchError(f"doc is missing path: {path!r}")


def _remove(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"doc is missing path: {path!r}")
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(parent, last, path, allow_end=False))
    raise PatchError(f"doc is missing path: {path!r}")


def _add(doc: Any, path: str, value: Any, *, replace: bool) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise PatchError(f"doc is missing key: {path!r}")
        parent[last] = value
    elif isinstance(parent, list):
        i = _index(parent, last, path, allow_end=not replace)
        if replace:
            parent[i] = value
        else:
            parent.insert(i, value)
    else:
        raise PatchError(f"doc is missing path: {path!r}")
    return doc


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902 on a copy of `target`."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a list of operations")
    doc = clone(target)
    for i, op in enumerate(operations):
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"operation {i} needs 'op' and 'path'")
        kind, path = op["op"], op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f"operation {i} ({kind} {path}) needs 'value'")
        if kind == "add":
            doc = _add(doc, path, clone(op["value"]), replace=False)
        elif kind == "replace":
            doc = _add(doc, path, clone(op["value"]), replace=True)
        elif kind == "remove":
            _remove(doc, path)
        elif kind in ("move", "copy"):
            if "from" not in op:
                raise PatchError(f"operation {i} ({kind} {path}) needs 'from'")
            value = _remove(doc, op["from"]) if kind == "move" else clone(_get(doc, op["from"]))
            doc = _add(doc, path, value, replace=False)
        elif kind == "test":
            if _get(doc, path) != op["value"]:
                raise PatchError(f"testing value {path} failed")
        else:
            raise PatchError(f"unexpected kind of operation {kind!r}")
    return doc
