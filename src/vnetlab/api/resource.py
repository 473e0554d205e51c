"""Generic ARM handlers for top-level resources and their child resources.

A resource family (network, web, compute) describes each type with :class:`TopLevel` or
:class:`Child`: how a model object becomes ARM wire JSON and back. The handlers here do the
rest the same way for every type: lookups, ETag preconditions inside the write transaction,
status codes, lists, and PATCH as a merge of the body into the current resource.
https://learn.microsoft.com/azure/azure-resource-manager/management/resource-manager-rest-api
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from starlette.responses import Response

from ..model.errors import AzureError, LocationRequired, NotFound
from ..model import Topology
from .arm import (ArmError, Call, Router, bad_request, check_preconditions, conditional, list_response,
                  not_modified, resource_response, with_etag)
from .discovery import LOCATIONS, normalize_location
from .state import LabState, Obj, find, require_group, require_resource, resource_not_found

_NAME = re.compile(r"^\w(?:[\w.-]{0,78}\w)?$")


class _Missing(Exception):
    """Raised inside a write to roll it back when the target does not exist."""


def check_name(name: str) -> None:
    """The network RP's naming rule, which vnetlab applies to every resource."""
    if not _NAME.match(name):
        raise bad_request(f"Resource name {name} is invalid. The name can be up to 80 characters long. It must begin "
                          "with a word character, and it must end with a word character or with '_'. The name may "
                          "contain word characters or '.', '-', '_'.", "InvalidResourceName")


def location_of(body: Obj, type_: str, current_location: str | None) -> str:
    """The body's location, normalized; required on creation, unchangeable afterwards."""
    value = body.str("location")
    if value is None:
        if current_location is not None:
            return current_location
        raise LocationRequired("The location property is required for this definition.")
    loc = normalize_location(value)
    if loc is None:
        raise bad_request(f"The provided location '{value}' is not available for resource type '{type_}'. "
                          f"List of available regions for the resource type is '{','.join(LOCATIONS)}'.",
                          "LocationNotAvailableForResourceType")
    if current_location is not None and current_location != loc:
        raise ArmError(409, "InvalidResourceLocation",
                       f"The resource already exists in location '{current_location}'. A resource with the same "
                       f"name cannot be created in location '{loc}'. Please select a new resource name.")
    return loc


def merge(base: Any, patch: Any) -> Any:
    """JSON merge of a PATCH body into the current resource (objects merge, the rest replaces)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            match = next((k for k in out if k.lower() == key.lower()), key)
            out[match] = merge(out.get(match), value)
        return out
    return patch


def replace_or_append(items: list, current, new) -> None:
    """``new`` in the place of ``current`` in ``items`` (found by identity), or appended when there is none."""
    if current is None:
        items.append(new)
    else:
        items[next(i for i, x in enumerate(items) if x is current)] = new


@dataclass
class TopLevel:
    """A resource type directly under a resource group, held in ``Topology.<kind>``."""

    kind: str
    namespace: str
    type: str                                               # the id segment, e.g. virtualNetworks
    to_wire: Callable[[Topology, Any], dict]
    from_wire: Callable[[Topology, Obj, Any, str, str], Any]  # (topo, body, current, rg, name) -> model
    created: int = 201                                      # Microsoft.Web answers 200, never 201
    missing_delete: int = 204                               # DELETE of nothing: network 204
    remove: Callable[[Topology, Any], None] | None = None      # the service layer's delete, if it cascades
    # the wire JSON of many at once, where one pass over the lab serves them all (lists)
    to_wire_many: Callable[[Topology, list], Iterable[dict]] | None = None

    @property
    def arm_type(self) -> str:
        return f"{self.namespace}/{self.type}"

    def not_found(self, rg: str, name: str) -> AzureError:
        return resource_not_found(self.kind, rg, name)

    # -- reading ----------------------------------------------------------------------------
    def existing(self, topo: Topology, call: Call) -> Any:
        """The resource the request's path names (``{rg}``, ``{name}``), or its 404."""
        return require_resource(topo, self.kind, call.params["rg"], call.params["name"])

    def lookup(self, state: LabState, call: Call) -> tuple[Topology, Any]:
        topo = state.read()
        return topo, self.existing(topo, call)

    def get(self, state: LabState, call: Call) -> Response:
        topo, res = self.lookup(state, call)
        wire = self.to_wire(topo, res)
        return Response(status_code=304) if not_modified(call.headers, wire) else resource_response(wire)

    def list_group(self, state: LabState, call: Call) -> Response:
        topo = state.read()
        rg = require_group(topo, call.params["rg"]).lower()
        return list_response(self.wires(topo, [r for r in getattr(topo, self.kind) if topo.rg_of(r).lower() == rg]))

    def list_all(self, state: LabState, call: Call) -> Response:
        topo = state.read()
        return list_response(self.wires(topo, getattr(topo, self.kind)))

    def wires(self, topo: Topology, items: list) -> Iterable[dict]:
        if self.to_wire_many is not None:
            return self.to_wire_many(topo, items)
        return (self.to_wire(topo, r) for r in items)

    # -- writing ----------------------------------------------------------------------------
    def write(self, state: LabState, call: Call, body: Obj, *, patch: bool = False) -> Response:
        name = call.params["name"]
        check_name(name)
        created: list[bool] = []

        def change(topo: Topology) -> None:
            rg = require_group(topo, call.params["rg"])
            current = find(topo, self.kind, rg, name)
            before = self.to_wire(topo, current) if current is not None and (patch or conditional(call.headers)) \
                else None
            if conditional(call.headers):
                check_preconditions(call.headers, before)
            source = body
            if patch:
                if current is None:
                    raise self.not_found(rg, name)
                source = Obj(merge(before, body.data), "")
            created.append(self.put_into(topo, rg, name, source, current) is None)

        topo = state.change(change)
        res = find(topo, self.kind, call.params["rg"], name)
        return resource_response(self.to_wire(topo, res), self.created if created[0] else 200)

    def put_into(self, topo: Topology, rg: str, name: str, body: Obj, current: Any = ...) -> Any:
        """The resource ``body`` describes, put into ``topo`` (a lab being changed): what a PUT does
        inside its transaction, and what a template deployment or an import does per resource.
        Returns the resource it replaced (None: created)."""
        if current is ...:
            current = find(topo, self.kind, rg, name)
        new = self.from_wire(topo, body, current, rg, current.name if current else name)
        replace_or_append(getattr(topo, self.kind), current, new)
        return current

    def put(self, state: LabState, call: Call) -> Response:
        return self.write(state, call, Obj(call.resource_body(), ""))

    def patch_(self, state: LabState, call: Call) -> Response:
        return self.write(state, call, Obj(call.resource_body(), ""), patch=True)

    def delete(self, state: LabState, call: Call) -> Response:

        def change(topo: Topology) -> None:
            rg = require_group(topo, call.params["rg"])
            current = find(topo, self.kind, rg, call.params["name"])
            if conditional(call.headers):
                check_preconditions(call.headers, self.to_wire(topo, current) if current is not None else None)
            if current is None:
                raise _Missing()
            if self.remove:
                self.remove(topo, current)
            else:
                getattr(topo, self.kind).remove(current)

        try:
            state.change(change)
        except _Missing:
            if self.missing_delete == 404:
                raise self.not_found(call.params["rg"], call.params["name"]) from None
            return Response(status_code=self.missing_delete)
        return Response(status_code=200)

    def action(self, state: LabState, method: str) -> Callable[[Call], Response]:
        """A POST ``{name}/ACTION`` that calls the model's ``method`` on the resource in one
        transaction (a VM's start or deallocate, a site's stop): 200, or the resource's 404."""

        def handler(call: Call) -> Response:
            state.change(lambda topo: getattr(self.existing(topo, call), method)())
            return Response(status_code=200)

        return handler

    def register(self, r: Router, state: LabState) -> None:
        base = f"subscriptions/{{sub}}/resourcegroups/{{rg}}/providers/{self.namespace}/{self.type}"
        bind = _binder(state)
        # reads stay on the event loop: a cached lab and no I/O but one indexed SQLite read
        r.add("GET", f"{base}/{{name}}", bind(self.get))
        r.add("PUT", f"{base}/{{name}}", bind(self.put), blocking=True)
        r.add("DELETE", f"{base}/{{name}}", bind(self.delete), blocking=True)
        r.add("PATCH", f"{base}/{{name}}", bind(self.patch_), blocking=True)
        # lists run in worker threads: serializing a large lab takes long enough to stall other requests
        r.add("GET", base, bind(self.list_group), blocking=True)
        r.add("GET", f"subscriptions/{{sub}}/providers/{self.namespace}/{self.type}", bind(self.list_all),
              blocking=True)


# Every child resource type the endpoint serves, as its family declares it: `vnetlab import` and the
# deployments read a child by its type from here.
CHILD_KINDS: list["Child"] = []


@dataclass
class Child:
    """A child resource held in a list of its parent model (subnets, securityRules, routes...)."""

    parent: TopLevel
    segment: str                                                   # e.g. subnets
    items: Callable[[Any], list]                                   # parent model -> its list of children
    to_wire: Callable[[Topology, Any, Any], dict]                  # (topo, parent, child)
    from_wire: Callable[[Topology, Obj, Any, Any, str], Any]       # (topo, body, parent, current, name)

    def __post_init__(self) -> None:
        CHILD_KINDS.append(self)

    @property
    def arm_type(self) -> str:
        return f"{self.parent.arm_type}/{self.segment}"

    def _find(self, parent, name: str):
        return next((c for c in self.items(parent) if c.name.lower() == name.lower()), None)

    def not_found(self, topo: Topology, parent, name: str) -> AzureError:
        rid = topo.id_of(self.parent.kind, parent, self.segment, name)
        return NotFound(f"Resource {rid} not found.")

    def get(self, state: LabState, call: Call) -> Response:
        topo = state.read()
        parent = self.parent.existing(topo, call)
        child = self._find(parent, call.params["child"])
        if child is None:
            raise self.not_found(topo, parent, call.params["child"])
        wire = self.to_wire(topo, parent, child)
        return Response(status_code=304) if not_modified(call.headers, wire) else resource_response(wire)

    def list_(self, state: LabState, call: Call) -> Response:
        topo = state.read()
        parent = self.parent.existing(topo, call)
        return list_response(self.to_wire(topo, parent, c) for c in self.items(parent))

    def put(self, state: LabState, call: Call) -> Response:
        body = Obj(call.resource_body(), "")
        name = call.params["child"]
        check_name(name)
        created: list[bool] = []

        def change(topo: Topology) -> None:
            parent = self.parent.existing(topo, call)
            current = self._find(parent, name)
            if conditional(call.headers):
                check_preconditions(call.headers,
                                    self.to_wire(topo, parent, current) if current is not None else None)
            created.append(self.put_into(topo, parent, name, body) is None)

        topo = state.change(change)
        parent = find(topo, self.parent.kind, call.params["rg"], call.params["name"])
        return resource_response(self.to_wire(topo, parent, self._find(parent, name)), 201 if created[0] else 200)

    def put_into(self, topo: Topology, parent: Any, name: str, body: Obj) -> Any:
        """The child ``body`` describes, put into its ``parent`` in ``topo``; returns the one it replaced."""
        current = self._find(parent, name)
        new = self.from_wire(topo, body, parent, current, current.name if current else name)
        replace_or_append(self.items(parent), current, new)
        return current

    def delete(self, state: LabState, call: Call) -> Response:

        def change(topo: Topology) -> None:
            parent = self.parent.existing(topo, call)
            current = self._find(parent, call.params["child"])
            if conditional(call.headers):
                check_preconditions(call.headers,
                                    self.to_wire(topo, parent, current) if current is not None else None)
            if current is None:
                raise _Missing()
            self.items(parent).remove(current)

        try:
            state.change(change)
        except _Missing:
            return Response(status_code=204)
        return Response(status_code=200)

    def embedded(self, topo: Topology, parent) -> list[dict]:
        return [with_etag(self.to_wire(topo, parent, c)) for c in self.items(parent)]

    def register(self, r: Router, state: LabState) -> None:
        base = (f"subscriptions/{{sub}}/resourcegroups/{{rg}}/providers/{self.parent.namespace}/"
                f"{self.parent.type}/{{name}}/{self.segment}")
        bind = _binder(state)
        r.add("GET", f"{base}/{{child}}", bind(self.get))
        r.add("PUT", f"{base}/{{child}}", bind(self.put), blocking=True)
        r.add("DELETE", f"{base}/{{child}}", bind(self.delete), blocking=True)
        r.add("GET", base, bind(self.list_), blocking=True)


def _binder(state: LabState):
    def bind(method):
        return lambda call: method(state, call)
    return bind


def envelope(rid: str, name: str, type_: str, location: str | None, tags: dict | None, properties: dict,
             **extra) -> dict:
    """A resource in ARM's field order: name, id, type, location, tags, extra, properties."""
    out: dict = {"name": name, "id": rid, "type": type_}
    if location is not None:
        out["location"] = location
    if tags:
        out["tags"] = dict(tags)
    out.update({k: v for k, v in extra.items() if v is not None})
    out["properties"] = properties
    return out
