"""The topology file's line reader (``_from_lines``) reads exactly what ``yaml.safe_load`` reads, or
declines (``_NotPlain``, and the libyaml path reads the file): on documents ``yaml.dump`` writes in
every style, and on text pieced together from YAML's tricky fragments, valid or not."""

import math

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from vnetlab import parallel, topology
from vnetlab.topology import _from_lines, _NotPlain, load_yaml


def _same(a, b) -> bool:
    """Equal, a NaN equal to a NaN, and the same types (1 is not True, 1.0 is not 1)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _check(text: str) -> bool:
    """The reader agrees with safe_load or declines; True when it read the text."""
    try:
        expected = yaml.safe_load(text)
    except yaml.YAMLError:
        with pytest.raises(_NotPlain):
            _from_lines(text)
        return False
    try:
        got = _from_lines(text)
    except _NotPlain:
        return False
    assert _same(got, expected), (text, got, expected)
    return True


CASES = [
    "a: 1", "a: {b: [1, {c: null}]}", "a: 1\na: 2", "x:\n- a\n- b: 1\n  c: [x, 'y']\ny: \"q\"",
    "a:\n  - b\n  -c: d", "a:\n- 1\n- 2\nb: 3", "- a: 1\n  b:\n  - 2\n  c: 3", "-\n  a: 1\n-\n- x",
    "a: yes\nb: off\nc: ~\nd: 0x1f\ne: 1_000\nf: 1:20\ng: .inf\nh: -.5\ni: 0o17\nj: 017\nk: 1e3",
    "a: {x: yes, y: ~, z: 1:20, w: -.inf}", "a: [a b, 'c, d', \"e]\", '', 'it''s']", "a: {}\nb: []",
    "a: http://x/y\nb: a:b\nc: a, b\nd: x {y} [z]", "a: 'x' y", "a: b: c", "a: [1, 2", "a: [1, ]",
    "a: {b, c: 1}", "a: [b: 1]", "a: {1: x}", "a: {true: x}", "- [a], [b]", "a: x:", "a:\n    b: 1\n  c: 2",
    "- a\n  b", "a: 1\n  b", "'q': 1\n'it''s': 2", "a b: c d", "a  : 1", "# only\na: 1 # no\n", "# c\n\na: 1\n",
    "a: 2024-01-01", "a: [2024-01-01]", "a: =", "<<: {a: 1}", "a: &x 1", "a: *x", "a: !!str 1", "a: |\n  x",
    "--- a", "a: 1\n...", "? a\n: 1", "a:\tb", "a: 1\r\nb: 2", "\ufeffa: 1", "a: \u00a0b", "a: {b:c}",
    "  a: 1\n  b: 2", "- - a", "a:\n- b\n c", "x", "", "a: -", "a: - b", "a: -1", "a: ~x", "a: 'x\n  y'",
    "a: {b: 'c'd}", "a: [,]", "a: {a: 1, a: 2}", "a: [.nan]", "k" * 1030 + ": 1", "a: {" + "k" * 1030 + ": 1}",
    # runs of flow entries, read together: each line must be one value on its own
    "- [1\n- 2]", "- [1,\n- 2]", "- {a: 1,\n- b: 2}", "- [a], [b]\n- [c", "- [a] x\n- [b]", "- [a]\n- [b]]",
    "x:\n- [1]\n- {a: b}\n- c\n- [d, 'e']", "- {a: 1}\n  - b", "- [a]\n-  [b]\n- {}", "- [1]\n - [2]",
    "- {p: 1000-2000, q: [0-1, 00-01, 2024-01-01, 1-2-3, -1-2, 1-, 1_0-2, 1:2-3]}",
]


@pytest.mark.parametrize("text", CASES)
def test_reader_agrees_with_safe_load_or_declines(text):
    _check(text)


def test_reader_reads_what_it_is_for():
    """Block style with one-line flow rules, as the large lab is written: read, not declined."""
    text = ("name: lab\nnsgs:\n- name: n1\n  rules:\n  - {name: r0, priority: 100, protocol: '*', "
            "ports: ['80', '443'], prefix: 10.0.0.0/24, flag: yes}\n  - {name: r1, priority: 101}\nvms:\n- name: vm1\n"
            "  services:\n  - port: 80\n  enabled: true\n  note: ~\n")
    assert _check(text)
    assert load_yaml(text) == yaml.safe_load(text)


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12),
    st.floats(allow_nan=False), st.text(alphabet="ab01 :#-,[]{}'\"&*!|>%@`~.?/\\\t\u00e9\u2028\n", max_size=8),
    st.sampled_from(["yes", "No", "on", "~", "null", "1:20", "0x1f", "017", ".inf", "1e3", "1.5e3", "2024-01-01",
                     "<<", "=", "Tcp", "10.0.0.0/24", "*", "-1", "+1", "1_0", "1.2.3", "1.5", "2001-01-01 1:02:03.5",
                     "1:2.5", "+.5e+3"]),
)
keys = st.one_of(st.text(alphabet="ab01 :#-'\"~.", min_size=1, max_size=6), st.integers(0, 99), st.booleans())
documents = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                           st.dictionaries(keys, inner, max_size=4)), max_leaves=20)


@settings(max_examples=400, deadline=None)
@given(documents, st.sampled_from([None, False, True]), st.sampled_from([2, 4]), st.sampled_from([20, 80, 4096]))
def test_reader_agrees_on_what_yaml_dump_writes(doc, flow, indent, width):
    _check(yaml.safe_dump(doc, default_flow_style=flow, indent=indent, width=width, sort_keys=False))


fragments = st.sampled_from([
    "a", "b c", "1", "'x'", "'it''s'", '"q"', "~", "yes", "- ", "-", ":", ": ", "{", "}", "[", "]", ", ", ",",
    "#", " #", "&a ", "*a", "!t ", "|", ">", "?", "'", '"', "\\", "1:2", "0x1", "2024-01-01", "http://h", "<<",
    "=", ".inf", "  ", "\t", "key: ", "k:", "- k: ", "{a: 1}", "[1, 2]", "\u00e9", "%", "@",
])
lines = st.builds(lambda indent, parts: " " * indent + "".join(parts), st.integers(0, 6),
                  st.lists(fragments, min_size=1, max_size=6))


values = st.sampled_from([
    "", "a", "b c", "1", "-1", "'x'", "'it''s'", '"q"', '"a\\"', "~", "yes", "1:2", "2024-01-01", "http://h",
    "{a: 1}", "[1, 2]", "{a: [b, 'c'], d: ~}", "[a, {b: 1}]", "{}", "[]", "[a,b]", "{a: 1,}", "[a]]", "a: b",
    "&a 1", "*a", "!t 1", "|", ">", "x #c", "x#y", "'a", "a'", "- a", "-", "{1: a}", "[a: 1]", "[.nan]",
])
structured = st.builds(lambda indent, entry, key, value: " " * indent + entry + key + value,
                       st.integers(0, 4), st.sampled_from(["", "", "- ", "-  ", "- - "]),
                       st.sampled_from(["", "k: ", "j: ", "a b: ", "'q': ", "k:", "k :", "1: ", "? "]), values)


@settings(max_examples=1500, deadline=None)
@given(st.lists(lines, min_size=1, max_size=6))
def test_reader_agrees_on_pieced_together_text(parts):
    _check("\n".join(parts))


@settings(max_examples=3000, deadline=None)
@given(st.lists(structured, min_size=1, max_size=8))
def test_reader_agrees_on_pieced_together_entries(parts):
    _check("\n".join(parts))


# -- the flow entries read ahead in forked workers (``_LineReader.read_ahead``) ------------------------------------

def _shared(text: str, workers: int):
    """``_from_lines(text)`` with its flow entries read ahead by ``workers`` processes, however few there
    are, in chunks of 7; and the number of shares of each read-ahead."""
    shares = []

    def spy(work, items, done=None):
        shares.append(len(items))
        return parallel.fork_map(work, items, done)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(topology, "_PARALLEL_FLOWS", 0)
        mp.setattr(topology, "_CHUNK", 7)  # shares cut in chunks too
        mp.setattr(topology, "fork_map", spy)
        mp.setenv(parallel.ENV, str(workers))
        try:
            return _from_lines(text), shares
        except _NotPlain:
            return _NotPlain, shares


def _rules_text(count: int, nsgs: int = 3, bad: dict | None = None) -> str:
    """NSGs in block style with ``count`` one-line flow rules each (``bad``: rule number -> its text),
    the runs broken by a block-style rule, with flow values outside runs too."""
    lines = ["name: lab", "tags: {a: 1, b: [x, 'y z']}", "network_security_groups:"]
    number = 0
    for n in range(nsgs):
        lines += [f"- name: nsg{n}", "  security_rules:"]
        for k in range(count):
            rule = (bad or {}).get(number, f"{{name: r{k}, priority: {100 + k}, protocol: Tcp, "
                                           f"destination_port_ranges: ['80', 1000-2000], flag: {'yes' if k % 2 else '~'}}}")
            lines.append(f"  -  {rule}" if k % 7 == 3 else f"  - {rule}")
            number += 1
            if k == count // 2:
                lines += ["  - name: block", "    priority: 4000", "    ports: [22]"]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("workers", [2, 3])
def test_flow_entries_read_in_workers_are_what_one_process_reads(workers):
    text = _rules_text(20)
    serial, none = _shared(text, 1)
    shared, shares = _shared(text, workers)
    assert none == [] and shares == [workers]  # the split cuts through the runs: 60 entries in 2 or 3 shares
    assert _same(shared, serial) and _same(shared, yaml.safe_load(text))


@pytest.mark.parametrize("bad", ["{a: &x 1}", "[a], [b]", "{a: 'x, y'}", "[1", "{a: 1:2}"])
@pytest.mark.parametrize("where", [0, 25, 59])  # in the parent's share, a worker's, the last worker's
def test_a_share_that_is_not_plain_falls_back_as_one_process_does(bad, where):
    text = _rules_text(20, bad={where: bad})
    assert _shared(text, 1)[0] is _NotPlain
    assert _shared(text, 3) == (_NotPlain, [3])
    try:
        expected = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        with pytest.raises(type(exc)):
            load_yaml(text)
    else:
        assert _same(load_yaml(text), expected)


def test_a_share_that_raises_raises_what_one_process_raises():
    text = _rules_text(20, bad={40: "[2024-13-01]"})  # a timestamp's resolver matches; the date is not one
    with pytest.raises(ValueError) as serial:
        yaml.safe_load(text)
    for workers in (1, 3):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(topology, "_PARALLEL_FLOWS", 0)
            mp.setenv(parallel.ENV, str(workers))
            with pytest.raises(ValueError) as shared:
                _from_lines(text)
        assert str(shared.value) == str(serial.value)


flow_values = [v for v in values.elements if v[:1] in "[{"] + ["[a], [b]", "{a: [1, 2], b: {c: ~}}", "[2024-01-01]"]
plain_flows = st.sampled_from(["{a: 1}", "[1, 2]", "{a: [b, 'c'], d: ~}", "[a, {b: 1}]", "{}", "[]", "[a,b]", "[.nan]",
                               "{a: [1, 2], b: {c: ~}, 'd e': yes}", "[0x1f, 1:20, 1000-2000, 10.0.0.0/24, 'it''s']"])
entries = st.lists(st.tuples(st.sampled_from([" ", " ", "  "]),
                             st.one_of(*[plain_flows] * 8, st.sampled_from(flow_values), values)),
                   min_size=1, max_size=8)


def _sequences(groups: list) -> str:
    """A mapping of block sequences, each entry on its line (most of them one-line flow values)."""
    lines = []
    for n, (indent, items) in enumerate(groups):
        lines.append(f"k{n}:")
        lines += [" " * indent + "-" + space + value for space, value in items]
    return "\n".join(lines)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0, 2]), entries), min_size=1, max_size=5))
def test_read_ahead_agrees_on_runs_of_pieced_together_entries(groups):
    """Runs of one-line flow entries among other entries, read ahead in 3 processes: what one reads."""
    text = _sequences(groups)
    expected = _from_lines_or_not(text)
    got, _ = _shared(text, 3)
    assert got is _NotPlain if expected is _NotPlain else _same(got, expected), text


def _from_lines_or_not(text: str):
    try:
        return _from_lines(text)
    except _NotPlain:
        return _NotPlain
