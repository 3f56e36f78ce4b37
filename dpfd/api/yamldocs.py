"""Multi-document YAML with line numbers: which line of a file a field path points at."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

_TIMESTAMP = "tag:yaml.org,2002:timestamp"


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """Safe loading without YAML 1.1 timestamps: like kubectl, "0000-03-00" or 2024-01-01 stay strings."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


_PATH_TOKEN = re.compile(r"\[([^\]]*)\]|\.?([^.\[]+)")


@dataclass(frozen=True)
class Document:
    obj: Any
    node: yaml.Node


@dataclass(frozen=True)
class SyntaxProblem:
    line: int
    reason: str


def load_documents(text: str) -> tuple[list[Document], SyntaxProblem | None]:
    """The documents that parse, and the syntax error that stopped parsing (if any)."""
    docs: list[Document] = []
    try:
        for node in yaml.compose_all(text, Loader=_Loader):
            if node is not None:
                docs.append(Document(_construct(node), node))
    except (ValueError, TypeError) as exc:  # a scalar its tag cannot hold, e.g. !!int "x"
        return docs, SyntaxProblem(1, f"YAML value error: {exc}")
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        # The parser may notice only at the end of the stream: point at the last line, not past it.
        line = min(mark.line + 1, max(len(text.splitlines()), 1)) if mark is not None else 1
        what = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        return docs, SyntaxProblem(line, f"YAML syntax error: {what}")
    except yaml.YAMLError as exc:
        return docs, SyntaxProblem(1, f"YAML syntax error: {exc}")
    return docs, None


def _construct(node: yaml.Node) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(node)
    finally:
        loader.dispose()


def path_tokens(path: str) -> list[str]:
    """ "spec.nvconfig[0].device" -> ["spec", "nvconfig", "0", "device"]; bracketed keys may hold dots."""
    return [m.group(1) if m.group(1) is not None else m.group(2) for m in _PATH_TOKEN.finditer(path)]


def line_of(node: yaml.Node, path: str) -> int:
    """1-based line of the deepest part of `path` present in the document (the key, where there is one)."""
    line = node.start_mark.line + 1
    current: yaml.Node | None = node
    for token in path_tokens(path):
        if isinstance(current, yaml.MappingNode):
            match = next(((k, v) for k, v in current.value if getattr(k, "value", None) == token), None)
            if match is None:
                break
            line = match[0].start_mark.line + 1
            current = match[1]
        elif isinstance(current, yaml.SequenceNode) and token.isdigit() and int(token) < len(current.value):
            current = current.value[int(token)]
            line = current.start_mark.line + 1
        else:
            break
    return line
