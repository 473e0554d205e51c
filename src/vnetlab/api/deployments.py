"""Microsoft.Resources/deployments: ARM templates deployed into a resource group.

``az vm create`` does not PUT a VM: it builds a template (the NSG, the NIC, the VM, and a public
IP unless ``--public-ip-address ""``) and deploys it. ``az deployment group create`` does the same
with the user's template, for example one ``az group export`` wrote. Each resource of the
template is PUT through the endpoint's own handlers, dependencies first, so it meets exactly the
rules a direct PUT meets. As in Azure, a deployment is not a transaction: the resources deployed
before a failing one stay.
https://learn.microsoft.com/azure/azure-resource-manager/templates/overview
https://learn.microsoft.com/rest/api/resources/deployments/create-or-update
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import uuid
from typing import Any

from starlette.responses import Response

from ..model.errors import AzureError, DeploymentNotFound, InvalidRequestContent, InvalidTemplate
from .arm import TOP_LEVEL_KEYS, Call, Router, bad_request, dumps, json_response
from .state import LabState, Obj, require_group

_RESOURCE_KEYS = {k.lower() for k in TOP_LEVEL_KEYS} - {"id", "type", "name", "etag"}


# -- template expressions ----------------------------------------------------------------------
# The subset templates from az and from `az group export` use: parameters(), variables(),
# resourceId(), resourceGroup(), subscription(), concat(), and property access.
# https://learn.microsoft.com/azure/azure-resource-manager/templates/template-functions

_TOKEN = re.compile(r"\s*(?:('(?:[^']|'')*')|(-?\d+)|([A-Za-z_][\w]*)|(.))")


class _Expr:
    def __init__(self, text: str, ctx: "_Context"):
        self.tokens = [m for m in _TOKEN.finditer(text) if m.group(0).strip()]
        self.pos, self.ctx, self.text = 0, ctx, text

    def fail(self) -> AzureError:
        return InvalidTemplate(f"Unable to evaluate the template language expression "
                                                f"'[{self.text}]': vnetlab knows parameters, variables, resourceId, "
                                                "resourceGroup, subscription and concat.")

    def peek(self) -> str | None:
        return self.tokens[self.pos].group(0).strip() if self.pos < len(self.tokens) else None

    def take(self, want: str | None = None) -> re.Match:
        if self.pos >= len(self.tokens) or (want is not None and self.peek() != want):
            raise self.fail()
        self.pos += 1
        return self.tokens[self.pos - 1]

    def parse(self) -> Any:
        value = self.value()
        if self.pos != len(self.tokens):
            raise self.fail()
        return value

    def value(self) -> Any:
        tok = self.take()
        string, number, name = tok.group(1), tok.group(2), tok.group(3)
        if string is not None:
            out: Any = string[1:-1].replace("''", "'")
        elif number is not None:
            out = int(number)
        elif name is not None:
            self.take("(")
            args = []
            while self.peek() != ")":
                args.append(self.value())
                if self.peek() == ",":
                    self.take(",")
            self.take(")")
            out = self.ctx.call(name.lower(), args, self)
        else:
            raise self.fail()
        while self.peek() in (".", "["):
            if self.take().group(0).strip() == ".":
                key = self.take().group(3)
                if key is None or not isinstance(out, dict):
                    raise self.fail()
                out = next((v for k, v in out.items() if k.lower() == key.lower()), None)
            else:
                index = self.value()
                self.take("]")
                out = out[index]
        return out


class _Context:
    def __init__(self, state: LabState, sub: str, rg: str, template: Obj, parameters: dict):
        self.sub, self.rg = sub, rg
        group = state.read().group(rg)
        self.location = (group.location if group and group.location else state.read().location).lower()
        self.parameters = {}
        for name, spec in template.obj("parameters").data.items():
            given = next((v for k, v in parameters.items() if k.lower() == name.lower()), None)
            if isinstance(given, dict) and "value" in given:
                self.parameters[name.lower()] = given["value"]
            elif isinstance(spec, dict) and "defaultValue" in spec:
                self.parameters[name.lower()] = spec["defaultValue"]
            else:
                raise InvalidTemplate(f"The value for the template parameter '{name}' is not provided.")
        self.parameters = {k: self.evaluate(v) for k, v in self.parameters.items()}
        self.variables = {k.lower(): v for k, v in template.obj("variables").data.items()}

    def call(self, name: str, args: list, expr: _Expr) -> Any:
        if name == "parameters" and len(args) == 1 and str(args[0]).lower() in self.parameters:
            return self.parameters[str(args[0]).lower()]
        if name == "variables" and len(args) == 1 and str(args[0]).lower() in self.variables:
            return self.evaluate(self.variables[str(args[0]).lower()])
        if name == "concat":
            return [x for a in args for x in a] if args and isinstance(args[0], list) else "".join(map(str, args))
        if name == "resourcegroup" and not args:
            return {"id": f"/subscriptions/{self.sub}/resourceGroups/{self.rg}", "name": self.rg,
                    "location": self.location}
        if name == "subscription" and not args:
            return {"id": f"/subscriptions/{self.sub}", "subscriptionId": self.sub}
        if name == "resourceid" and len(args) >= 2:
            return resource_path(self.sub, self.rg, str(args[0]), [str(a) for a in args[1:]])
        raise expr.fail()

    def evaluate(self, value: Any) -> Any:
        if isinstance(value, str) and value.startswith("[") and value.endswith("]") and not value.startswith("[["):
            return _Expr(value[1:-1], self).parse()
        if isinstance(value, dict):
            return {k: self.evaluate(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.evaluate(v) for v in value]
        return value


def resource_path(sub: str, rg: str, type_: str, names: list[str]) -> str:
    namespace, *types = type_.split("/")
    if len(types) != len(names) or not types:
        raise InvalidTemplate(f"The resource type '{type_}' does not match the names {names}.")
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{namespace}/" + \
        "/".join(f"{t}/{n}" for t, n in zip(types, names, strict=True))


# -- the request body --------------------------------------------------------------------------

_SPLICE = ", template:"


def strip_jsonc(text: str) -> str:
    """JSON with comments (what template files may hold) as plain JSON: comments and trailing commas go."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif text.startswith("//", i):
            i = text.find("\n", i) if "\n" in text[i:] else n
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        else:
            out.append(c)
            i += 1
    return re.sub(r",(\s*[}\]])", r"\1", "".join(out))


def deployment_body(call: Call) -> Obj:
    """The deployment request. ``az deployment group create`` splices the template file's own text
    into the body after the other properties, as ``..., template:{...}}}`` (an unquoted name, and the
    file may have comments), which ARM's JSON reader accepts; so does this one."""
    raw = call.body.decode("utf-8", errors="replace")
    at = raw.find(_SPLICE)
    if at < 0 or not raw.rstrip().endswith("}}"):
        return Obj(call.resource_body(), "")
    try:
        head = json.loads(raw[:at] + "}}")
        template = json.loads(strip_jsonc(raw[at + len(_SPLICE):raw.rstrip().rindex("}}")]))
    except (ValueError, KeyError) as exc:
        raise bad_request(f"The request content was invalid and could not be deserialized: '{exc}'.") from None
    head.setdefault("properties", {})["template"] = template
    call._json = head
    return Obj(call.resource_body(), "")


# -- deploying ---------------------------------------------------------------------------------

def _ordered(resources: list[dict]) -> list[dict]:
    """Dependencies first (dependsOn names a resource by type/name or by id), else template order."""
    def key(res: dict) -> str:
        return f"{res.get('type', '')}/{res.get('name', '')}".lower()

    by_key = {key(r): r for r in resources}
    out: list[dict] = []
    seen: set[int] = set()

    def visit(res: dict, stack: tuple = ()) -> None:
        if id(res) in seen:
            return
        if id(res) in stack:
            raise InvalidTemplate(f"Circular dependency detected on resource '{key(res)}'.")
        for dep in res.get("dependsOn") or []:
            dep_key = str(dep).lower().split("/providers/")[-1]
            target = by_key.get(dep_key) or next((r for k, r in by_key.items() if k.endswith("/" + dep_key)), None)
            if target is not None:
                visit(target, stack + (id(res),))
        seen.add(id(res))
        out.append(res)

    for res in resources:
        visit(res)
    return out


def failure(rid: str, res: dict, response: Response) -> dict:
    """ARM's DeploymentFailed error, with the failing resource's own error in its details."""
    try:
        inner = json.loads(response.body)["error"]
    except (ValueError, KeyError, TypeError):
        inner = {"code": "InternalServerError", "message": response.body.decode(errors="replace")}
    return {"code": "DeploymentFailed",
            "message": "At least one resource deployment operation failed. Please list deployment operations for "
                       "details. Please see https://aka.ms/arm-deployment-operations for usage details.",
            "details": [{"code": inner.get("code", "BadRequest"), "target": rid,
                         "message": f"{res.get('type', '')} '{res.get('name', '')}': {inner.get('message', '')}"}]}


_UNSUPPORTED_HINTS = {"microsoft.network/publicipaddresses": " (az vm create: pass --public-ip-address \"\")"}


def unsupported(rid: str, type_: str) -> dict:
    """Preflight: a resource type vnetlab does not model fails the deployment before anything is made."""
    hint = _UNSUPPORTED_HINTS.get(type_.lower(), "")
    return {"code": "InvalidTemplateDeployment",
            "message": "The template deployment failed the preflight validation: a resource type is not supported.",
            "details": [{"code": "NoRegisteredProviderFound", "target": rid,
                         "message": f"vnetlab does not model resources of type '{type_}'{hint}."}]}


class Deployments:
    """Deployments are kept in memory: ARM lists them, but they are not resources of the lab.
    ``dispatch(call, method, path, body)`` answers one request as the endpoint would;
    ``supports(method, path)`` says whether the endpoint has a route for it."""

    def __init__(self, state: LabState, dispatch, supports):
        self.state, self.dispatch, self.supports = state, dispatch, supports
        self.done: dict[tuple[str, str], dict] = {}

    def deploy(self, call: Call, rg: str, name: str, body: Obj, sub: str) -> dict:
        props = body.obj("properties")
        template = props.obj("template")
        if "template" not in props:
            raise InvalidRequestContent("The request content must have properties.template (templateLink is not supported: "
                              "pass the template inline, e.g. az deployment group create --template-file).")
        ctx = _Context(self.state, sub, rg, template, props.obj("parameters").data)
        resources = ctx.evaluate(template.list("resources"))
        deployed: list[dict] = []
        todo = [(resource_path(sub, rg, str(r.get("type", "")), str(r.get("name", "")).split("/")), r)
                for r in _ordered([r for r in resources if isinstance(r, dict)]) if r.get("condition") is not False]
        for rid, res in todo:
            if not self.supports("PUT", rid):
                return self.record(sub, rg, name, props, [], {}, unsupported(rid, str(res.get("type"))))
        for rid, res in todo:
            doc = {k: v for k, v in res.items() if k.lower() in _RESOURCE_KEYS}
            response = self.dispatch(call, "PUT", rid, dumps(doc))
            if response.status_code >= 400:
                return self.record(sub, rg, name, props, deployed, {}, failure(rid, res, response))
            deployed.append({"id": rid})
        outputs = {k: {"type": (v or {}).get("type", "String"), "value": ctx.evaluate((v or {}).get("value"))}
                   for k, v in template.obj("outputs").data.items()}
        return self.record(sub, rg, name, props, deployed, outputs)

    def record(self, sub: str, rg: str, name: str, props: Obj, deployed: list, outputs: dict,
               error: dict | None = None) -> dict:
        now = dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")
        rid = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Resources/deployments/{name}"
        template_hash = str(int(hashlib.sha256(dumps(props.raw("template"))).hexdigest()[:15], 16))
        doc = {"id": rid, "name": name, "type": "Microsoft.Resources/deployments",
               "properties": {"templateHash": template_hash, "parameters": props.obj("parameters").data,
                              "mode": (props.str("mode") or "Incremental").capitalize(),
                              "provisioningState": "Failed" if error else "Succeeded", "timestamp": now, "duration": "PT0S",
                              "correlationId": str(uuid.uuid4()), "providers": [], "dependencies": [],
                              "outputs": outputs, "outputResources": deployed}}
        if error:
            error["target"] = rid
            doc["properties"]["error"] = error
        self.done[(rg.lower(), name.lower())] = doc
        return doc

    # -- handlers -----------------------------------------------------------------------------
    def put(self, call: Call) -> Response:
        rg = require_group(self.state.read(), call.params["rg"])
        name = call.params["name"]
        existed = (rg.lower(), name.lower()) in self.done
        doc = self.deploy(call, rg, name, deployment_body(call), call.subscription)
        if doc["properties"]["provisioningState"] == "Succeeded":
            return json_response(doc, 200 if existed else 201)
        # A failed deployment is reported the way ARM reports it: through the operation's status
        # (az prints that body), not as an error of the PUT.
        running = {**doc, "properties": {**doc["properties"], "provisioningState": "Running"}}
        del running["properties"]["error"]
        status = f"{call.base_url}{doc['id']}/operationStatuses/{uuid.uuid4()}?api-version=2024-11-01"
        return json_response(running, 200 if existed else 201, {"Azure-AsyncOperation": status, "Retry-After": "0"})

    def validate(self, call: Call) -> Response:
        rg = require_group(self.state.read(), call.params["rg"])
        props = deployment_body(call).obj("properties")
        ctx = _Context(self.state, call.subscription, rg, props.obj("template"), props.obj("parameters").data)
        ctx.evaluate(props.obj("template").list("resources"))
        rid = f"/subscriptions/{call.subscription}/resourceGroups/{rg}/providers/Microsoft.Resources/deployments/" \
              f"{call.params['name']}"
        return json_response({"id": rid, "name": call.params["name"], "type": "Microsoft.Resources/deployments",
                              "properties": {"provisioningState": "Succeeded", "mode": "Incremental",
                                             "parameters": props.obj("parameters").data}})

    def get(self, call: Call) -> Response:
        rg = require_group(self.state.read(), call.params["rg"])
        doc = self.done.get((rg.lower(), call.params["name"].lower()))
        if doc is None:
            raise DeploymentNotFound(f"Deployment '{call.params['name']}' could not be found.")
        return json_response(doc)

    def list_(self, call: Call) -> Response:
        rg = require_group(self.state.read(), call.params["rg"]).lower()
        return json_response({"value": [d for (g, _), d in self.done.items() if g == rg]})

    def operation_status(self, call: Call) -> Response:
        rg = require_group(self.state.read(), call.params["rg"])
        doc = self.done.get((rg.lower(), call.params["name"].lower()))
        if doc is None:
            raise DeploymentNotFound(f"Deployment '{call.params['name']}' could not be found.")
        props = doc["properties"]
        return json_response({"status": props["provisioningState"], **({"error": props["error"]}
                                                                       if "error" in props else {})})

    def router(self) -> Router:
        r = Router()
        base = "subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.Resources/deployments"
        r.add("PUT", f"{base}/{{name}}", self.put, blocking=True)
        r.add("GET", f"{base}/{{name}}", self.get)
        r.add("GET", base, self.list_)
        r.add("POST", f"{base}/{{name}}/validate", self.validate, blocking=True)
        r.add("GET", f"{base}/{{name}}/operationStatuses/{{op}}", self.operation_status)
        return r
