"""docs/operations.md names things in the code — log events and messages, error messages, flags, settings, condition
reasons, dpfctl commands — and each must exist there, so the runbook never sends anyone looking for a line dpfd does
not write or a setting it does not read."""

from __future__ import annotations

import ast
import contextlib
import io
import re
from functools import cache
from pathlib import Path

import pytest
from pydantic import BaseModel

from dpfd.api.typewalk import model_class, unwrap
from dpfd.cli.main import main as dpfctl
from dpfd.config import DpfdConfig
from dpfd.host.dms.errors import DmsError

REPO = Path(__file__).resolve().parents[3]
DOC = REPO / "docs" / "operations.md"

# Flags of other programs the doc uses (etcdctl, etcdutl, kubectl, ...).
OTHER_FLAGS = {
    "--prefix", "--keys-only", "--rev", "--overwrite", "--show-labels", "--bump-revision", "--mark-compacted",
    "--auto-compaction-retention", "--system", "--now",
}  # fmt: skip
OTHER_NAMES = {"WatchdogSec"}  # systemd's
OTHER_QUOTES = {"mvcc: required revision has been compacted"}  # etcd's
# Backticked text that reads like a message (four spaces or more) but is a command or an example, not a quote.
_NOT_QUOTES = re.compile(
    r"^(journalctl|kubectl|etcdctl|etcdutl|dpfctl|dpfd|dpf-controller|dpf-sim|systemctl|ovs-ofctl|ovs-vsctl|curl|"
    r"usermod|groupadd|sg|grpcurl|head|ip|echo|CNI_)\b"
)


def _normalised() -> str:
    """The doc's prose: code blocks left out, and line breaks inside a paragraph undone, so quotes wrapped over two
    lines read whole."""
    prose = re.sub(r"^```.*?^```", "", DOC.read_text(), flags=re.MULTILINE | re.DOTALL)
    return re.sub(r"[ \t]*\n[ \t]*(?=\S)", " ", prose)


MIN_FIXED = 12
_PERCENT = re.compile(r"%[-#0 +]?\d*(?:\.\d+)?[sdrfgx]")


def _from_format(text: str) -> tuple[str, int]:
    """A %-format as a regex (each field a wildcard), and how many fixed characters it has."""
    parts = _PERCENT.split(text)
    return ".+".join(re.escape(part) for part in parts), sum(len(p) for p in parts)


def _from_fstring(node: ast.JoinedStr) -> tuple[str, int]:
    parts, fixed = [], 0
    for value in node.values:
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            pattern, n = _from_format(value.value)
            parts.append(pattern)
            fixed += n
        else:
            parts.append(".+")
    return "".join(parts), fixed


@cache
def _code() -> tuple[frozenset[str], tuple[re.Pattern[str], ...]]:
    """Every string literal in dpfd/ and controller/, and a pattern for every message-like one (%-formats and
    f-strings, their fields as wildcards)."""
    literals: set[str] = set()
    found: set[tuple[str, int]] = set()
    for root in ("dpfd", "controller"):
        for path in sorted((REPO / root).rglob("*.py")):
            if "proto" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    literals.add(node.value)
                    if " " in node.value:
                        found.add(_from_format(node.value))
                elif isinstance(node, ast.JoinedStr):
                    found.add(_from_fstring(node))
    # Names the admin and DMS protocols define (RPCs, messages, fields).
    for proto in sorted((REPO / "proto").rglob("*.proto")):
        literals.update(re.findall(r"\w+", proto.read_text()))
    # A message with too little fixed text ("{a}: {b}") would match any quote.
    patterns = tuple(re.compile(p, re.DOTALL) for p, fixed in sorted(found) if fixed >= MIN_FIXED)
    return frozenset(literals), patterns


def _sample(quote: str) -> str:
    """A quote from the doc with its placeholders (`<name>`, `...`) filled in."""
    return re.sub(r"<[^>]*>|\.\.\.|…", "X", quote)


def _in_code(quote: str) -> bool:
    literals, patterns = _code()
    sample = _sample(quote)
    return sample in literals or any(p.fullmatch(sample) for p in patterns)


def test_the_code_index_sees_messages() -> None:
    assert _in_code("OVS: restored the flows of <N> chains after an ovs-vswitchd start")
    assert not _in_code("OVS: restored the flows of <N> chains after lunch")


def test_quoted_log_messages_are_written_by_the_code() -> None:
    quotes = [q for q in re.findall(r'msg="([^"]+)"', _normalised()) if _sample(q).replace("X", "").strip()]
    assert len(quotes) > 15
    missing = [q for q in quotes if not _in_code(q)]
    assert missing == [], f"log messages quoted in docs/operations.md that no code writes: {missing}"


def test_quoted_messages_in_troubleshooting_are_the_codes() -> None:
    text = _normalised()
    section = text[text.index("## Troubleshooting by symptom") : text.index("## Recovery")]
    quotes = [
        q
        for q in re.findall(r"`([^`]+)`", section)
        if q.count(" ") >= 4 and not q.startswith("msg=") and not _NOT_QUOTES.match(q) and q not in OTHER_QUOTES
    ]
    assert len(quotes) > 8
    missing = [q for q in quotes if not _in_code(q.removeprefix("dpfctl: "))]
    assert missing == [], f"messages quoted in docs/operations.md that no code writes: {missing}"


def test_log_events_exist() -> None:
    literals, _ = _code()
    events = set(re.findall(r"event=([a-z_]+)", _normalised())) - {"log"}  # `log`: any line without its own event
    assert len(events) > 8
    assert sorted(e for e in events if e not in literals) == []


def test_flags_exist() -> None:
    literals, _ = _code()
    flags = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", DOC.read_text())) - OTHER_FLAGS
    assert len(flags) > 10
    assert sorted(f for f in flags if f not in literals) == []


def _field(model: type[BaseModel], key: str) -> type[BaseModel] | bool | None:
    """The model beneath `key` (camelCase, as in the YAML), True for a leaf, None when there is no such field."""
    for name, field in model.model_fields.items():
        if key in (name, field.alias):
            inner = model_class(unwrap(field.annotation)[0])
            return inner if inner is not None else True
    return None


def test_settings_exist() -> None:
    paths = {
        p
        for p in re.findall(r"`((?:provisioning|gossip|dataplane)(?:\.[A-Za-z]+)+)`", DOC.read_text())
        if "nvidia" not in p
    }
    assert len(paths) > 5
    for path in sorted(paths):
        at: type[BaseModel] | bool | None = DpfdConfig
        for key in path.split("."):
            assert isinstance(at, type), f"{path}: {key} is beneath a leaf"
            at = _field(at, key)
            assert at is not None, f"{path}: no setting {key!r}"


def test_condition_reasons_and_types_exist() -> None:
    literals, _ = _code()
    generated = {"DMS" + cls.__name__.removeprefix("Dms") for cls in DmsError.__subclasses__()}
    names = set(re.findall(r"`([A-Z][A-Za-z]*[a-z][A-Z][A-Za-z]*)`", DOC.read_text()))
    assert len(names) > 20
    assert sorted(n for n in names if n not in literals and n not in generated and n not in OTHER_NAMES) == []


def _dpfctl_exists(words: tuple[str, ...]) -> bool:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            dpfctl([*words, "--help"])
        except SystemExit as e:
            return e.code == 0
    return False


@pytest.mark.parametrize("words", [("members",), ("get", "reports"), ("nonsense",), ("get", "nonsense")])
def test_dpfctl_probe_tells_commands_apart(words: tuple[str, ...]) -> None:
    assert _dpfctl_exists(words) == (words[-1] != "nonsense")


def test_dpfctl_commands_exist() -> None:
    used: set[tuple[str, ...]] = set()
    for span in re.findall(r"`([^`]+)`", _normalised()):
        for first, second in re.findall(r"\bdpfctl ([a-z]+)(?: ([a-z]+))?", span):
            # `get` and `dpu` take a second word that names the command; for the rest it is an argument.
            used.add((first, second) if second and first in ("get", "dpu", "describe") else (first,))
    assert len(used) > 5
    unknown = sorted(w for w in used if not _dpfctl_exists(w))
    assert unknown == [], f"dpfctl commands in docs/operations.md that dpfctl does not have: {unknown}"
