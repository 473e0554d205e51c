"""``vnetlab import``: a lab built from what Azure users can export today, any mix of

- ARM templates: as ``az group export`` writes them, as ``bicep build`` and the portal's "export
  template" produce them (``{"template": ...}`` too), deployed into the lab in memory with the
  template language of :mod:`.template`;
- lists of resources in ARM's shape: ``az network vnet list``, ``nsg list``, ``route-table list``,
  ``nic list``, ``az vm list``, ``az appservice plan list``, ``az webapp list`` (az prints the
  properties flattened into the resource), ``az resource list --expand properties``, a REST list
  (``{"value": [...]}``) and Azure Resource Graph results (``az graph query``: ``{"data": [...]}``);
- a vnetlab topology file (YAML or JSON, as ``vnetlab export`` writes it), taken as the base.

Each resource goes through the endpoint's own reading of its type (:mod:`.apply`). Types vnetlab
does not model are listed and skipped; a resource whose body is refused is listed with Azure's
error; a reference to something the files do not hold is reported with its id and dropped (or,
when the resource cannot stand without it, the resource is). The lab is then checked whole.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from ..model import ResourceGroup, Topology
from ..model.errors import AzureError, InvalidTemplate
from ..model.ids import DEFAULT_SUBSCRIPTION, parse_id, resource_id
from ..topology import load_yaml, parse
from . import apply, template
from .arm import TOP_LEVEL_KEYS
from .deployments import strip_jsonc
from .discovery import normalize_location

_ENVELOPE = {k.lower() for k in TOP_LEVEL_KEYS}
# what az and Resource Graph print beside ARM's members: not part of a resource definition
_INFO = {"resourcegroup", "subscriptionid", "tenantid", "systemdata", "createdtime", "changedtime",
         "provisioningstate", "apiversion"}


@dataclass
class Refused:
    id: str
    code: str
    message: str


@dataclass
class Missing:
    by: str           # the resource holding the reference
    id: str           # what it refers to, not in the files
    dropped: str      # "reference" (the reference was dropped) or "resource" (the resource was)


@dataclass
class Report:
    imported: list[str] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=dict)   # type -> ids (types vnetlab does not model)
    refused: list[Refused] = field(default_factory=list)
    missing: list[Missing] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Item:
    """One resource of a list, in ARM's shape."""

    type: str
    id: str
    body: dict
    order: int


@dataclass
class Sources:
    """What the files hold: a topology file (at most one), templates, resources of lists."""

    base: Topology | None = None
    templates: list[tuple[str, dict]] = field(default_factory=list)
    items: list[_Item] = field(default_factory=list)
    ids: dict[tuple[str, str], str] = field(default_factory=dict)  # (types, names) lower -> an id as written

    def resources(self, scope: template.Scope, parameters: dict) -> int:
        """How many resources there are to put (for a progress bar)."""
        return len(self.items) + sum(template.count(t, parameters, scope) for _, t in self.templates)


# -- reading the files ------------------------------------------------------------------------------

def read(paths: list[Path]) -> Sources:
    sources = Sources()
    for path in paths:
        doc = _load(path)
        _classify(path, doc, sources)
    return sources


def _load(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InvalidTemplate(f"Cannot read {path}: {exc.strerror}.") from None
    try:
        return json.loads(strip_jsonc(text))
    except ValueError:
        pass
    try:
        return load_yaml(text)
    except yaml.YAMLError as exc:
        raise InvalidTemplate(f"{path} is neither JSON nor YAML: {exc}") from None


def _is_template(doc: Any) -> bool:
    return isinstance(doc, dict) and "resources" in doc and ("$schema" in doc or "contentVersion" in doc)


def _classify(path: Path, doc: Any, sources: Sources) -> None:
    if _is_template(doc):
        sources.templates.append((str(path), doc))
        _index_ids(doc, sources)
    elif isinstance(doc, dict) and _is_template(doc.get("template")):  # the REST answer of exportTemplate
        sources.templates.append((str(path), doc["template"]))
        _index_ids(doc["template"], sources)
    elif isinstance(doc, list) or (isinstance(doc, dict) and ("id" in doc and "type" in doc)):
        _add_items(path, doc if isinstance(doc, list) else [doc], sources)
    elif isinstance(doc, dict) and isinstance(doc.get("data"), list):  # az graph query
        _add_items(path, doc["data"], sources)
    elif isinstance(doc, dict) and isinstance(doc.get("value"), list):  # a REST list
        _add_items(path, doc["value"], sources)
    elif isinstance(doc, dict) and str(doc.get("name") or "").strip():
        if sources.base is not None:
            raise InvalidTemplate(f"{path} is a second vnetlab topology file: import takes at most one.")
        sources.base = parse(doc)
    else:
        raise InvalidTemplate(f"{path} is not an ARM template, a list of resources (az ... list, az resource list, "
                              "az graph query) or a vnetlab topology file.")


def _add_items(path: Path, docs: list, sources: Sources) -> None:
    for i, doc in enumerate(docs):
        if not isinstance(doc, dict) or not isinstance(doc.get("id"), str) or not doc.get("type"):
            raise InvalidTemplate(f"{path}: item {i} is not a resource (it has no id and type).")
        _index_ids(doc, sources)
        sources.items.append(_Item(str(doc["type"]), doc["id"], arm_shape(doc), len(sources.items)))


def _index_ids(doc: Any, sources: Sources) -> None:
    """Every id the files write, to name a missing reference as the files do."""
    if isinstance(doc, dict):
        for value in doc.values():
            _index_ids(value, sources)
    elif isinstance(doc, list):
        for value in doc:
            _index_ids(value, sources)
    elif isinstance(doc, str) and doc.lower().startswith("/subscriptions/"):
        parsed = parse_id(doc)
        if parsed is not None and parsed.types:
            sources.ids.setdefault(("/".join(parsed.types).lower(), "/".join(parsed.names).lower()), doc)


def arm_shape(doc: dict) -> dict:
    """A resource as a PUT body: ARM's top-level members, the rest in ``properties``. az prints
    resources with their properties flattened into them (``addressSpace`` beside ``name``), and
    their child resources (subnets, rules, routes, IP configurations, delegations) alike."""
    out = {k: v for k, v in doc.items() if k.lower() in _ENVELOPE}
    props = next((v for k, v in doc.items() if k.lower() == "properties"), None)
    if not isinstance(props, dict):
        props = {k: v for k, v in doc.items() if k.lower() not in _ENVELOPE and k.lower() not in _INFO}
    out["properties"] = {k: _children(v) for k, v in props.items()}
    return out


def _children(value: Any) -> Any:
    if isinstance(value, list):
        return [_children(v) for v in value]
    if isinstance(value, dict) and isinstance(value.get("name"), str) and isinstance(value.get("id"), str) \
            and "properties" not in value:
        return arm_shape(value)
    if isinstance(value, dict):
        return {k: _children(v) for k, v in value.items()}
    return value


# -- building the lab -------------------------------------------------------------------------------

class _ImportTarget:
    """A template's resources put into the lab being imported: a type vnetlab does not model, or a
    body it refuses, is reported and the template goes on."""

    def __init__(self, topo: Topology, report: Report, progress: Callable[[str], None]):
        self.topo, self.report, self.progress = topo, report, progress

    def put(self, resource: template.Declared, body: dict) -> None:
        _put(self.topo, self.report, resource.type, resource.id, body)
        self.progress(resource.id)

    def get(self, resource_id: str) -> dict | None:
        return apply.get(self.topo, resource_id)


_VNETS, _PEERINGS = "microsoft.network/virtualnetworks", "microsoft.network/virtualnetworks/virtualnetworkpeerings"


def _remote_elsewhere(topo: Topology, peering: dict) -> str | None:
    """The remote network of a peering when it is in another subscription than the lab's (a lab is one
    subscription): it cannot be in the lab."""
    props = peering.get("properties") or {}
    remote = str((props.get("remoteVirtualNetwork") or {}).get("id") or "")
    parsed = parse_id(remote)
    return remote if parsed is not None and parsed.subscription.lower() != topo.subscription_id.lower() else None


def _without_foreign_peerings(topo: Topology, report: Report, type_: str, rid: str, body: dict) -> dict | None:
    """The body without its peerings to networks of other subscriptions (reported); None when it is such
    a peering."""
    low = type_.lower()
    if low == _PEERINGS:
        remote = _remote_elsewhere(topo, body)
        if remote:
            report.missing.append(Missing(rid, remote, "resource"))
            return None
    if low != _VNETS or not isinstance((body.get("properties") or {}).get("virtualNetworkPeerings"), list):
        return body
    kept = []
    for peering in body["properties"]["virtualNetworkPeerings"]:
        remote = _remote_elsewhere(topo, peering) if isinstance(peering, dict) else None
        if remote:
            report.missing.append(Missing(f"{rid}/virtualNetworkPeerings/{peering.get('name')}", remote, "resource"))
        else:
            kept.append(peering)
    return {**body, "properties": {**body["properties"], "virtualNetworkPeerings": kept}}


def _put(topo: Topology, report: Report, type_: str, rid: str, body: dict) -> None:
    body = _without_foreign_peerings(topo, report, type_, rid, body)
    if body is None:
        return
    try:
        apply.put(topo, type_, rid, body)
    except apply.UnknownType:
        report.skipped.setdefault(type_, []).append(rid)
        return
    except AzureError as exc:
        report.refused.append(Refused(rid, exc.code, exc.message))
        return
    report.imported.append(rid)


def _most_common(values: list[str], default: str) -> str:
    values = [v for v in values if v]
    return Counter(values).most_common(1)[0][0] if values else default


def build(sources: Sources, name: str | None, resource_group: str, location: str | None = None,
          parameters: dict | None = None, progress: Callable[[str], None] = lambda _id: None
          ) -> tuple[Topology, Report]:
    """The lab the files describe, named ``name`` (None: a topology file's own name, else "lab"), and
    what the import did with each resource. Templates deploy into ``resource_group``."""
    report = Report()
    topo = sources.base.model_copy(deep=True) if sources.base is not None else Topology()
    topo.name = name or topo.name
    parsed = [(item, parse_id(item.id)) for item in sources.items]
    if sources.base is None:
        topo.subscription_id = _most_common([p.subscription for _, p in parsed if p], DEFAULT_SUBSCRIPTION)
        locations = [normalize_location(str(i.body.get("location") or "")) for i in sources.items]
        topo.location = normalize_location(location or "") or _most_common(locations, "westeurope")
        topo.resource_group = resource_group if sources.templates or not parsed else \
            _most_common([p.resource_group for _, p in parsed if p], resource_group)
    _add_groups(topo, sources, parsed, resource_group, location)
    for item in sorted(sources.items, key=lambda i: (apply.RANK.get(i.type.lower(), len(apply.RANK)), i.order)):
        _put(topo, report, item.type, item.id, item.body)
        progress(item.id)
    group = topo.group(resource_group)
    scope = template.Scope(topo.subscription_id, group.name if group else resource_group,
                           topo.location_of(group) if group and group.location else topo.location)
    for _path, doc in sources.templates:
        template.run(doc, parameters or {}, scope, _ImportTarget(topo, report, progress))
    _drop_dangling(topo, report, sources.ids)
    return parse(topo.model_dump(mode="json")), report


def _add_groups(topo: Topology, sources: Sources, parsed: list, resource_group: str, location: str | None) -> None:
    """The groups the ids of the resources vnetlab models name (in the location of their first
    resource), and the templates' group."""
    wanted: dict[str, str | None] = {}
    for item, p in parsed:
        if p is not None and apply.supported(item.type):
            wanted.setdefault(p.resource_group, normalize_location(str(item.body.get("location") or "")))
    if sources.templates:
        wanted.setdefault(resource_group, normalize_location(location or "") or topo.location)
    for rg, loc in wanted.items():
        if topo.group(rg) is None:
            topo.resource_groups.append(ResourceGroup(name=rg, location=loc or topo.location))


@dataclass(frozen=True)
class _Kind:
    """What a reference names: its ARM type under the provider and the topology's list."""

    types: str
    kind: str

    def exists(self, topo: Topology, name: str) -> bool:
        if self.types == "virtualNetworks/subnets":
            return topo.subnet(name) is not None
        return topo.find(self.kind, name) is not None


_NSG, _RT = _Kind("networkSecurityGroups", "network_security_groups"), _Kind("routeTables", "route_tables")
_VNET, _SUBNET = _Kind("virtualNetworks", "virtual_networks"), _Kind("virtualNetworks/subnets", "virtual_networks")
_NIC, _ZONE = _Kind("networkInterfaces", "network_interfaces"), _Kind("privateDnsZones", "private_dns_zones")
_PIP, _PREFIX = _Kind("publicIPAddresses", "public_ip_addresses"), _Kind("publicIPPrefixes", "public_ip_prefixes")
_NAT = _Kind("natGateways", "nat_gateways")


class _Dangling:
    """References to resources the files do not hold: reported with their id (as the files write
    it), then dropped; a resource that cannot stand without its reference is dropped with it."""

    def __init__(self, topo: Topology, report: Report, ids: dict[tuple[str, str], str]):
        self.topo, self.report, self.ids = topo, report, ids

    def id_of(self, what: _Kind, name: str) -> str:
        if name.startswith("/"):
            return name
        found = self.ids.get((what.types.lower(), name.lower()))
        if found:
            return found
        first, *rest = name.split("/")
        children = [x for pair in zip(what.types.split("/")[1:], rest, strict=False) for x in pair]
        return resource_id(self.topo.subscription_id, self.topo.resource_group, what.kind, first, *children)

    def lacking(self, what: _Kind, name: str) -> str | None:
        """The id of ``name`` when the lab does not hold it."""
        return None if what.exists(self.topo, name) else self.id_of(what, name)

    def missing(self, by: str, target: str, dropped: str = "reference") -> None:
        self.report.missing.append(Missing(by, target, dropped))
        if dropped == "resource":
            self.report.imported = [i for i in self.report.imported if i.lower() != by.lower()]

    def reference(self, by: str, res, attr: str, what: _Kind) -> None:
        """An optional reference (``res.attr``): dropped when it names nothing."""
        name = getattr(res, attr)
        lacking = self.lacking(what, name) if name else None
        if lacking:
            self.missing(by, lacking)
            setattr(res, attr, None)

    def references(self, by: str, names: list[str], what: _Kind) -> list[str]:
        """A list of references: those naming nothing dropped."""
        kept = []
        for name in names:
            lacking = self.lacking(what, name)
            if lacking:
                self.missing(by, lacking)
            else:
                kept.append(name)
        return kept

    def standing(self, items: list, by: Callable[[Any], str], lacks: Callable[[Any], str | None]) -> list:
        """The items that can stand; each other is reported with the id it lacks, and dropped."""
        kept = []
        for item in items:
            lacking = lacks(item)
            if lacking:
                self.missing(by(item), lacking, "resource")
            else:
                kept.append(item)
        return kept


def _drop_dangling(topo: Topology, report: Report, ids: dict[tuple[str, str], str]) -> None:
    """References to resources the files do not hold: reported with their id, then dropped; a
    resource that cannot stand without its reference (a NIC without its subnet, a VM without its
    NIC, a peering without its remote network) is dropped with it."""
    d = _Dangling(topo, report, ids)
    for nat in topo.nat_gateways:
        by = topo.id_of("nat_gateways", nat)
        nat.public_ip_addresses = d.references(by, nat.public_ip_addresses, _PIP)
        nat.public_ip_prefixes = d.references(by, nat.public_ip_prefixes, _PREFIX)
    for vnet in topo.virtual_networks:
        for sn in vnet.subnets:
            by = topo.id_of("virtual_networks", vnet, "subnets", sn.name)
            d.reference(by, sn, "network_security_group", _NSG)
            d.reference(by, sn, "route_table", _RT)
            d.reference(by, sn, "nat_gateway", _NAT)
        vnet.peerings = d.standing(
            vnet.peerings, lambda p, v=vnet: topo.id_of("virtual_networks", v, "virtualNetworkPeerings", p.name),
            lambda p: d.lacking(_VNET, p.remote_virtual_network))
    for nic in topo.network_interfaces:
        by = topo.id_of("network_interfaces", nic)
        d.reference(by, nic, "network_security_group", _NSG)
        d.reference(by, nic, "public_ip_address", _PIP)
    for gw in topo.virtual_network_gateways:
        d.reference(topo.id_of("virtual_network_gateways", gw), gw, "public_ip_address", _PIP)
    topo.network_interfaces = d.standing(topo.network_interfaces, lambda n: topo.id_of("network_interfaces", n),
                                         lambda n: d.lacking(_SUBNET, n.subnet))
    topo.virtual_machines = d.standing(topo.virtual_machines, lambda vm: topo.id_of("virtual_machines", vm),
                                       lambda vm: d.lacking(_NIC, vm.network_interface))
    for app in topo.web_apps:
        d.reference(topo.id_of("web_apps", app), app, "vnet_integration", _SUBNET)
    _drop_dangling_paas(topo, d)


def _drop_dangling_paas(topo: Topology, d: _Dangling) -> None:
    """Issue 9's references: a private endpoint's subnet and target (it cannot stand without them)
    and its zone group's zones, a zone's links to VNets, the PaaS firewalls' subnet rules."""
    def endpoint_lacks(pe) -> str | None:
        lacking = d.lacking(_SUBNET, pe.subnet)
        return lacking or (pe.target if topo.private_link_target(pe) is None else None)

    topo.private_endpoints = d.standing(topo.private_endpoints, lambda pe: topo.id_of("private_endpoints", pe),
                                        endpoint_lacks)
    for pe in topo.private_endpoints:
        pe.private_dns_zone_group = d.references(topo.id_of("private_endpoints", pe), pe.private_dns_zone_group, _ZONE)
    for zone in topo.private_dns_zones:
        zone.virtual_network_links = d.standing(
            zone.virtual_network_links, lambda k, z=zone: topo.id_of("private_dns_zones", z, "virtualNetworkLinks", k.name),
            lambda k: d.lacking(_VNET, k.virtual_network))
    for kind, acls in (("storage_accounts", "network_rule_set"), ("key_vaults", "network_acls")):
        for res in getattr(topo, kind):
            rules = getattr(res, acls, None)
            if rules is not None:
                rules.virtual_network_rules = d.references(topo.id_of(kind, res), rules.virtual_network_rules, _SUBNET)
    for server in topo.sql_servers:
        server.virtual_network_rules = d.standing(
            server.virtual_network_rules, lambda r, s=server: topo.id_of("sql_servers", s, "virtualNetworkRules", r.name),
            lambda r: d.lacking(_SUBNET, r.subnet))


def parameters_from(values: list[str]) -> dict:
    """``--parameters`` as az takes them: a parameters file (``@file.json`` or a path) or
    ``name=value`` (the value read as JSON when it is JSON)."""
    out: dict = {}
    for value in values:
        path = Path(value.removeprefix("@"))
        if "=" not in value or value.startswith("@"):
            doc = json.loads(strip_jsonc(path.read_text()))
            out.update(doc.get("parameters", doc))
            continue
        key, _, raw = value.partition("=")
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = raw
        out[key] = {"value": parsed}
    return out
