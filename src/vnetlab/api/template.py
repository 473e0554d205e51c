"""The ARM template language, in one place for ``vnetlab import`` and Microsoft.Resources/deployments.

A template is read into resources in deployment order (:func:`run`): parameters and their
defaults, variables (with ``copy``), expressions with the functions real templates use,
``copy`` loops on resources and properties, ``condition``, ``dependsOn`` (ids, names, loop
names; dependencies first, template order otherwise), child resources nested in their parent,
and nested ``Microsoft.Resources/deployments`` with an inline template (inner or outer scope).
A resource's body is evaluated just before it is deployed, so ``reference()`` sees what the
resources before it made. Where the resources go is the caller's :class:`Target`.
https://learn.microsoft.com/azure/azure-resource-manager/templates/syntax
https://learn.microsoft.com/azure/azure-resource-manager/templates/template-functions
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from ..model.errors import AzureError, InvalidTemplate

DEPLOYMENTS = "Microsoft.Resources/deployments"
# Members of a resource declaration that steer the deployment and are not sent to the provider.
# https://learn.microsoft.com/azure/azure-resource-manager/templates/resource-declaration
_STEERING = {"type", "name", "apiversion", "dependson", "copy", "condition", "resources", "comments", "metadata",
             "scope", "existing"}


def _fail(text: str, detail: str) -> AzureError:
    """Azure's words for an expression it cannot evaluate.
    https://learn.microsoft.com/azure/azure-resource-manager/troubleshooting/error-invalid-template"""
    return InvalidTemplate(f"Unable to process template language expressions: '[{text}]'. {detail} "
                           "Please see https://aka.ms/arm-functions for usage details.")


# -- expressions: tokens -> a tree -> a value ------------------------------------------------------

_TOKEN = re.compile(r"\s*(?:('(?:[^']|'')*')|(\d+(?:\.\d+)?)|([A-Za-z_][\w]*)|(\S))")


def parse_expression(text: str) -> tuple:
    """The expression between ``[`` and ``]`` as a tree: ("lit", v), ("call", name, args),
    ("prop", node, name), ("index", node, node)."""
    tokens = []
    for m in _TOKEN.finditer(text):
        if m.group(0).strip():
            tokens.append(m)
    pos = 0

    def peek() -> str | None:
        return tokens[pos].group(0).strip() if pos < len(tokens) else None

    def take(want: str | None = None) -> re.Match:
        nonlocal pos
        if pos >= len(tokens) or (want is not None and peek() != want):
            found = peek()
            raise _fail(text, f"Expected '{want}' but found '{found}'." if want and found else
                        "The expression is incomplete." if found is None else f"Unexpected '{found}'.")
        pos += 1
        return tokens[pos - 1]

    def value() -> tuple:
        tok = take()
        string, number, name = tok.group(1), tok.group(2), tok.group(3)
        if string is not None:
            node: tuple = ("lit", string[1:-1].replace("''", "'"))
        elif number is not None:
            node = ("lit", float(number) if "." in number else int(number))
        elif name is not None and peek() == "(":
            take("(")
            args = []
            while peek() != ")":
                args.append(value())
                if peek() == ",":
                    take(",")
                elif peek() != ")":
                    take(")")
            take(")")
            node = ("call", name, args)
        elif name is not None and name.lower() in ("true", "false", "null"):
            node = ("lit", {"true": True, "false": False, "null": None}[name.lower()])
        elif tok.group(0).strip() == "-" and peek() is not None and peek()[0].isdigit():
            inner = value()
            node = ("lit", -inner[1])
        else:
            raise _fail(text, f"Unexpected '{tok.group(0).strip()}'.")
        while peek() in (".", "["):
            if take().group(0).strip() == ".":
                key = take().group(3)
                if key is None:
                    raise _fail(text, "A property name must follow '.'.")
                node = ("prop", node, key)
            else:
                index = value()
                take("]")
                node = ("index", node, index)
        return node

    tree = value()
    if pos != len(tokens):
        raise _fail(text, f"Unexpected '{peek()}' after the expression.")
    return tree


def is_expression(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("[") and value.endswith("]") and not value.startswith("[[")


# -- the functions -------------------------------------------------------------------------------

def unique_string(*parts: str) -> str:
    """13 characters, stable for the same inputs, from the alphabet Azure's uniqueString uses
    (vnetlab's own hash: the value differs from Azure's)."""
    digest = hashlib.sha256("-".join(parts).encode()).digest()
    return base64.b32encode(digest).decode().lower()[:13]


# guid(): a version-5 (name-based) UUID of the arguments joined by '-': stable for the same arguments,
# shaped as Azure's (whose value vnetlab does not promise to reproduce).
_GUID_NAMESPACE = uuid.UUID("11fb06fb-712d-4ddd-98c7-e71bbd588830")


def _format(fmt: str, *args: Any) -> str:
    def one(m: re.Match) -> str:
        value = args[int(m.group(1))]
        spec = m.group(2) or ""
        if spec[:1].upper() == "D" and spec[1:].isdigit():
            return str(int(value)).zfill(int(spec[1:]))
        return _string(value)
    return re.sub(r"\{(\d+)(?::([^}]*))?\}", one, fmt)


def _string(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return "" if value is None else str(value)


def _length(value: Any) -> int:
    return len(value) if value is not None else 0


def _get(obj: Any, key: str) -> Any:
    """A property by name, without regard to case, as ARM reads JSON."""
    if not isinstance(obj, dict):
        raise InvalidTemplate(f"The language expression property '{key}' can't be evaluated: "
                              f"the value is not an object.")
    for k, v in obj.items():
        if k.lower() == key.lower():
            return v
    raise InvalidTemplate(f"The language expression property '{key}' doesn't exist, available properties are "
                          f"'{', '.join(obj)}'.")


def _cidr_subnet(prefix: str, length: int, index: int) -> str:
    net = ipaddress.ip_network(prefix, strict=False)
    return str(list(net.subnets(new_prefix=int(length)))[int(index)])


def _union(*items: Any) -> Any:
    if items and isinstance(items[0], dict):
        out: dict = {}
        for item in items:
            out.update(item)
        return out
    out_list: list = []
    for item in items:
        out_list += [x for x in item if x not in out_list]
    return out_list


_PURE: dict[str, Callable[..., Any]] = {
    "concat": lambda *a: [x for i in a for x in i] if a and isinstance(a[0], list) else "".join(map(_string, a)),
    "format": _format,
    "uniquestring": lambda *a: unique_string(*map(str, a)),
    "guid": lambda *a: str(uuid.uuid5(_GUID_NAMESPACE, "-".join(map(str, a)))),
    "tolower": lambda s: str(s).lower(),
    "toupper": lambda s: str(s).upper(),
    "trim": lambda s: str(s).strip(),
    "string": _string,
    "int": lambda v: int(v),
    "bool": lambda v: v if isinstance(v, bool) else str(v).lower() == "true",
    "json": lambda s: json.loads(s),
    "length": _length,
    "empty": lambda v: not v,
    "equals": lambda a, b: a == b,
    "not": lambda v: not v,
    "and": lambda *a: all(a),
    "or": lambda *a: any(a),
    "greater": lambda a, b: a > b,
    "less": lambda a, b: a < b,
    "greaterorequals": lambda a, b: a >= b,
    "lessorequals": lambda a, b: a <= b,
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: int(a / b),
    "mod": lambda a, b: a % b,
    "min": lambda *a: min(a[0] if len(a) == 1 else a),
    "max": lambda *a: max(a[0] if len(a) == 1 else a),
    "contains": lambda c, v: (v in c) if not isinstance(c, dict) else any(k.lower() == str(v).lower() for k in c),
    "split": lambda s, d: str(s).split(d) if isinstance(d, str) else re.split("|".join(map(re.escape, d)), str(s)),
    "replace": lambda s, a, b: str(s).replace(a, b),
    "substring": lambda s, start, n=None: str(s)[start:] if n is None else str(s)[start:start + n],
    "startswith": lambda s, p: str(s).lower().startswith(str(p).lower()),
    "endswith": lambda s, p: str(s).lower().endswith(str(p).lower()),
    "indexof": lambda s, p: str(s).lower().find(str(p).lower()),
    "lastindexof": lambda s, p: str(s).lower().rfind(str(p).lower()),
    "padleft": lambda s, n, c=" ": _string(s).rjust(int(n), c),
    "first": lambda v: v[0] if v else None,
    "last": lambda v: v[-1] if v else None,
    "take": lambda v, n: v[:n],
    "skip": lambda v, n: v[n:],
    "range": lambda start, n: list(range(start, start + n)),
    "union": _union,
    "createarray": lambda *a: list(a),
    "array": lambda v: v if isinstance(v, list) else [v],
    "createobject": lambda *a: {a[i]: a[i + 1] for i in range(0, len(a), 2)},
    "coalesce": lambda *a: next((x for x in a if x is not None), None),
    "true": lambda: True,
    "false": lambda: False,
    "null": lambda: None,
    "base64": lambda s: base64.b64encode(str(s).encode()).decode(),
    "cidrsubnet": _cidr_subnet,
    "utcnow": lambda *a: "20260101T000000Z",
}
# Functions that need the deployment (parameters, the scope, copy loops, reference) are
# methods of _Context; "if" is evaluated lazily (only the branch taken).
_CONTEXT = {"parameters", "variables", "resourcegroup", "subscription", "deployment", "resourceid",
            "subscriptionresourceid", "reference", "copyindex", "if", "environment", "tenant"}
SUPPORTED_FUNCTIONS = sorted(_CONTEXT | set(_PURE))


@dataclass
class Scope:
    """Where a template deploys: the subscription, the resource group and its location."""

    subscription: str
    resource_group: str
    location: str
    deployment: str = "vnetlab"


class _Context:
    """What one template's expressions see: its parameters and variables, its scope, the copy
    indices bound at this point, and the deployment's ``reference()``."""

    def __init__(self, template: dict, given: dict, scope: Scope, run: "_Run", outer: "_Context | None" = None):
        self.scope, self.run, self.copy_index = scope, run, {}
        if outer is not None:  # a nested template in the outer scope sees its parent's names
            self.parameters, self._variables, self._values = outer.parameters, outer._variables, outer._values
            return
        self.parameters = {}
        for name, spec in (_get_obj(template, "parameters")).items():
            supplied = next((v for k, v in given.items() if k.lower() == name.lower()), None)
            if isinstance(supplied, dict) and "value" in supplied:
                self.parameters[name.lower()] = supplied["value"]
            elif isinstance(spec, dict) and "defaultValue" in spec:
                self.parameters[name.lower()] = self.evaluate(spec["defaultValue"])
            else:
                raise InvalidTemplate(f"Deployment template validation failed: 'The value for the template parameter "
                                      f"'{name}' is not provided. Please see https://aka.ms/arm-create-parameter-file "
                                      "for usage details.'.", )
            allowed = spec.get("allowedValues") if isinstance(spec, dict) else None
            if allowed and self.parameters[name.lower()] not in allowed:
                raise InvalidTemplate(f"Deployment template validation failed: 'The provided value "
                                      f"'{self.parameters[name.lower()]}' for the template parameter '{name}' is not "
                                      f"valid. The parameter value is not part of the allowed value(s): "
                                      f"'{','.join(map(str, allowed))}'.'.")
        variables = dict(_get_obj(template, "variables"))
        loops = variables.pop("copy", None) or []
        self._variables = {k.lower(): v for k, v in variables.items()}
        self._values: dict[str, Any] = {}
        for loop in loops:
            self._variables[str(loop["name"]).lower()] = ("copy", loop)

    def child(self, template: dict, given: dict, scope: Scope, inner: bool) -> "_Context":
        return _Context(template, given, scope, self.run, None if inner else self)

    def variable(self, name: str) -> Any:
        low = name.lower()
        if low not in self._variables:
            raise InvalidTemplate(f"The template variable '{name}' is not found. Please see "
                                  "https://aka.ms/arm-syntax-variables for usage details.")
        if low not in self._values:
            raw = self._variables[low]
            if isinstance(raw, tuple) and raw[0] == "copy":
                self._values[low] = self.loop(raw[1]["name"], raw[1]["count"], raw[1]["input"])
            else:
                self._values[low] = self.evaluate(raw)
        return self._values[low]

    def loop(self, name: str, count: Any, input_: Any) -> list:
        """A property or variable ``copy``: ``input`` once per index, copyIndex('name') bound."""
        out = []
        for i in range(int(self.evaluate(count))):
            saved = dict(self.copy_index)
            self.copy_index[str(name).lower()] = i
            try:
                out.append(self.evaluate(input_))
            finally:
                self.copy_index = saved
        return out

    # -- evaluation --------------------------------------------------------------------------
    def evaluate(self, value: Any) -> Any:
        if isinstance(value, str):
            if is_expression(value):
                return self.expression(value[1:-1])
            return value[1:] if value.startswith("[[") else value
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                if k.lower() == "copy" and isinstance(v, list) and all(isinstance(x, dict) and "input" in x for x in v):
                    for loop in v:  # property copy: each loop makes the array it names
                        out[loop["name"]] = self.loop(loop["name"], loop.get("count", 0), loop["input"])
                else:
                    out[k] = self.evaluate(v)
            return out
        if isinstance(value, list):
            return [self.evaluate(v) for v in value]
        return value

    def expression(self, text: str) -> Any:
        try:
            return self.node(parse_expression(text), text)
        except AzureError:
            raise
        except (TypeError, ValueError, IndexError, KeyError, ZeroDivisionError) as exc:
            raise _fail(text, f"The expression could not be evaluated: {exc}.") from None

    def node(self, node: tuple, text: str) -> Any:
        kind = node[0]
        if kind == "lit":
            return node[1]
        if kind == "prop":
            return _get(self.node(node[1], text), node[2])
        if kind == "index":
            container, index = self.node(node[1], text), self.node(node[2], text)
            return _get(container, index) if isinstance(container, dict) else container[index]
        name, args = node[1].lower(), node[2]
        if name == "if":
            if len(args) != 3:
                raise _fail(text, "The template function 'if' takes three arguments.")
            return self.node(args[1] if self.node(args[0], text) else args[2], text)
        values = [self.node(a, text) for a in args]
        if name in _PURE:
            return _PURE[name](*values)
        if name in _CONTEXT:
            return getattr(self, "fn_" + name)(*values)
        raise _fail(text, f"The template function '{node[1]}' is not valid: vnetlab does not support it. "
                          f"Supported functions: {', '.join(SUPPORTED_FUNCTIONS)}.")

    # -- functions that need the deployment ----------------------------------------------------
    def fn_parameters(self, name: str) -> Any:
        if str(name).lower() not in self.parameters:
            raise InvalidTemplate(f"The template parameter '{name}' is not found. Please see "
                                  "https://aka.ms/arm-syntax-parameters for usage details.")
        return self.parameters[str(name).lower()]

    def fn_variables(self, name: str) -> Any:
        return self.variable(str(name))

    def fn_resourcegroup(self) -> dict:
        s = self.scope
        return {"id": f"/subscriptions/{s.subscription}/resourceGroups/{s.resource_group}", "name": s.resource_group,
                "type": "Microsoft.Resources/resourceGroups", "location": s.location,
                "properties": {"provisioningState": "Succeeded"}}

    def fn_subscription(self) -> dict:
        return {"id": f"/subscriptions/{self.scope.subscription}", "subscriptionId": self.scope.subscription,
                "tenantId": "00000000-0000-0000-0000-000000000000", "displayName": "vnetlab"}

    def fn_tenant(self) -> dict:
        return {"tenantId": "00000000-0000-0000-0000-000000000000"}

    def fn_environment(self) -> dict:
        return {"name": "vnetlab", "suffixes": {"storage": "core.windows.net"}}

    def fn_deployment(self) -> dict:
        return {"name": self.scope.deployment, "properties": {"mode": "Incremental"}}

    def fn_copyindex(self, *args: Any) -> int:
        loop = next((a for a in args if isinstance(a, str)), None)
        offset = next((a for a in args if isinstance(a, int) and not isinstance(a, bool)), 0)
        key = loop.lower() if loop else ""
        if key not in self.copy_index:
            raise InvalidTemplate(f"The template function 'copyIndex' is not expected at this location"
                                  f"{f' (no copy loop named {loop!r})' if loop else ''}. Please see "
                                  "https://aka.ms/arm-copy for usage details.")
        return self.copy_index[key] + offset

    def fn_resourceid(self, *args: str) -> str:
        at = next((i for i, a in enumerate(args) if "/" in str(a)), None)
        if at is None or at > 2:
            raise InvalidTemplate(f"Unable to evaluate template language function 'resourceId': the resource type "
                                  f"is missing in {list(args)}.")
        sub, rg = self.scope.subscription, self.scope.resource_group
        if at == 2:
            sub, rg = args[0], args[1]
        elif at == 1:
            rg = args[0]
        return resource_path(sub, rg, str(args[at]), [str(a) for a in args[at + 1:]])

    def fn_subscriptionresourceid(self, *args: str) -> str:
        at = next(i for i, a in enumerate(args) if "/" in str(a))
        sub = args[0] if at == 1 else self.scope.subscription
        namespace, *types = str(args[at]).split("/")
        return f"/subscriptions/{sub}/providers/{namespace}/" + "/".join(
            f"{t}/{n}" for t, n in zip(types, args[at + 1:], strict=True))

    def fn_reference(self, target: str, api_version: str | None = None, full: str | None = None) -> Any:
        doc = self.run.reference(str(target), self.scope)
        if full and str(full).lower() == "full":
            return doc
        return doc.get("properties", doc) if isinstance(doc, dict) else doc


def _get_obj(doc: dict, key: str) -> dict:
    value = next((v for k, v in doc.items() if k.lower() == key.lower()), None)
    return value if isinstance(value, dict) else {}


def resource_path(sub: str, rg: str, type_: str, names: list[str]) -> str:
    """The id of a resource of ``type_`` (Namespace/type[/child...]) named ``names``."""
    namespace, *types = type_.split("/")
    if len(types) != len(names) or not types:
        raise InvalidTemplate(f"Unable to evaluate template language function 'resourceId': the type '{type_}' "
                              f"requires {len(types)} resource name argument(s), not {names}.")
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{namespace}/" + \
        "/".join(f"{t}/{n}" for t, n in zip(types, names, strict=True))


# -- resources in deployment order ----------------------------------------------------------------

@dataclass
class Declared:
    """One resource of a template (one copy of a loop), its name and dependencies evaluated."""

    type: str
    name: str           # parent/child for a child resource
    id: str
    raw: dict
    ctx: _Context
    copy_index: dict
    loop: str | None = None
    depends: list[str] = field(default_factory=list)   # dependsOn entries, evaluated

    @property
    def is_deployment(self) -> bool:
        return self.type.lower() == DEPLOYMENTS.lower()

    def body(self) -> dict:
        """The resource as it is sent to its provider: every member but the steering ones, evaluated."""
        saved, self.ctx.copy_index = self.ctx.copy_index, self.copy_index
        try:
            return {k: self.ctx.evaluate(v) for k, v in self.raw.items() if k.lower() not in _STEERING}
        finally:
            self.ctx.copy_index = saved


class Target(Protocol):
    """Where the resources go: the lab behind the endpoint, or a lab being imported."""

    def put(self, resource: Declared, body: dict) -> None:
        """Create or update the resource (raise the provider's AzureError to fail the deployment)."""

    def get(self, resource_id: str) -> dict | None:
        """The resource as a GET returns it (for reference()), None when it does not exist."""


class _Run:
    """One deployment: its target, the nested deployments' outputs, what was deployed, progress."""

    def __init__(self, target: Target, progress: Callable[[Declared], None] | None = None):
        self.target, self.progress = target, progress or (lambda _r: None)
        self.outputs: dict[str, dict] = {}   # nested deployment id (lower) -> its outputs
        self.deployed: list[str] = []

    def reference(self, target: str, scope: Scope) -> Any:
        rid = target if target.lower().startswith("/subscriptions/") else None
        if rid is None:  # a name: a nested deployment of this template, or a resource named so
            rid = resource_path(scope.subscription, scope.resource_group, DEPLOYMENTS, [target])
            named = [d for d in self.deployed if d.rsplit("/", 1)[-1].lower() == target.lower()]
            if rid.lower() not in self.outputs and named:  # az's outputs: "[reference('NAME')]"
                rid = named[-1]
        if rid.lower() in self.outputs:
            return {"properties": {"outputs": self.outputs[rid.lower()], "provisioningState": "Succeeded"}}
        doc = self.target.get(rid)
        if doc is None:
            raise AzureError(f"The Resource '{rid.split('/providers/')[-1]}' under resource group "
                             f"'{scope.resource_group}' was not found. For more details please go to "
                             "https://aka.ms/ARMResourceNotFoundFix", "ResourceNotFound", 404)
        return doc


def _declare(ctx: _Context, items: list, parent: Declared | None, scope: Scope) -> list[Declared]:
    """The template's resources, copies expanded and children flattened, with ``condition`` false
    left out; each with its name, id and dependsOn evaluated."""
    out: list[Declared] = []
    for raw in items:
        if not isinstance(raw, dict):
            continue
        loop = raw.get("copy") if isinstance(raw.get("copy"), dict) else None
        count = int(ctx.evaluate(loop.get("count", 0))) if loop else 1
        loop_name = str(loop.get("name", "")).lower() if loop else None
        for i in range(count):
            index = {**ctx.copy_index, **({"": i, loop_name: i} if loop else {})}
            saved, ctx.copy_index = ctx.copy_index, index
            try:
                if "condition" in raw and not ctx.evaluate(raw["condition"]):
                    continue
                type_, name = str(ctx.evaluate(raw.get("type", ""))), str(ctx.evaluate(raw.get("name", "")))
                if parent is not None and "/" not in type_:
                    type_, name = f"{parent.type}/{type_}", f"{parent.name}/{name}"
                sub, rg = scope.subscription, scope.resource_group
                rid = resource_path(sub, rg, type_, name.split("/"))
                depends = [str(d) for d in ctx.evaluate(raw.get("dependsOn") or [])]
                if parent is not None:
                    depends.append(parent.id)
                res = Declared(type_, name, rid, raw, ctx, index, loop_name, depends)
                out.append(res)
                out += _declare(ctx, raw.get("resources") or [], res, scope)
            finally:
                ctx.copy_index = saved
    return out


def _ordered(resources: list[Declared], scope: Scope) -> list[Declared]:
    """Dependencies first, template order otherwise. A dependsOn entry is an id, a name, a
    type/name, or a copy loop's name (every copy).
    https://learn.microsoft.com/azure/azure-resource-manager/templates/resource-dependency"""
    by_key: dict[str, list[Declared]] = {}
    for r in resources:
        for key in (r.id.lower(), f"{r.type}/{r.name}".lower(), r.name.lower(), r.loop or ""):
            if key:
                by_key.setdefault(key, []).append(r)
    out: list[Declared] = []
    done: set[int] = set()

    def visit(res: Declared, stack: tuple) -> None:
        if id(res) in done:
            return
        if id(res) in stack:
            raise InvalidTemplate(f"Deployment template validation failed: 'Circular dependency detected on resource: "
                                  f"'{res.id}'. Please see https://aka.ms/arm-syntax-resources for usage details.'.")
        for dep in res.depends:
            key = dep.lower()
            targets = by_key.get(key) or by_key.get(key.split("/providers/")[-1]) or []
            for target in targets:
                if target is not res:
                    visit(target, stack + (id(res),))
        done.add(id(res))
        out.append(res)

    for res in resources:
        visit(res, ())
    return out


def run(template: dict, parameters: dict, scope: Scope, target: Target,
        progress: Callable[[Declared], None] | None = None) -> tuple[dict, list[str]]:
    """Deploy ``template`` with ``parameters`` into ``target``: (outputs, ids deployed in order).
    An AzureError stops it where it is; what was deployed before stays (incremental mode)."""
    state = _Run(target, progress)
    ctx = _Context(template, parameters, scope, state)
    outputs = _deploy(ctx, template, scope, state)
    return outputs, state.deployed


def declared(template: dict, parameters: dict, scope: Scope) -> list[Declared]:
    """The template's top-level resources (copies expanded, children flattened, conditions applied),
    in deployment order, bodies not evaluated: for a preflight check and a progress bar."""
    ctx = _Context(template, parameters, scope, _Run(_NoTarget()))
    return _ordered(_declare(ctx, _resources_of(template), None, scope), scope)


def count(template: dict, parameters: dict, scope: Scope) -> int:
    """How many resources deploying the template puts (nested deployments' too, as far as they can be
    told before deploying): for a progress bar."""
    return _count(declared(template, parameters, scope))


def _count(resources: list[Declared]) -> int:
    total = 0
    for res in resources:
        if not res.is_deployment:
            total += 1
            continue
        try:
            child, template, scope = _inside(res)
            total += _count(_ordered(_declare(child, _resources_of(template), None, scope), scope))
        except AzureError:  # its names need reference(): told as they come
            total += len(_resources_of(_get_obj(_get_obj(res.raw, "properties"), "template")))
    return total


class _NoTarget:
    def put(self, resource: Declared, body: dict) -> None:  # pragma: no cover - never deployed into
        pass

    def get(self, resource_id: str) -> dict | None:
        return None


def _resources_of(template: dict) -> list:
    value = next((v for k, v in template.items() if k.lower() == "resources"), None) or []
    if isinstance(value, dict):  # languageVersion 2.0: symbolic names
        return list(value.values())
    return value


def _deploy(ctx: _Context, template: dict, scope: Scope, state: _Run) -> dict:
    for res in _ordered(_declare(ctx, _resources_of(template), None, scope), scope):
        if res.is_deployment:
            _nested(res, state)
            continue
        state.target.put(res, res.body())
        state.deployed.append(res.id)
        state.progress(res)
    outputs = {}
    for name, spec in _get_obj(template, "outputs").items():
        spec = spec or {}
        if "condition" in spec and not ctx.evaluate(spec["condition"]):
            continue
        outputs[name] = {"type": spec.get("type", "String"), "value": ctx.evaluate(spec.get("value"))}
    return outputs


def _nested(res: Declared, state: _Run) -> None:
    """A nested Microsoft.Resources/deployments with an inline template, deployed where it stands.
    https://learn.microsoft.com/azure/azure-resource-manager/templates/linked-templates#nested-template"""
    child, template, scope = _inside(res)
    state.outputs[res.id.lower()] = _deploy(child, template, scope, state)


def _inside(res: Declared) -> tuple[_Context, dict, Scope]:
    """A nested deployment's template, the context its expressions see, and where it deploys:
    ``inner`` scope, its own parameters (given by the parent); ``outer`` (the default), the parent's."""
    saved, res.ctx.copy_index = res.ctx.copy_index, res.copy_index
    try:
        props = _get_obj(res.raw, "properties")
        template = _get_obj(props, "template")
        if not template:
            raise InvalidTemplate(f"Nested deployment '{res.name}': only inline templates (properties.template) are "
                                  "supported; templateLink is not.")
        inner = str(_get_obj(props, "expressionEvaluationOptions").get("scope", "outer")).lower() == "inner"
        given = res.ctx.evaluate(_get_obj(props, "parameters")) if inner else {}
        rg = res.raw.get("resourceGroup")
        scope = res.ctx.scope
        if rg:
            scope = Scope(scope.subscription, str(res.ctx.evaluate(rg)), scope.location, res.name)
        child = res.ctx.child(template, given, scope, inner)
        if not inner:
            child.copy_index = dict(res.copy_index)
    finally:
        res.ctx.copy_index = saved
    return child, template, scope
