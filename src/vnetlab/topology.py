"""The topology file: YAML in, YAML out, and its JSON Schema for editors.

Keys are the snake_case forms of ARM property names (``address_prefix``,
``network_security_group``, ``next_hop_ip_address``); see ``examples/`` and
``vnetlab schema``.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_left
from pathlib import Path

import yaml
from pydantic import ValidationError
from yaml import events
from yaml.nodes import ScalarNode

from .bulk import bulk
from .parallel import WorkerFailed, fork_map, split_bounds, worker_count
from .model import AzureError, Topology
from .model.errors import InvalidRequestContent, InvalidTemplate
from .model.nsg import PROTOCOLS
from .model.topology import KINDS, NIC_INPUT_KEYS, NIC_KEYS

try:  # libyaml's parser: the pure-Python one takes minutes on a 200,000-line lab
    from yaml import CSafeLoader as SafeLoader
    from yaml._yaml import CParser
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader
    CParser = None


def pydantic_error(exc: ValidationError) -> AzureError:
    """Azure's error when a model validator raised one (its type is Azure's code), else pydantic's
    messages under InvalidRequestContent."""
    azure = next((e for e in exc.errors() if e["type"][:1].isupper()), None)
    if azure is not None:
        return AzureError(azure["msg"], azure["type"])
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        parts.append(f"{loc}: {err['msg']}")
    return InvalidRequestContent("The lab definition is not valid: " + "; ".join(parts))


@bulk()
def parse(doc: dict) -> Topology:
    try:
        return Topology.model_validate(doc)
    except ValidationError as exc:
        raise pydantic_error(exc) from None


@bulk()
def load(path: str | Path) -> Topology:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise InvalidTemplate(f"Cannot read topology file {path}: {exc.strerror}.") from None
    try:
        doc = load_yaml(text) or {}
    except yaml.YAMLError as exc:
        raise InvalidTemplate(f"Topology file {path} is not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidTemplate(f"Topology file {path} must hold a mapping at the top.")
    if not doc:
        raise InvalidTemplate(f"Topology file {path} is empty: it must name the lab and list its resources.")
    if not str(doc.get("name") or "").strip():
        raise InvalidTemplate(f"Topology file {path} does not name its lab: add `name: LAB` at the top.")
    return parse(doc)


class _NotPlain(Exception):
    """The document uses anchors, aliases, explicit tags, merge keys or several documents."""


_STR = "tag:yaml.org,2002:str"
_scalars = yaml.SafeLoader("")  # resolves and constructs plain scalars exactly as safe_load does


def load_yaml(text: str):
    """``yaml.safe_load(text)``, faster. Even with libyaml, PyYAML builds a Python object for every
    parser event and resolves every scalar through a list of regular expressions in Python; a lab
    file is plain mappings, lists and scalars that repeat (``Tcp``, ``Allow``, port numbers). So a file
    in the plain block style ``yaml.dump`` writes (one-line flow collections included) is read line by
    line (``_from_lines``); else libyaml's events are built straight into dicts and lists; each
    distinct plain scalar is resolved once, by PyYAML's own resolver. Anything else (anchors, aliases,
    tags, merge keys, block scalars) goes to the full loader."""
    try:
        return _from_lines(text)
    except _NotPlain:
        pass
    if CParser is None:
        return yaml.safe_load(text)
    try:
        return _from_events(CParser(text))
    except _NotPlain:
        pass
    except yaml.YAMLError:
        return yaml.safe_load(text)  # raises the same error, with the pure-Python parser's excerpt of the line
    try:
        return yaml.load(text, Loader=SafeLoader)
    except yaml.YAMLError:
        return yaml.safe_load(text)


# -- the line reader: a strict subset of YAML, refused (``_NotPlain``) at the first doubt -----------------
# Any character YAML reads as a line break or tab, a control character, a byte order mark: refused.
_OUTSIDE = re.compile("[^\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]")
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f]")  # the same, for ASCII text (faster)
_START = r"(?:[\w./+~(]|-(?=[\w./]))"  # how a plain scalar may start: no indicator character
_KEY = re.compile(rf"({_START}[^#:'\"]*?|'(?:[^']|'')*') *:(?: +(.*))?")
_PLAIN = re.compile(rf"{_START}[^#]*")
_SINGLE = re.compile(r"'(?:[^']|'')*'")
_DOUBLE = re.compile(r'"[^"\\]*"')
_FLOW_PLAIN = re.compile(rf"{_START}[^,\[\]{{}}:#'\" ]*(?: +[^,\[\]{{}}:#'\" ]+)*")
# the first characters of PyYAML's implicit resolvers (bool, float, int, merge, null, timestamp, value)
_RESOLVED_FIRST = frozenset(k for k in yaml.SafeLoader.yaml_implicit_resolvers if k)
_LONGEST_KEY = 1000  # PyYAML refuses a simple key longer than 1024 characters


def _is_entry(body: str) -> bool:
    """A block sequence entry: ``-`` then a space or the end of the line."""
    return body == "-" or body.startswith("- ")


def _from_lines(text: str):
    """``yaml.safe_load(text)`` for block mappings and sequences of one-line scalars (plain, 'single' or
    "double" quoted without escapes) and one-line flow collections, with whole-line comments; raises
    ``_NotPlain`` at anything else, or anything it is not sure of (``load_yaml`` then reads the text
    with libyaml). Flow collections become JSON, read by the json module: a plain scalar is written
    as the JSON of PyYAML's own resolution of it, and anything that is not then valid JSON (a key
    that is not a string, a trailing comma) is refused."""
    if _CONTROL.search(text) if text.isascii() else _OUTSIDE.search(text):
        raise _NotPlain
    lines = []
    for line in text.split("\n"):
        body = line.lstrip(" ")
        if not body or body[0] == "#":
            continue
        if "#" in body:
            raise _NotPlain  # a comment after content, or a '#' in a scalar: left to libyaml
        lines.append((len(line) - len(body), body.rstrip(" ")))
    if not lines:
        raise _NotPlain
    reader = _LineReader(lines)
    reader.read_ahead()
    value, end = reader.node(0)
    if end != len(lines):
        raise _NotPlain
    return value


class _FlowJson(dict):
    """A flow collection's token (an indicator with the text up to the next one) -> its JSON text,
    computed once per distinct token."""

    def __init__(self, scalars: dict):
        super().__init__({"\x01": "\n"})  # the separator of flow texts read together (``_LineReader.flows``)
        self.scalars = scalars

    def __missing__(self, token: str) -> str:
        # every token but a text's first (always '') starts with its indicator (``_flow_tokens``)
        mark = token[:1]
        out = mark + self.word(token[1:]) if mark in _INDICATORS else self.word(token)
        self[token] = out
        return out

    def word(self, text: str) -> str:
        word = text.strip(" ")
        if word in ("", "[", "]", "{", "}", ",", ":"):
            return word  # '': the space between two indicators
        if len(word) > _LONGEST_KEY:
            raise _NotPlain
        if word[0] == "'":
            if not _SINGLE.fullmatch(word):
                raise _NotPlain
            return _json_string(word[1:-1].replace("''", "'"))
        if word[0] == '"':
            if not _DOUBLE.fullmatch(word):
                raise _NotPlain
            return _json_string(word[1:-1])
        if not _FLOW_PLAIN.fullmatch(word):
            raise _NotPlain
        if (word[0] not in _RESOLVED_FIRST or word.count(".") > 1) and "\\" not in word:
            # no implicit resolver starts with that character, or takes two dots (an address): a string
            return f'"{word}"'
        if word.isdigit() and word.isascii() and (word[0] != "0" or word == "0"):
            return word  # a decimal integer reads the same in JSON
        low, dash, high = word.partition("-")
        if dash and low.isdigit() and high.isdigit() and word.isascii():
            return f'"{word}"'  # a port range: no resolver reads digits-digits (a timestamp has two dashes)
        value = _scalar(word, (True, False), self.scalars)
        if type(value) not in (str, int, float, bool, type(None)):
            raise _NotPlain  # a timestamp: JSON has no such value
        return json.dumps(value)


def _json_string(text: str) -> str:
    """``json.dumps(text)``; printable ASCII without a quote or a backslash needs no escape."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    return json.dumps(text)


class _LineReader:
    """Block nodes over ``(indent, text)`` lines, each method returning (value, next line)."""

    def __init__(self, lines: list[tuple[int, str]]):
        self.lines, self.scalars = lines, {}
        self.flow_json = _FlowJson(self.scalars)
        self.entries: list[int] = []  # the lines of the flow entries read ahead (``read_ahead``)...
        self.ready: list = []  # ... and the values of the first of them, in order

    def node(self, i: int):
        indent, body = self.lines[i]
        if _is_entry(body):
            return self.sequence(i, indent)
        return self.mapping(i, indent, body)

    def sequence(self, i: int, indent: int):
        lines, n, items = self.lines, len(self.lines), []
        while i < n and lines[i][0] == indent and _is_entry(lines[i][1]):
            body = lines[i][1]
            rest = body[1:].lstrip(" ")
            if rest[:1] in _FLOW_START:  # a run of one-line flow entries (a large lab's rules): read together
                run, first = [rest], i
                i += 1
                while i < n and lines[i][0] == indent and lines[i][1][:2] == "- ":
                    rest = lines[i][1][2:].lstrip(" ")
                    if rest[:1] not in _FLOW_START:
                        break
                    run.append(rest)
                    i += 1
                items += self.read(first, len(run)) or self.flows(run)
                if i < n and lines[i][0] > indent:
                    raise _NotPlain
                continue
            if not rest:  # the entry is on the lines below, or null
                i += 1
                value, i = self.node(i) if i < n and lines[i][0] > indent else (None, i)
            elif _is_entry(rest):
                raise _NotPlain  # a sequence in a sequence on one line
            elif _KEY.fullmatch(rest):
                value, i = self.mapping(i, indent + len(body) - len(rest), rest)
            else:
                value, i = self.scalar(rest), i + 1
            items.append(value)
            if i < n and lines[i][0] > indent:
                raise _NotPlain
        return items, i

    def mapping(self, i: int, indent: int, body: str):
        """A block mapping at column ``indent`` whose first entry, ``body``, is on line ``i``."""
        lines, n, out = self.lines, len(self.lines), {}
        while True:
            m = _KEY.fullmatch(body)
            if m is None:
                raise _NotPlain
            key, text = self.key(m.group(1)), m.group(2)
            i += 1
            if text:
                value = self.scalar(text)
            elif i < n and lines[i][0] > indent:
                value, i = self.node(i)
            elif i < n and lines[i][0] == indent and _is_entry(lines[i][1]):
                value, i = self.sequence(i, indent)  # a sequence may sit at its key's column
            else:
                value = None
            out[key] = value
            if i >= n or lines[i][0] < indent:
                return out, i
            if lines[i][0] > indent:
                raise _NotPlain
            body = lines[i][1]

    def key(self, text: str):
        if len(text) > _LONGEST_KEY:
            raise _NotPlain
        if text[0] == "'":
            return text[1:-1].replace("''", "'")
        return _scalar(text, (True, False), self.scalars)

    def scalar(self, text: str):
        first = text[0]
        if first == "[" or first == "{":
            return self.flow(text)
        if first == "'":
            if _SINGLE.fullmatch(text):
                return text[1:-1].replace("''", "'")
        elif first == '"':
            if _DOUBLE.fullmatch(text):
                return text[1:-1]
        elif _PLAIN.fullmatch(text) and ": " not in text and text[-1] != ":":
            return _scalar(text, (True, False), self.scalars)
        raise _NotPlain

    def flow(self, text: str):
        try:
            return json.loads("".join(map(self.flow_json.__getitem__, _flow_tokens(text))))
        except ValueError:
            raise _NotPlain from None

    def flows(self, texts: list[str]) -> list:
        """``[self.flow(text) for text in texts]``, in one pass over their tokens: the texts become one
        JSON text, one line each, and each line must be exactly one JSON value (the scanner starts at
        the line and must end where it does), as ``flow`` reads each text alone."""
        out = _json_lines(self.flows_json(texts), len(texts))
        if len(out) < len(texts):
            raise _NotPlain
        return out

    def flows_json(self, texts: list[str]) -> str:
        """The JSON text of ``texts``, one line each (see ``flows``)."""
        return "".join(map(self.flow_json.__getitem__, _flow_tokens(_FLOW_SEPARATOR.join(texts)))) + "\n"

    def read_ahead(self) -> None:
        """Read the one-line flow entries of block sequences (a large lab's 200,000 rules, most of the
        time of reading it) before the rest, shared among ``worker_count`` processes: each turns its
        share into JSON text, read here. Every such line is read by ``flows``, if the document is plain
        at all; so ``read`` answers the runs ``sequence`` meets from these values. A share that fails
        ends what is ready: ``flows`` reads the rest as it would have, and fails as it would have."""
        if worker_count(len(self.lines), _PARALLEL_FLOWS) == 1:
            return  # too few lines to hold enough flow entries, or no forking here
        entries = [k for k, (_, body) in enumerate(self.lines) if body.startswith(("- {", "- [")) or
                   (body[:3] == "-  " and body[2:].lstrip(" ")[:1] in _FLOW_START)]
        workers = worker_count(len(entries), _PARALLEL_FLOWS)
        if workers == 1:
            return
        texts = [self.lines[k][1][2:].lstrip(" ") for k in entries]
        # the first share, the parent's, is smaller: the parent also reads the JSON the others make
        bounds = split_bounds([1] * len(texts), [_PARENT_SHARE] + [1.0] * (workers - 1))

        def work(share: int):
            # a few thousand texts at a time: a whole share's tokens would take a hundred megabytes
            start, end = bounds[share], bounds[share + 1]
            chunks = [texts[k:min(k + _CHUNK, end)] for k in range(start, end, _CHUNK)]
            if share > 0:  # a worker: its JSON text, read by the parent
                try:
                    return "".join(map(self.flows_json, chunks))
                except Exception:  # noqa: BLE001 - the reader meets it again, in order (``flows``)
                    return None
            values: list = []  # the parent's own share, read as it is made, up to the first text that fails
            for chunk in chunks:
                try:
                    read = _json_lines(self.flows_json(chunk), len(chunk))
                except Exception:  # noqa: BLE001 - as above
                    break
                values += read
                if len(read) < len(chunk):
                    break
            return values

        try:
            answers = fork_map(work, range(workers))
        except WorkerFailed:
            return  # the reader reads it all itself
        ready = answers[0] or []
        for share, text in enumerate(answers[1:], start=1):
            if len(ready) < bounds[share] or text is None:
                break
            ready += _json_lines(text, bounds[share + 1] - bounds[share])
        self.entries, self.ready = entries, ready

    def read(self, first: int, count: int) -> list | None:
        """The values of the ``count`` flow entries from line ``first``, if read ahead; else None."""
        k = bisect_left(self.entries, first)
        if k + count > len(self.ready) or self.entries[k] != first or self.entries[k + count - 1] != first + count - 1:
            return None
        return self.ready[k:k + count]


def _json_lines(text: str, count: int) -> list:
    """The values of the first lines of ``text``, up to ``count``, each line exactly one JSON value
    (the scanner starts at the line and must end where it does); stops at the first that is not."""
    out, start = [], 0
    try:
        for _ in range(count):
            value, end = _scan_json(text, start)
            if text[end] != "\n" or text.find("\n", start, end) != -1:
                break
            out.append(value)
            start = end + 1
    except (ValueError, StopIteration):
        pass
    return out


_PARALLEL_FLOWS = 10_000  # flow entries below which forking costs more than it saves
_CHUNK = 2000
_PARENT_SHARE = 0.75  # scanning JSON costs about a third of making it


_FLOW_START = ("[", "{")
# between two flow texts read together: a token of its own (the text holds no control character),
# which becomes a line break in their JSON
_FLOW_SEPARATOR = "\0\x01\0"
_scan_json = json.JSONDecoder().scan_once  # what json.loads runs, at one offset, without its wrapper


_INDICATORS = frozenset(",[]{}:")


def _flow_tokens(text: str) -> list[str]:
    """A one-line flow collection cut before each of its indicators (each token an indicator and the
    text up to the next one; the first, before the first indicator, is '') with string methods, three
    times faster than a regular expression: a quoted scalar holding an indicator comes out in pieces,
    which ``_FlowJson`` refuses. A ':' not followed by a space stays inside its scalar (refused too)."""
    for mark in (",", "[", "]", "{", "}"):
        text = text.replace(mark, f"\0{mark}")
    return text.replace(": ", "\0: ").split("\0")


def _scalar(value: str, implicit, cache: dict):
    """An untagged scalar (or tagged '!'), resolved as PyYAML's composer and SafeConstructor do."""
    key = (value, implicit)
    try:
        return cache[key]
    except KeyError:
        pass
    tag = _scalars.resolve(ScalarNode, value, implicit)
    if tag != _STR and tag not in _scalars.yaml_constructors:
        raise _NotPlain  # '<<' (a merge key) or '='
    result = value if tag == _STR else _scalars.yaml_constructors[tag](_scalars, ScalarNode(tag, value))
    cache[key] = result
    return result


def _from_events(parser):
    # one pass over about four million events on a large lab: names are bound locally
    get_event, cache, scalar = parser.get_event, {}, _scalar
    Scalar, MappingStart, SequenceStart = events.ScalarEvent, events.MappingStartEvent, events.SequenceStartEvent
    MappingEnd, SequenceEnd = events.MappingEndEvent, events.SequenceEndEvent
    stack: list[list] = []  # open containers: [dict or list, pending key, key seen]
    root, documents = None, 0
    while True:
        event = get_event()
        kind = type(event)
        if kind is Scalar:
            if event.anchor is not None or event.tag not in (None, "!"):
                raise _NotPlain
            value = cache.get((event.value, event.implicit), cache)
            if value is cache:
                value = scalar(event.value, event.implicit, cache)
        elif kind is MappingStart or kind is SequenceStart:
            if event.anchor is not None or event.tag not in (None, "!"):
                raise _NotPlain
            stack.append([{} if kind is MappingStart else [], None, False])
            continue
        elif kind is MappingEnd or kind is SequenceEnd:
            value = stack.pop()[0]
        elif kind is events.StreamEndEvent:
            return root
        elif kind is events.DocumentStartEvent:
            documents += 1
            if documents > 1:
                raise _NotPlain  # safe_load's own error
            continue
        elif kind is events.AliasEvent:
            raise _NotPlain
        else:
            continue
        if not stack:
            root = value
            continue
        top = stack[-1]
        container = top[0]
        if type(container) is list:
            container.append(value)
        elif top[2]:
            container[top[1]] = value
            top[2] = False
        else:
            if isinstance(value, (dict, list)):
                raise _NotPlain  # a key safe_load refuses, with its own message
            top[1], top[2] = value, True


def dump(topo: Topology) -> str:
    return yaml.safe_dump(export_doc(topo), sort_keys=False)


def export_doc(topo: Topology) -> dict:
    """The lab as its topology file holds it: values left at their default are left out, except where
    reading the file back would not give them again (a field a validator derives from others, such
    as a Dynamic NIC's allocation method once it has an address): such a resource is written whole."""
    doc = topo.model_dump(mode="json", exclude_defaults=True)
    again = parse(doc)
    for kind in ("resource_groups", *KINDS, "on_premises_sites", "internet_hosts"):
        for i, (mine, read) in enumerate(zip(getattr(topo, kind), getattr(again, kind), strict=True)):
            if mine != read:
                doc[kind][i] = mine.model_dump(mode="json")
    return doc if parse(doc) == topo else topo.model_dump(mode="json")


def schema() -> str:
    """The JSON Schema of the topology file: every form ``up`` accepts (see ``_input_forms``)."""
    doc = {"$schema": "https://json-schema.org/draft/2020-12/schema", **Topology.model_json_schema()}
    _input_forms(doc["$defs"])
    return json.dumps(doc, indent=2)


def _any_case(*words: str) -> dict:
    """A string equal to one of ``words`` in any letter case (ECMA regex: no inline flags)."""
    alts = "|".join("".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in w) for w in words)
    return {"type": "string", "pattern": f"^({alts})$"}


_SCALAR = {"anyOf": [{"type": "string"}, {"type": "integer"}]}


def _input_forms(defs: dict) -> None:
    """Widen pydantic's schema (the stored form) to the shorthands the model's before-validators
    take: a VM's NIC inline, a delegation as a service name, a lone address space, integer ports
    and prefixes, one value for a plural key, and enums in any letter case."""
    vm, nic = defs["VirtualMachine"], defs["NetworkInterface"]
    nic["properties"]["ip_configurations"] = {
        "type": "array", "minItems": 1, "items": {"$ref": "#/$defs/IPConfiguration"},
        "title": "Ip Configurations", "description": "ARM's form: every IP configuration, exactly one primary"}
    nic["properties"]["secondary_ip_addresses"] = {
        "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
        "title": "Secondary Ip Addresses", "description": "static secondary addresses, named ipconfig2, ..."}
    for key in NIC_KEYS + NIC_INPUT_KEYS:
        vm["properties"][key] = nic["properties"][key]
    vm["required"] = ["name"]
    vm["anyOf"] = [{"required": ["network_interface"]}, {"required": ["subnet"]}]
    delegation = defs.pop("Delegation")
    defs["Delegation"] = {"anyOf": [{"type": "string", "description": "the service name, e.g. "
                                     "Microsoft.Web/serverFarms"}, delegation], "title": "Delegation"}
    space = defs["VirtualNetwork"]["properties"]["address_space"]
    defs["VirtualNetwork"]["properties"]["address_space"] = {"anyOf": [{"type": "string"}, space],
                                                            "title": space["title"]}
    rule = defs["SecurityRule"]["properties"]
    for side in ("source", "destination"):
        for one, many in ((f"{side}_port_range", f"{side}_port_ranges"),
                          (f"{side}_address_prefix", f"{side}_address_prefixes")):
            rule[one] = {"anyOf": [*_SCALAR["anyOf"], {"type": "null"}], "default": None, "title": rule[one]["title"]}
            rule[many] = {"anyOf": [*_SCALAR["anyOf"], {"type": "array", "items": _SCALAR}], "title": rule[many]["title"]}
    rule["direction"] = {**_any_case("Inbound", "Outbound"), "default": "Inbound"}
    rule["access"] = {**_any_case("Allow", "Deny"), "default": "Allow"}
    rule["protocol"] = {**_any_case(*PROTOCOLS), "default": "*"}
    hop = defs["Route"]["properties"]["next_hop_type"]
    defs["Route"]["properties"]["next_hop_type"] = {**_any_case(*hop["enum"]), "title": hop["title"]}
    defs["Service"]["properties"]["protocol"] = {**_any_case("Tcp", "Udp"), "default": "Tcp"}
    defs["AppServicePlan"]["properties"]["os"] = {**_any_case("linux", "windows"), "default": "linux"}
    settings = defs["WebApp"]["properties"]["app_settings"]
    settings["additionalProperties"] = {"type": ["string", "integer", "number", "boolean"]}
    _paas_input_forms(defs)


def _paas_input_forms(defs: dict) -> None:
    """The shorthands of the private DNS and PaaS resources: a record's ``value`` (one), ARM's rule
    objects ({value}, {id}, virtual_network_subnet_id), a bypass list as one string, enums in any case."""
    record = defs["RecordSet"]
    record["properties"]["value"] = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
                                     "description": "one value (for values)"}
    record["properties"]["type"] = {**_any_case("A", "CNAME", "AAAA", "MX", "PTR", "SOA", "SRV", "TXT"),
                                    "default": "A", "description": "A or CNAME in the lab"}
    defs["VirtualNetworkLink"]["properties"]["resolution_policy"] = {**_any_case("Default", "NxDomainRedirect"),
                                                                     "default": "Default"}
    access = {**_any_case("Enabled", "Disabled", "SecuredByPerimeter"), "default": "Enabled"}
    for kind in ("StorageAccount", "SqlServer", "KeyVault"):
        defs[kind]["properties"]["public_network_access"] = access
    ip_rule = {"anyOf": [{"type": "string"}, {"type": "object", "properties": {"value": {"type": "string"},
                                                                               "action": {"type": "string"}}}]}
    subnet_rule = {"anyOf": [{"type": "string"}, {"type": "object", "properties": {
        "id": {"type": "string"}, "action": {"type": "string"}, "state": {"type": "string"},
        "ignore_missing_vnet_service_endpoint": {"type": "boolean"}}}]}
    for acls in ("StorageNetworkRuleSet", "KeyVaultNetworkAcls"):
        props = defs[acls]["properties"]
        props["default_action"] = {**_any_case("Allow", "Deny"), "default": "Allow"}
        props["ip_rules"] = {"type": "array", "items": ip_rule}
        props["virtual_network_rules"] = {"type": "array", "items": subnet_rule}
    defs["StorageNetworkRuleSet"]["properties"]["bypass"] = {"anyOf": [
        {"type": "string"}, {"type": "array", "items": _any_case("AzureServices", "Logging", "Metrics", "None")}]}
    defs["KeyVaultNetworkAcls"]["properties"]["bypass"] = {**_any_case("AzureServices", "None"),
                                                           "default": "AzureServices"}
    sql_rule = defs["SqlVirtualNetworkRule"]
    sql_rule["properties"]["virtual_network_subnet_id"] = {"type": "string", "description": "ARM's name for subnet"}
    sql_rule["required"] = ["name"]
    sql_rule["anyOf"] = [{"required": ["subnet"]}, {"required": ["virtual_network_subnet_id"]}]
    pe = defs["PrivateEndpoint"]["properties"]
    pe["connection_state"] = {**_any_case("Approved", "Pending", "Rejected", "Disconnected"), "default": "Approved"}
    pe["private_dns_zone_group"] = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
