"""Hypothesis strategies for hostile input files, and the check every case must pass: the loader accepts
the file (and what is accepted can be used: phases planned, budgets held against the scenario, the
spec's assumptions listed) or refuses it with one `InputError` line that starts with the file's path;
never another exception. Shared by tests/test_input_fuzz.py (a few hundred cases per loader) and
benchmarks/fuzz.py (10,000 and more).

The mutants start from the default files (the scenario feb1.yaml, feb1.budgets.yaml, the default capacity
spec, the target's gala-2016.yaml config) and change them the ways the issue found crashes: a value
swapped for a hostile scalar (inf, nan, huge, tiny, negative, sexagesimal, tagged, an alias, unicode
and lone-surrogate escapes), a hostile line inserted (merge keys, anchors and alias bombs, tags on
mappings, deep nesting, duplicate keys), a subtree replaced by random YAML, and raw byte edits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import yaml
from hypothesis import strategies as st

from capacity_model.spec import DEFAULT_SPEC, load_spec, spec_findings
from gala.contract.errors import InputError
from gala.gate.budgets import budget_faults, load_budgets
from loadtests.scenario import DEFAULT_SCENARIO
from loadtests.scenario.check import plan_findings
from loadtests.scenario.load import load_scenario
from loadtests.target.config import load_config

REPO = Path(__file__).resolve().parent.parent
BUDGETS = REPO / "loadtests" / "scenarios" / "feb1.budgets.yaml"
TARGET_CONFIG = REPO / "loadtests" / "target" / "configs" / "gala-2016.yaml"


class Unclean(AssertionError):
    """A case that ended in neither acceptance nor one clean InputError line."""


def _use_scenario(path: Path) -> None:
    sc = load_scenario(path)
    sc.planned_phases()
    _ = sc.peak_users, sc.total_duration_s
    plan_findings(sc)


_FEB1 = load_scenario(DEFAULT_SCENARIO)
_FEB1_LINKS, _FEB1_PHASES = list(_FEB1.links), [p.name for p in _FEB1.phases]


def _use_spec(path: Path) -> None:
    spec = load_spec(path)
    spec.assumptions()
    spec_findings(spec, _FEB1_LINKS, _FEB1.critical_links, _FEB1_PHASES)
    _ = spec.peak.rate_per_s


def _use_budgets(path: Path) -> None:
    budgets = load_budgets(path)
    budget_faults(budgets, _FEB1_LINKS, _FEB1_PHASES)
    _ = [b.name for b in budgets.lines]


def _use_target(path: Path) -> None:
    load_config(path).model_dump()


@dataclass(frozen=True)
class Loader:
    name: str
    default: Path
    use: Callable[[Path], None]


LOADERS = {
    "scenario": Loader("scenario", DEFAULT_SCENARIO, _use_scenario),
    "budgets": Loader("budgets", BUDGETS, _use_budgets),
    "spec": Loader("spec", DEFAULT_SPEC, _use_spec),
    "target": Loader("target", TARGET_CONFIG, _use_target),
}


def check_case(loader: Loader, path: Path) -> str:
    """'accepted' or 'refused'; raise Unclean for anything else (a traceback's exception, or a refusal
    that is not one line starting with the file's path)."""
    try:
        loader.use(path)
    except InputError as exc:
        msg = str(exc)
        if not msg.startswith(f"{path}:") or "\n" in msg or "Traceback" in msg:
            raise Unclean(f"unclean refusal: {msg!r}") from exc
        return "refused"
    except Exception as exc:  # noqa: BLE001 - the point: nothing else may escape
        raise Unclean(f"{type(exc).__name__}: {exc}"[:500]) from exc
    return "accepted"


# ---------------------------------------------------------------------------------------- strategies

HOSTILE_SCALARS = [
    ".inf", "-.inf", ".nan", ".NaN", "1e40", "-1e40", "1e308", "1e309", "5e-324", "-1", "0", "-0.0", "1e22",
    "12:30:00", "1:2", "0x7fffffffffffffff", "0o17", "017", "0b101", "1_000_000", "9" * 30, "9" * 5000,
    "~", "null", "''", '""', "yes", "no", "on", "2016-02-01", "2016-13-45", "2016-02-01T25:61:61Z", "=",
    "!!float abc", "!!timestamp x", "!!bool maybe", "!!int 1.5", "!custom 1", "! 1", "!!str 1", "!!binary AAAA",
    "!!python/object/apply:os.system ['true']", "!!set {a: null}", "!!omap [a: 1]",
    "*nowhere", "&a 1", "&a [1, *a]", '"\\ud800"', '"\\udfff x"', '"\\x00"', '"\\U0010ffff"', '"\\N"',
    "[]", "{}", "[[[[[[[[[[1]]]]]]]]]]", "{a: {b: {c: {d: 1}}}}", "[1, 2", "{a: 1", "'unterminated",
    "𝟘𝟙", "²", "①", "٣", "\u202eevil", "名字", "a" * 3000, "@x", "`x", "%x", "- - -", "? a", "| x", "> x",
]


@st.composite
def _swap_value(draw, text: str) -> str:
    """One `key: value` line's value replaced by a hostile scalar (or random text, number, unicode)."""
    lines = text.splitlines()
    spots = [i for i, line in enumerate(lines) if ": " in line and not line.lstrip().startswith("#")]
    i = draw(st.sampled_from(spots))
    key = lines[i].split(": ", 1)[0]
    value = draw(st.one_of(
        st.sampled_from(HOSTILE_SCALARS),
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
        st.integers(min_value=-(10**25), max_value=10**25).map(str),
        st.text(max_size=20).map(lambda s: '"' + s.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'),
    ))
    lines[i] = f"{key}: {value}"
    return "\n".join(lines) + "\n"


def _bomb(depth: int) -> str:
    out = 'lol0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for d in range(1, depth):
        out += f"lol{d}: &l{d} [{', '.join([f'*l{d - 1}'] * 9)}]\n"
    return out


def _snippets(indent: str) -> list[str]:
    return [
        f"{indent}<<: {{a: 1}}", f"{indent}x: &base {{a: 1}}\n{indent}y:\n{indent}  <<: *base",
        f"{indent}z: !!python/object/apply:os.system {{args: [true]}}", f"{indent}z: !!map {{a: 1}}",
        f"{indent}z: " + "[" * 400 + "]" * 400, f"{indent}z: " + "{a: " * 200 + "1" + "}" * 200,
        "".join(f"{indent}{'  ' * d}k{d}:\n" for d in range(120)),
        "\n".join(indent + line for line in _bomb(9).splitlines()),
        f"{indent}z: &c [*c]", f"{indent}z: *undefined", f"{indent}? [a]\n{indent}: 1", f"{indent}1: a",
        f"{indent}null: a", f"{indent}---", f"{indent}%YAML 1.1", f"{indent}z: \"\\ud800\"",
        f"{indent}\"\\ud800\": 1", f"{indent}z: !<tag:yaml.org,2002:str> a",
    ]


@st.composite
def _insert_line(draw, text: str) -> str:
    """A hostile line (merge key, alias bomb, tag, deep nesting, odd key) inserted at some line, indented as it."""
    lines = text.splitlines()
    i = draw(st.integers(0, len(lines)))
    ref = lines[i] if i < len(lines) else ""
    indent = ref[: len(ref) - len(ref.lstrip(" "))]
    if i < len(lines) and draw(st.booleans()):  # or a duplicate of the line itself
        lines.insert(i, ref)
    else:
        lines.insert(i, draw(st.sampled_from(_snippets(indent))))
    return "\n".join(lines) + "\n"


_LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30), st.floats(),
    st.text(max_size=12), st.sampled_from(["grab", "share", "chat", "GrabUser", "p95_ms", "builtin", "12:30:00"]),
)
_TREE = st.recursive(_LEAF, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                   st.dictionaries(st.text(max_size=8), kids, max_size=4)),
                     max_leaves=12)


@st.composite
def _replace_subtree(draw, text: str) -> str:
    """The default file's data with one value (at any depth) replaced by random YAML data, dumped again."""
    data = yaml.safe_load(text)
    node, parent, key = data, None, None
    for _ in range(draw(st.integers(0, 4))):
        children = list(node.items()) if isinstance(node, dict) else list(enumerate(node)) if isinstance(node, list) else []
        if not children:
            break
        key, child = draw(st.sampled_from(children))
        parent = node
        if not isinstance(child, (dict, list)) or draw(st.booleans()):
            break
        node = child
    value = draw(_TREE)
    if parent is None:
        data = value
    else:
        parent[key] = value
    try:
        return yaml.safe_dump(data, allow_unicode=draw(st.booleans()), sort_keys=False)
    except (yaml.YAMLError, UnicodeEncodeError):  # a lone surrogate PyYAML cannot dump: write it escaped
        return yaml.safe_dump(data, allow_unicode=False, sort_keys=False)


@st.composite
def _edit_bytes(draw, raw: bytes) -> bytes:
    """A few raw byte edits: deletions, insertions of random bytes, duplicated slices, flipped bits."""
    out = bytearray(raw)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(out)))
        op = draw(st.sampled_from(["delete", "insert", "duplicate", "flip"]))
        if op == "delete":
            del out[i:i + draw(st.integers(1, 40))]
        elif op == "insert":
            out[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "duplicate":
            out[i:i] = out[i:i + draw(st.integers(1, 200))]
        elif out and i < len(out):
            out[i] ^= 1 << draw(st.integers(0, 7))
    return bytes(out)


def mutants(default: Path) -> st.SearchStrategy[bytes]:
    """Hostile variants of one default file, as the bytes to write."""
    raw = default.read_bytes()
    text = raw.decode("utf-8")
    as_bytes = lambda s: s.encode("utf-8", "surrogatepass")  # noqa: E731
    return st.one_of(
        _swap_value(text).map(as_bytes), _insert_line(text).map(as_bytes), _replace_subtree(text).map(as_bytes),
        _edit_bytes(raw), _swap_value(text).flatmap(lambda t: _edit_bytes(as_bytes(t))),
    )


def big_files() -> dict[str, bytes]:
    """Files just under the 1 MiB limit, each the worst of its kind for the reader's time and memory."""
    limit = (1 << 20) - 64
    cut = lambda b: b[:limit][: b[:limit].rindex(b"\n") + 1]  # noqa: E731  whole lines under the limit
    return {
        "100k keys": cut("".join(f"k{i}: {i}\n" for i in range(200_000)).encode()),
        "250k list items": b"x: [" + b"1," * (limit // 2 - 8) + b"1]\n",
        "one long string": b"name: " + b"a" * (limit - 16) + b"\n",
        "feb1 + 1 MiB description": DEFAULT_SCENARIO.read_bytes().replace(
            b"description: >-\n", b"description: " + b"x" * (limit - DEFAULT_SCENARIO.stat().st_size - 64) + b"\nnotes: >-\n")
        .replace(b"\nnotes: >-\n  1 February", b"\n#  1 February").replace(b"\n  overlapping the grab's", b"\n#  overlapping the grab's"),
        "deep flow nesting": b"x: " + b"[" * 1000 + b"]" * 1000 + b"\n",
        "alias at the limit": (b"a: &a [" + b"1," * 999 + b"1]\nb: [" + b"*a," * 8 + b"*a]\n"),
        "many small anchors": cut(b"".join(b"k%d: &a%d {x: 1}\n" % (i, i) for i in range(60_000))),
    }

