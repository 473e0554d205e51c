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

from starlette.responses import Response

from ..engine.whatif import CREATE, resource_changes
from ..lab import preview
from ..model import Topology
from ..model.errors import AzureError, DeploymentNotFound, InvalidRequestContent
from ..model.ids import parse_id
from ..topology import parse
from .apply import LabTarget, get as get_resource, supported
from .arm import TOP_LEVEL_KEYS, Call, Router, bad_request, check_resource_body, dumps, json_response
from .state import LabState, Obj, require_group
from .template import Declared, Scope, declared, resource_path, run

_RESOURCE_KEYS = {k.lower() for k in TOP_LEVEL_KEYS} - {"id", "type", "name", "etag"}


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

def failure(rid: str, res: Declared, response: Response) -> dict:
    """ARM's DeploymentFailed error, with the failing resource's own error in its details."""
    try:
        inner = json.loads(response.body)["error"]
    except (ValueError, KeyError, TypeError):
        inner = {"code": "InternalServerError", "message": response.body.decode(errors="replace")}
    return deployment_failed(rid, res, inner)


def deployment_failed(rid: str, res: Declared | None, inner: dict) -> dict:
    what = f"{res.type} '{res.name}': " if res is not None else ""
    return {"code": "DeploymentFailed",
            "message": "At least one resource deployment operation failed. Please list deployment operations for "
                       "details. Please see https://aka.ms/arm-deployment-operations for usage details.",
            "details": [{"code": inner.get("code", "BadRequest"), "target": rid,
                         "message": f"{what}{inner.get('message', '')}"}]}


_UNSUPPORTED_HINTS: dict[str, str] = {}


def unsupported(rid: str, type_: str) -> dict:
    """Preflight: a resource type vnetlab does not model fails the deployment before anything is made."""
    hint = _UNSUPPORTED_HINTS.get(type_.lower(), "")
    return {"code": "InvalidTemplateDeployment",
            "message": "The template deployment failed the preflight validation: a resource type is not supported.",
            "details": [{"code": "NoRegisteredProviderFound", "target": rid,
                         "message": f"vnetlab does not model resources of type '{type_}'{hint}."}]}


def _template_of(props: Obj) -> dict:
    if "template" not in props:
        raise InvalidRequestContent("The request content must have properties.template (templateLink is not "
                                    "supported: pass the template inline, e.g. az deployment group create "
                                    "--template-file).")
    return props.obj("template").data


def _top_level_id(rid: str) -> str:
    parsed = parse_id(rid)
    if parsed is None or len(parsed.types) < 2:
        return rid
    return resource_path(parsed.subscription, parsed.resource_group, f"{parsed.namespace}/{parsed.types[0]}",
                         [parsed.names[0]])


def _evaluate_before_deploying(res: Declared) -> None:
    """A resource's body evaluated and shaped as a PUT wants it; reference() to what the deployment
    has not made yet is left for the deployment, as ARM leaves it."""
    if res.is_deployment:
        return
    try:
        check_resource_body({k: v for k, v in res.body().items() if k.lower() in _RESOURCE_KEYS})
    except AzureError as exc:
        if exc.code != "ResourceNotFound":
            raise


class _DryRun(LabTarget):
    """A deployment into a copy of the lab (what-if): types vnetlab does not model are noted and passed over."""

    def __init__(self, topo: Topology):
        super().__init__(topo)
        self.unknown: list[str] = []

    def put(self, resource: Declared, body: dict) -> None:
        if not supported(resource.type):
            self.unknown.append(resource.id)
            return
        super().put(resource, body)


class _Failed(Exception):
    def __init__(self, error: dict):
        self.error = error


class EndpointTarget:
    """A deployment's resources PUT through the endpoint's own handlers, as a client's PUT is."""

    def __init__(self, dispatch, call: Call):
        self.dispatch, self.call = dispatch, call
        self.deployed: list[str] = []

    def put(self, resource: Declared, body: dict) -> None:
        doc = {k: v for k, v in body.items() if k.lower() in _RESOURCE_KEYS}
        response = self.dispatch(self.call, "PUT", resource.id, dumps(doc))
        if response.status_code >= 400:
            raise _Failed(failure(resource.id, resource, response))
        self.deployed.append(resource.id)

    def get(self, resource_id: str) -> dict | None:
        response = self.dispatch(self.call, "GET", resource_id, b"")
        return json.loads(response.body) if response.status_code == 200 else None


class Deployments:
    """Deployments are kept in memory: ARM lists them, but they are not resources of the lab.
    ``dispatch(call, method, path, body)`` answers one request as the endpoint would;
    ``supports(method, path)`` says whether the endpoint has a route for it."""

    def __init__(self, state: LabState, dispatch, supports):
        self.state, self.dispatch, self.supports = state, dispatch, supports
        self.done: dict[tuple[str, str], dict] = {}

    def scope(self, sub: str, rg: str, name: str) -> Scope:
        topo = self.state.read()
        group = topo.group(rg)
        location = (group.location if group and group.location else topo.location).lower()
        return Scope(sub, rg, location, name)

    def deploy(self, call: Call, rg: str, name: str, body: Obj, sub: str) -> dict:
        props = body.obj("properties")
        template, parameters = _template_of(props), props.obj("parameters").data
        scope = self.scope(sub, rg, name)
        for res in declared(template, parameters, scope):
            if not res.is_deployment and not self.supports("PUT", res.id):
                return self.record(sub, rg, name, props, [], {}, unsupported(res.id, res.type))
        done = self.at_once(template, parameters, scope)
        if done is not None:
            return self.record(sub, rg, name, props, [{"id": i} for i in done[1]], done[0])
        target = EndpointTarget(self.dispatch, call)
        try:
            outputs, deployed = run(template, parameters, scope, target)
        except _Failed as failed:
            return self.record(sub, rg, name, props, [{"id": i} for i in target.deployed], {}, failed.error)
        except AzureError as exc:  # found while deploying: a reference() to nothing, a nested template
            rid = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Resources/deployments/{name}"
            return self.record(sub, rg, name, props, [{"id": i} for i in target.deployed], {},
                               deployment_failed(rid, None, exc.to_body()["error"]))
        return self.record(sub, rg, name, props, [{"id": i} for i in deployed], outputs)

    def at_once(self, template: dict, parameters: dict, scope: Scope) -> tuple[dict, list[str]] | None:
        """The deployment in one transaction: each resource read by its PUT's own code
        (:func:`vnetlab.api.apply.put`) in dependency order, the lab's rules checked once over the
        result, one write. (outputs, ids), or None when anything is refused: nothing is written then,
        and the caller deploys one PUT at a time, so that the refusal lands on its resource and the
        ones before it stay, as in Azure. One transaction instead of one per resource: a template of
        hundreds of resources is not hundreds of full checks and writes of the lab."""
        result: list = []

        def change(topo: Topology) -> None:
            result.append(run(template, parameters, scope, LabTarget(topo)))

        try:
            self.state.change(change)
        except AzureError:
            return None
        return result[0]

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

    def dry_run(self, call: Call) -> tuple[Topology, Topology, list[str], Obj]:
        """The template deployed into a copy of the lab, nothing written: (the lab, the lab after it,
        the ids the template deploys, the request's properties). Raises the first refusal; types
        vnetlab does not model are passed over."""
        rg = require_group(self.state.read(), call.params["rg"])
        props = deployment_body(call).obj("properties")
        template, parameters = _template_of(props), props.obj("parameters").data
        before = self.state.read()
        draft = parse(before.model_dump(mode="json"))
        target = _DryRun(draft)
        _, ids = run(template, parameters, self.scope(call.subscription, rg, call.params["name"]), target)
        return before, preview(parse(draft.model_dump(mode="json")), before), ids + target.unknown, props

    def validate(self, call: Call) -> Response:
        """POST .../deployments/{name}/validate: ARM's preflight, which ``az deployment group create``
        also runs first: the template's language (parameters, expressions, dependencies), each
        resource's type and shape. A resource's own rules are its provider's, met when it is deployed
        (so a deployment that validates may still fail midway, as in Azure; what-if tries it whole).
        https://learn.microsoft.com/rest/api/resources/deployments/validate"""
        rg = require_group(self.state.read(), call.params["rg"])
        rid = f"/subscriptions/{call.subscription}/resourceGroups/{rg}/providers/" \
              f"Microsoft.Resources/deployments/{call.params['name']}"
        props = deployment_body(call).obj("properties")
        try:
            resources = declared(_template_of(props), props.obj("parameters").data,
                                 self.scope(call.subscription, rg, call.params["name"]))
            for res in resources:
                if not res.is_deployment and not self.supports("PUT", res.id):
                    return json_response({"error": unsupported(res.id, res.type)}, 400)
                _evaluate_before_deploying(res)
        except AzureError as exc:
            return json_response({"error": {
                "code": "InvalidTemplateDeployment",
                "message": f"The template deployment '{call.params['name']}' is not valid according to the "
                           f"validation procedure. See inner errors for details.",
                "details": [exc.to_body()["error"]]}}, 400)
        return json_response({"id": rid, "name": call.params["name"], "type": "Microsoft.Resources/deployments",
                              "properties": {"provisioningState": "Succeeded", "mode": "Incremental",
                                             "parameters": props.obj("parameters").data,
                                             "validatedResources": [{"id": r.id} for r in resources]}})

    def what_if(self, call: Call) -> Response:
        """POST .../deployments/{name}/whatIf: each resource the template deploys, Create, Modify
        (with its changed properties) or NoChange, from the engine's comparison of the lab before and
        after (:func:`vnetlab.engine.whatif.resource_changes`); types vnetlab does not model: Unsupported.
        https://learn.microsoft.com/rest/api/resources/deployments/what-if"""
        before, after, ids, props = self.dry_run(call)
        by_id = {c.resource_id.lower(): c for c in resource_changes(before, after)}
        changes, seen = [], set()
        for rid in ids:
            top = _top_level_id(rid)
            if top.lower() in seen:
                continue
            seen.add(top.lower())
            change = by_id.get(top.lower())
            if change is None:
                changes.append({"resourceId": top, "changeType": "Unsupported",
                                "unsupportedReason": "vnetlab does not model this resource type."})
                continue
            changes.append({"resourceId": change.resource_id, "changeType": change.change_type,
                            "before": get_resource(before, top) if change.change_type != CREATE else None,
                            "after": get_resource(after, top),
                            "delta": [{"path": d.path, "propertyChangeType": d.change_type, "before": d.before,
                                       "after": d.after} for d in change.delta] or None})
        return json_response({"status": "Succeeded", "properties": {"changes": changes}})

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
        r.add("POST", f"{base}/{{name}}/whatIf", self.what_if, blocking=True)
        r.add("GET", f"{base}/{{name}}/operationStatuses/{{op}}", self.operation_status)
        return r
