"""Kubernetes name syntaxes (object names, label keys and values); each check returns a reason or None."""

from __future__ import annotations

import re

from dpfd.api.text import show

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


def dns1123_subdomain_error(value: str) -> str | None:
    if len(value) > 253:
        return f"must be no more than 253 characters, got {len(value)}"
    if not _DNS1123_SUBDOMAIN.match(value):
        return (
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
            "and must start and end with an alphanumeric character"
        )
    return None


def dns1123_label_error(value: str) -> str | None:
    if len(value) > 63:
        return f"must be no more than 63 characters, got {len(value)}"
    if not _DNS1123_LABEL.match(value):
        return (
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
            "and must start and end with an alphanumeric character"
        )
    return None


def qualified_name_error(value: str) -> str | None:
    """Label and annotation keys: an optional DNS subdomain prefix and '/', then a name (<= 63 chars)."""
    prefix, slash, name = value.rpartition("/")
    if slash:
        if not prefix:
            return "prefix part must be non-empty"
        err = dns1123_subdomain_error(prefix)
        if err is not None:
            return f"prefix part {err}"
    if not name:
        return "name part must be non-empty"
    if len(name) > 63:
        return f"name part must be no more than 63 characters, got {len(name)}"
    if not _QUALIFIED_NAME.match(name):
        return (
            "name part must consist of alphanumeric characters, '-', '_' or '.', "
            "and must start and end with an alphanumeric character"
        )
    return None


def label_value_error(value: str) -> str | None:
    if value == "":
        return None
    if len(value) > 63:
        return f"must be no more than 63 characters, got {len(value)}"
    if not _QUALIFIED_NAME.match(value):
        return (
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
            "and must start and end with an alphanumeric character"
        )
    return None


def label_problems(labels: dict[str, str] | None) -> list[tuple[str, str]]:
    """(relative path, reason) for every malformed key or value of a label map."""
    out: list[tuple[str, str]] = []
    for key, value in (labels or {}).items():
        err = qualified_name_error(key)
        if err is not None:
            out.append((f"[{key}]", f"Invalid value: {show(key)}: {err}"))
        err = label_value_error(value)
        if err is not None:
            out.append((f"[{key}]", f"Invalid value: {show(value)}: {err}"))
    return out
