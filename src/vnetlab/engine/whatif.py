"""What a change would do, before it is made: the resources it creates, deletes and modifies, in
ARM what-if's words, and, beyond Azure, the reachability it changes.

Resource changes follow `az deployment group what-if`: each resource is ``Create``, ``Delete``,
``Modify`` or ``NoChange``, and a ``Modify`` lists its changed properties (``delta``: the path,
the property's own change type ``Create``/``Delete``/``Modify``, before and after).
https://learn.microsoft.com/azure/azure-resource-manager/templates/deploy-what-if#change-types
Paths name the items of lists of named things (subnets, rules, routes, peerings) by their name:
``subnets[integration].delegations``, not by their position.

Reachability: the matrix's endpoint classes are computed in both labs; endpoints present in
both (by kind and name) are grouped by their class in each lab, so one trace per group pair and
lab answers for every pair in it. Every group pair whose verdict changes for a flow is reported
with both traces' reasons and the step that decided them (the rule, route, peering, or the PaaS
service's refusal). PaaS endpoints (public and private) are destinations too, as in ``matrix --paas``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..model import KINDS, Topology
from .matrix import _label, class_cells, destination_only, endpoint_classes, paas_destinations, parse_flows
from .network import Endpoint, LabView
from .trace import Trace, trace

CREATE, DELETE, MODIFY, NO_CHANGE = "Create", "Delete", "Modify", "NoChange"
GROUP_TYPE = "Microsoft.Resources/resourceGroups"


# -- resources ---------------------------------------------------------------------------------------
@dataclass
class PropertyChange:
    path: str
    change_type: str  # Create, Delete or Modify: ARM's propertyChangeType
    before: Any = None
    after: Any = None


@dataclass
class ResourceChange:
    change_type: str
    resource_id: str
    type: str
    name: str
    delta: list[PropertyChange] = field(default_factory=list)


def _arm_type(topo: Topology, kind: str, resource) -> str:
    rid = topo.id_of(kind, resource)
    provider = rid.split("/providers/", 1)[1].split("/")
    return f"{provider[0]}/{provider[1]}"


def _resources(topo: Topology | None) -> dict[str, tuple[str, str, str, dict]]:
    """lower-cased id -> (id, ARM type, name, properties as the lab has them in effect)."""
    if topo is None:
        return {}
    out = {}
    for group in topo.resource_groups:
        rid = topo.group_id(group.name)
        props = {"location": group.location or topo.location, "tags": group.tags}
        out[rid.lower()] = (rid, GROUP_TYPE, group.name, props)
    for kind in KINDS:
        for res in getattr(topo, kind):
            rid = topo.id_of(kind, res)
            props = res.model_dump(mode="json", exclude={"name"})
            props["resource_group"], props["location"] = topo.rg_of(res), topo.location_of(res)
            out[rid.lower()] = (rid, _arm_type(topo, kind, res), res.name, props)
    return out


def resource_changes(old: Topology | None, new: Topology) -> list[ResourceChange]:
    """Every resource of either lab with its change, in the order what-if lists them: by id."""
    before, after = _resources(old), _resources(new)
    out = []
    for key in sorted(set(before) | set(after)):
        if key not in after:
            rid, type_, name, _ = before[key]
            out.append(ResourceChange(DELETE, rid, type_, name))
        elif key not in before:
            rid, type_, name, _ = after[key]
            out.append(ResourceChange(CREATE, rid, type_, name))
        else:
            rid, type_, name, props = after[key]
            delta: list[PropertyChange] = []
            _delta("", before[key][3], props, delta)
            out.append(ResourceChange(MODIFY if delta else NO_CHANGE, rid, type_, name, delta))
    return out


def _is_named_list(value) -> bool:
    return isinstance(value, list) and all(isinstance(v, dict) and "name" in v for v in value)


def _empty(value) -> bool:
    return value is None or value == [] or value == {}


def _delta(path: str, before, after, out: list[PropertyChange]) -> None:
    if before == after:
        return
    if isinstance(before, dict) and isinstance(after, dict):
        for key in [*before, *(k for k in after if k not in before)]:
            _delta(f"{path}.{key}" if path else key, before.get(key), after.get(key), out)
        return
    if _is_named_list(before) and _is_named_list(after) and (before or after):
        old_items = {v["name"].lower(): v for v in before}
        new_items = {v["name"].lower(): v for v in after}
        for low in [*old_items, *(k for k in new_items if k not in old_items)]:
            item = new_items.get(low) or old_items[low]
            _delta(f"{path}[{item['name']}]", old_items.get(low), new_items.get(low), out)
        return
    change = CREATE if _empty(before) else DELETE if _empty(after) else MODIFY
    out.append(PropertyChange(path, change, before, after))


# -- reachability -----------------------------------------------------------------------------------
@dataclass
class Outcome:
    verdict: str
    reason: str
    cause: str  # the reason with the step that decided it: "NsgDenied by rule deny-http in nsg-vm"


@dataclass
class VerdictChange:
    source: str
    destination: str
    flow: str
    before: Outcome
    after: Outcome
    pairs: list[list[str]]  # every (source, destination) pair this change holds for

    def sentence(self) -> str:
        target = self.destination if self.flow == "icmp" else f"{self.destination}:{self.flow.split('/')[-1]}"
        proto = " (icmp)" if self.flow == "icmp" else (" (udp)" if self.flow.startswith("udp/") else "")
        was = self.before.verdict + ("" if self.before.reason == "Reachable" else f" ({self.before.cause})")
        becomes = self.after.verdict + ("" if self.after.reason == "Reachable" else f": {self.after.cause}")
        more = f" [and {len(self.pairs) - 1} more pairs like it]" if len(self.pairs) > 1 else ""
        return f"{self.source} -> {target}{proto} was {was}, becomes {becomes}{more}"


@dataclass
class WhatIf:
    ports: list[str]
    changes: list[ResourceChange]
    reachability: list[VerdictChange]
    endpoints_added: list[str]
    endpoints_removed: list[str]

    @property
    def breaks_paths(self) -> bool:
        """A verdict changes for a pair in both labs, or an endpoint (and its paths) goes."""
        return bool(self.reachability or self.endpoints_removed)

    def to_dict(self) -> dict:
        return {"ports": self.ports, "changes": [asdict(c) for c in self.changes],
                "reachability": [{**asdict(c), "text": c.sentence()} for c in self.reachability],
                "endpoints_added": self.endpoints_added, "endpoints_removed": self.endpoints_removed}


def cause(t: Trace) -> str:
    """The trace's reason with the step that decided it."""
    reason = str(t.reason)
    if t.admission is not None and not t.admission.allowed:  # a PaaS service's own refusal
        return f"{reason}: {' '.join(str(x) for x in (t.admission.http_status, t.admission.code) if x)} " \
               f"({t.admission.rule})"
    step = next((s for s in reversed([*t.steps, *t.return_path]) if s.dropped), None)
    if step is None:
        return reason
    d = step.detail.to_dict()
    kind = str(step.kind)
    if kind == "NetworkSecurityGroup":
        return f"{reason} by rule {d['rule']} in {d['nsg']}"
    if kind == "Route":
        who = f" ({d['route_table']}/{d['route_name']})" if d.get("route_name") else f" ({d['source']})"
        return f"{reason}: route {d['address_prefix']} -> {d['next_hop_type']} in subnet {d['subnet']}{who}"
    if kind == "VNetPeering":
        return f"{reason} at peering {d['peering']} ({d['from_vnet']} -> {d['to_vnet']})"
    if kind == "VirtualAppliance":
        return f"{reason} at {d['network_interface']} ({d['ip']})"
    return f"{reason}: {d['why']}" if d.get("why") else reason


def _outcome(t: Trace) -> Outcome:
    return Outcome(str(t.verdict), str(t.reason), cause(t))


def _key(ep: Endpoint) -> tuple[str, str]:
    return ep.kind, ep.name.lower()


def _classes(net: LabView, flows) -> tuple[dict[tuple[str, str], int], dict[tuple[int, int], tuple[str, ...]],
                                            dict[tuple[str, str], Endpoint]]:
    """(endpoint -> class index, class pair -> verdicts per flow (missing: a route drops it), endpoints)."""
    endpoints = net.endpoints()
    classes = endpoint_classes(net, endpoints, flows)
    sources = len(classes)
    extra = paas_destinations(net)  # destinations only
    classes += [destination_only(ep) for ep in extra]
    cells, _ = class_cells(net, classes, flows, sources=sources)
    index = {_key(ep): i for i, c in enumerate(classes) for ep in c.members}
    return index, cells, {_key(ep): ep for ep in endpoints + extra}


def reachability_changes(old: LabView, new: LabView, ports: list[str]) -> tuple[list[VerdictChange], list[str],
                                                                                 list[str]]:
    """(verdict changes, endpoints only in the new lab, endpoints only in the old one)."""
    flows = parse_flows(ports)
    labels = [_label(p, n) for p, n in flows]
    dropped = tuple("TimedOut" for _ in flows)
    old_index, old_cells, old_eps = _classes(old, flows)
    new_index, new_cells, new_eps = _classes(new, flows)
    common = [k for k in old_eps if k in new_eps]
    joint: dict[tuple[int, int], list[tuple[str, str]]] = {}  # (old class, new class) -> endpoints
    for k in common:
        joint.setdefault((old_index[k], new_index[k]), []).append(k)
    out = []
    for (oi, ni), sources in joint.items():
        for (oj, nj), destinations in joint.items():
            pairs = [(s, d) for s in sources for d in destinations if s != d]
            if not pairs:
                continue
            was, now = old_cells.get((oi, oj), dropped), new_cells.get((ni, nj), dropped)
            for f, label in enumerate(labels):
                if was[f] != now[f]:
                    out.append(_change(old, new, old_eps, new_eps, pairs, flows[f], label))
    out.sort(key=lambda c: (c.source.lower(), c.destination.lower(), c.flow))
    added = sorted(new_eps[k].name for k in new_eps if k not in old_eps)
    removed = sorted(old_eps[k].name for k in old_eps if k not in new_eps)
    return out, added, removed


def _change(old: LabView, new: LabView, old_eps, new_eps, pairs, flow, label) -> VerdictChange:
    s, d = pairs[0]
    protocol, port = flow
    before = trace(old, old_eps[s].name, str(old_eps[d].ip), port, protocol)
    after = trace(new, new_eps[s].name, str(new_eps[d].ip), port, protocol)
    return VerdictChange(new_eps[s].name, new_eps[d].name, label, _outcome(before), _outcome(after),
                         [[new_eps[a].name, new_eps[b].name] for a, b in pairs])


def what_if(old: Topology | None, new: Topology, ports: list[str]) -> WhatIf:
    """Everything ``new`` changes from ``old`` (None: no lab yet). Both labs as `up` leaves them:
    addressed and validated."""
    changes = resource_changes(old, new)
    reach, added, removed = reachability_changes(LabView(old or Topology()), LabView(new), ports)
    return WhatIf([_label(p, n) for p, n in parse_flows(ports)], changes, reach, added, removed)
