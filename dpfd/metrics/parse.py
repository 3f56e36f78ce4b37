"""Read the text exposition format back: for tests, benchmarks and tools that scrape a dpfd or the controller.

Strict about what dpfd writes (HELP and TYPE before a family's samples, well-formed label sets); it is not a
general parser of every exporter's output (no timestamps, no exemplars).
"""

from __future__ import annotations

from dataclasses import dataclass, field

_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}


class ParseError(ValueError):
    """The text is not in the exposition format; the message names the line."""


@dataclass
class ParsedFamily:
    name: str
    type: str = "untyped"
    help: str = ""
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)


@dataclass
class Scrape:
    """A parsed /metrics answer."""

    families: dict[str, ParsedFamily]

    def value(self, name: str, **labels: str) -> float | None:
        """The value of the one sample called `name` whose labels include `labels`; None if there is none."""
        found = self.values(name, **labels)
        if len(found) > 1:
            raise KeyError(f"{len(found)} samples of {name} match {labels}")
        return found[0] if found else None

    def values(self, name: str, **labels: str) -> list[float]:
        return [v for n, lbl, v in self.samples(name) if all(lbl.get(k) == want for k, want in labels.items())]

    def total(self, name: str, **labels: str) -> float:
        """The sum over every sample called `name` whose labels include `labels` (0 if there is none)."""
        return sum(self.values(name, **labels))

    def samples(self, name: str) -> list[tuple[str, dict[str, str], float]]:
        return [s for f in self.families.values() for s in f.samples if s[0] == name]


def parse(text: str) -> Scrape:
    families: dict[str, ParsedFamily] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        where = f"line {number}: {line!r}"
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                fam = families.setdefault(parts[2], ParsedFamily(parts[2]))
                rest = parts[3] if len(parts) > 3 else ""
                if parts[1] == "HELP":
                    fam.help = _unescape(rest, where, quote=False)
                else:
                    if fam.samples:
                        raise ParseError(f"{where}: TYPE after the family's samples")
                    fam.type = rest
            continue
        name, labels, value = _sample(line, where)
        fam = families.get(_family_of(name, families)) or families.setdefault(name, ParsedFamily(name))
        fam.samples.append((name, labels, value))
    return Scrape(families)


def _family_of(sample: str, families: dict[str, ParsedFamily]) -> str:
    for fam_name, fam in families.items():
        if sample == fam_name or any(sample == fam_name + s for s in _SUFFIXES.get(fam.type, ())):
            return fam_name
    return sample


def _sample(line: str, where: str) -> tuple[str, dict[str, str], float]:
    i = 0
    while i < len(line) and line[i] not in "{ ":
        i += 1
    name = line[:i]
    if not name:
        raise ParseError(f"{where}: no metric name")
    labels: dict[str, str] = {}
    if i < len(line) and line[i] == "{":
        i = _labels(line, i + 1, labels, where)
    rest = line[i:].strip().split()
    if len(rest) not in (1, 2):
        raise ParseError(f"{where}: expected a value (and an optional timestamp)")
    try:
        value = float(rest[0])
    except ValueError:
        raise ParseError(f"{where}: {rest[0]!r} is not a number") from None
    return name, labels, value


def _labels(line: str, i: int, out: dict[str, str], where: str) -> int:
    """Parse `k="v",...}` from line[i:] into out; returns the index after the closing brace."""
    while True:
        if i < len(line) and line[i] == "}":
            return i + 1
        eq = line.find("=", i)
        if eq < 0 or eq + 1 >= len(line) or line[eq + 1] != '"':
            raise ParseError(f"{where}: malformed label set")
        key = line[i:eq].strip()
        j = eq + 2
        raw: list[str] = []
        while True:
            if j >= len(line):
                raise ParseError(f"{where}: unterminated label value")
            c = line[j]
            if c == "\\":
                raw.append(line[j : j + 2])
                j += 2
                continue
            if c == '"':
                break
            raw.append(c)
            j += 1
        if key in out:
            raise ParseError(f"{where}: label {key!r} twice")
        out[key] = _unescape("".join(raw), where, quote=True)
        i = j + 1
        if i < len(line) and line[i] == ",":
            i += 1


def _unescape(text: str, where: str, *, quote: bool) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        nxt = text[i + 1 : i + 2]
        if nxt == "n":
            out.append("\n")
        elif nxt == "\\":
            out.append("\\")
        elif nxt == '"' and quote:
            out.append('"')
        else:
            raise ParseError(f"{where}: bad escape \\{nxt}")
        i += 2
    return "".join(out)
