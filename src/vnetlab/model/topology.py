"""The whole lab: one document holding every resource, as the YAML topology file writes it.

The YAML form lets a VM carry its NIC inline (``subnet``, ``private_ip_address``,
``enable_ip_forwarding``, ``network_security_group``, its IP configurations); it is expanded here into a
NetworkInterface named ``{vm}VMNic`` (as ``az vm create`` names it) and a VirtualMachine
that references it, which is how ARM holds them.
"""

from __future__ import annotations

import ipaddress
import uuid
import weakref

from pydantic import Field, model_validator

from .base import Model
from .compute import Service, VirtualMachine
from .dns import PrivateDnsZone
from .gateways import Connection, LocalNetworkGateway, OnPremisesSite, VirtualNetworkGateway
from .ids import DEFAULT_SUBSCRIPTION, parse_id, resource_id, rg_id
from .network import NetworkInterface, Subnet, VirtualNetwork
from .nsg import NetworkSecurityGroup
from .outbound import NatGateway, PublicIpAddress, PublicIpPrefix
from .paas import TARGET_TYPES, KeyVault, PrivateEndpoint, SqlServer, StorageAccount
from .routes import RouteTable
from .web import AppServicePlan, WebApp

NIC_KEYS = ("subnet", "private_ip_address", "private_ip_allocation_method", "enable_ip_forwarding",
            "network_security_group", "primary_ip_configuration", "secondary_ip_configurations", "dns_servers",
            "public_ip_address")
# input forms of the NIC's IP configurations (see NetworkInterface), also taken inline on a VM
NIC_INPUT_KEYS = ("ip_configurations", "secondary_ip_addresses")
KINDS = ("virtual_networks", "network_security_groups", "route_tables", "network_interfaces",
         "virtual_machines", "app_service_plans", "web_apps", "private_dns_zones", "private_endpoints",
         "storage_accounts", "sql_servers", "key_vaults", "public_ip_addresses", "public_ip_prefixes", "nat_gateways",
         "virtual_network_gateways", "local_network_gateways", "connections")


class ResourceGroup(Model):
    name: str
    location: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)


class InternetHost(Model):
    """A host on the emulated internet (documentation addresses, RFC 5737)."""

    name: str
    ip: str
    services: list[Service] = Field(default_factory=lambda: [Service(port=80), Service(port=443)])


class _NameIndex:
    """Position of each resource in one list of a topology, by a lower-cased name.

    A hit is checked against the list (the resource at that position still has that name), so
    appending, removing or replacing resources never returns a wrong one. A miss rebuilds the
    index, unless the key is ``immutable`` (a name: Azure's names never change) and the list
    holds the same members as when the index was built."""

    def __init__(self, items: list, attr: str, immutable: bool):
        self.attr, self.immutable = attr, immutable
        self._build(items)

    def _build(self, items: list) -> None:
        positions: dict[str, int] = {}
        for i, item in enumerate(items):
            positions.setdefault(getattr(item, self.attr).lower(), i)
        # one assignment, so that a thread reading the shared lab never sees half an index; the
        # members are held so that no other object can take one of their ids
        self.state = (tuple(items), tuple(map(id, items)), positions)

    def get(self, items: list, low: str):
        members, member_ids, positions = self.state
        i = positions.get(low)
        if i is not None and i < len(items) and getattr(items[i], self.attr).lower() == low:
            return items[i]
        if i is None and self.immutable and len(items) == len(members) and tuple(map(id, items)) == member_ids:
            return None
        self._build(items)
        i = self.state[2].get(low)
        return items[i] if i is not None else None


# Indexes live beside the models, not in them: a private attribute would take part in `==`.
_INDEXES: dict[int, tuple[weakref.ref, dict[tuple[str, str], _NameIndex]]] = {}


def _indexes_of(topo) -> dict[tuple[str, str], _NameIndex]:
    key = id(topo)
    entry = _INDEXES.get(key)
    if entry is None or entry[0]() is not topo:
        entry = _INDEXES[key] = (weakref.ref(topo, lambda _ref, key=key: _INDEXES.pop(key, None)), {})
    return entry[1]


def _default_internet() -> list[InternetHost]:
    return [InternetHost(name="public-test", ip="203.0.113.10")]


class Topology(Model):
    name: str = "lab"
    location: str = "westeurope"
    resource_group: str = "rg1"
    subscription_id: str = DEFAULT_SUBSCRIPTION
    resource_groups: list[ResourceGroup] = Field(default_factory=list)
    virtual_networks: list[VirtualNetwork] = Field(default_factory=list)
    network_security_groups: list[NetworkSecurityGroup] = Field(default_factory=list)
    route_tables: list[RouteTable] = Field(default_factory=list)
    network_interfaces: list[NetworkInterface] = Field(default_factory=list)
    virtual_machines: list[VirtualMachine] = Field(default_factory=list)
    app_service_plans: list[AppServicePlan] = Field(default_factory=list)
    web_apps: list[WebApp] = Field(default_factory=list)
    private_dns_zones: list[PrivateDnsZone] = Field(default_factory=list)
    private_endpoints: list[PrivateEndpoint] = Field(default_factory=list)
    storage_accounts: list[StorageAccount] = Field(default_factory=list)
    sql_servers: list[SqlServer] = Field(default_factory=list)
    key_vaults: list[KeyVault] = Field(default_factory=list)
    public_ip_addresses: list[PublicIpAddress] = Field(default_factory=list)
    public_ip_prefixes: list[PublicIpPrefix] = Field(default_factory=list)
    nat_gateways: list[NatGateway] = Field(default_factory=list)
    virtual_network_gateways: list[VirtualNetworkGateway] = Field(default_factory=list)
    local_network_gateways: list[LocalNetworkGateway] = Field(default_factory=list)
    connections: list[Connection] = Field(default_factory=list)
    # the lab's on-premises networks behind local network gateways (not Azure resources)
    on_premises_sites: list[OnPremisesSite] = Field(default_factory=list)
    internet_hosts: list[InternetHost] = Field(default_factory=_default_internet)

    @model_validator(mode="before")
    @classmethod
    def _expand_inline_nics(cls, data):
        if not isinstance(data, dict) or not data.get("virtual_machines"):
            return data
        data = dict(data)
        nics = list(data.get("network_interfaces") or [])
        vms = []
        for vm in data["virtual_machines"]:
            if isinstance(vm, dict) and "subnet" in vm:
                vm = dict(vm)
                nic = {k: vm.pop(k) for k in NIC_KEYS + NIC_INPUT_KEYS if k in vm}
                nic_name = vm.setdefault("network_interface", f"{vm.get('name')}VMNic")
                for key in ("resource_group", "location"):
                    if key in vm:
                        nic[key] = vm[key]
                nics.append({"name": nic_name, **nic})
            vms.append(vm)
        data["virtual_machines"], data["network_interfaces"] = vms, nics
        return data

    @model_validator(mode="after")
    def _private_endpoint_nics(self):
        """Each private endpoint has its read-only NIC, as Azure creates it: named
        ``<pe>.nic.<guid>`` (or its custom name), in the endpoint's subnet, with the endpoint's
        static address or a dynamic one (allocated as any dynamic NIC's); it goes with its endpoint.
        https://learn.microsoft.com/azure/private-link/private-endpoint-overview#network-security-of-private-endpoints"""
        if not self.private_endpoints and not any(n.private_endpoint for n in self.network_interfaces):
            return self
        owners = {pe.name.lower(): pe for pe in self.private_endpoints}
        kept, has_nic = [], set()
        for nic in self.network_interfaces:
            pe = owners.get((nic.private_endpoint or "").lower()) if nic.private_endpoint else None
            if nic.private_endpoint and pe is None:
                continue  # its endpoint was deleted: the NIC goes with it
            if pe is not None:
                _follow_endpoint(nic, pe)
                has_nic.add(pe.name.lower())
            kept.append(nic)
        for pe in self.private_endpoints:
            if pe.name.lower() not in has_nic:
                nic = NetworkInterface(name=pe.custom_network_interface_name or self._pe_nic_name(pe),
                                       subnet=pe.subnet, private_endpoint=pe.name, resource_group=pe.resource_group,
                                       location=pe.location)
                _follow_endpoint(nic, pe)
                kept.append(nic)
        self.network_interfaces = kept
        return self

    def _pe_nic_name(self, pe: PrivateEndpoint) -> str:
        """``<pe>.nic.<guid>``: the guid is derived from the endpoint's id, so the same endpoint gets
        the same NIC name in every lab built from one file."""
        guid = uuid.uuid5(uuid.NAMESPACE_URL, self.id_of("private_endpoints", pe).lower())
        return f"{pe.name[:39]}.nic.{guid}"  # a NIC's name has at most 80 characters

    @model_validator(mode="after")
    def _default_group(self):
        """The default group exists when a resource lives in it without naming a group; a lab holds
        no other group than those declared or created (no phantom ``rg1`` in an az-built lab)."""
        if any(g.name.lower() == self.resource_group.lower() for g in self.resource_groups):
            return self
        if any(r.resource_group is None for kind in KINDS for r in getattr(self, kind)):
            self.resource_groups.insert(0, ResourceGroup(name=self.resource_group, location=self.location))
        return self

    # -- lookups (names are case-insensitive, as in Azure) --------------------------------
    def find(self, kind: str, name: str | None):
        if not name:
            return None
        return self._indexed(kind, "name", name.lower())

    def _indexed(self, kind: str, attr: str, low: str):
        """The first resource of ``kind`` whose ``attr`` is ``low`` (lower-cased), through an index."""
        items = getattr(self, kind)
        indexes = _indexes_of(self)
        index = indexes.get((kind, attr))
        if index is None:
            index = indexes[(kind, attr)] = _NameIndex(items, attr, immutable=attr == "name")
        return index.get(items, low)

    def private_endpoint_nic(self, pe: PrivateEndpoint) -> NetworkInterface | None:
        """The endpoint's read-only NIC (its address is the endpoint's)."""
        low = pe.name.lower()
        return next((n for n in self.network_interfaces if (n.private_endpoint or "").lower() == low), None)

    def private_endpoint_ip(self, pe: PrivateEndpoint) -> str | None:
        nic = self.private_endpoint_nic(pe)
        return nic.private_ip_address if nic is not None else None

    def private_link_target(self, pe: PrivateEndpoint) -> tuple[str, object] | None:
        """(kind, resource) the endpoint connects to: its ``target`` by name, or by ARM id (whose
        type says the kind); None when there is none."""
        wanted = None
        if pe.target.strip().startswith("/"):
            parsed = parse_id(pe.target)
            arm_type = f"{parsed.namespace}/{parsed.types[0]}".lower() if parsed and parsed.types else ""
            wanted = next((k for k, t in TARGET_TYPES.items() if t.lower() == arm_type), "")
        for kind in TARGET_TYPES:
            if wanted is None or wanted == kind:
                found = self.find(kind, pe.target_name)
                if found is not None:
                    return kind, found
        return None

    def private_endpoints_to(self, kind: str, name: str) -> list[PrivateEndpoint]:
        """The private endpoints whose target is the ``kind`` resource ``name``."""
        out = []
        for pe in self.private_endpoints:
            if pe.target_name.lower() == name.lower():
                target = self.private_link_target(pe)
                if target is not None and target[0] == kind:
                    out.append(pe)
        return out

    def vnet(self, name: str | None) -> VirtualNetwork | None:
        return self.find("virtual_networks", name)

    def subnet(self, ref: str | None) -> tuple[VirtualNetwork, Subnet] | None:
        """``VNET/SUBNET`` -> (vnet, subnet)."""
        if not ref or "/" not in ref:
            return None
        vnet_name, subnet_name = ref.split("/", 1)
        vnet = self.vnet(vnet_name)
        subnet = vnet.subnet(subnet_name) if vnet else None
        return (vnet, subnet) if subnet else None

    def group(self, name: str) -> ResourceGroup | None:
        return next((g for g in self.resource_groups if g.name.lower() == name.lower()), None)

    def rg_of(self, resource) -> str:
        return resource.resource_group or self.resource_group

    def location_of(self, resource) -> str:
        return (resource.location or self.location).lower().replace(" ", "")

    def id_of(self, kind: str, resource, *children: str) -> str:
        return resource_id(self.subscription_id, self.rg_of(resource), kind, resource.name, *children)

    def subnet_id(self, ref: str) -> str:
        vnet, subnet = self.subnet(ref) or (None, None)
        if vnet is None:
            vnet_name, _, subnet_name = ref.partition("/")
            return resource_id(self.subscription_id, self.resource_group, "virtual_networks", vnet_name,
                               "subnets", subnet_name)
        return self.id_of("virtual_networks", vnet, "subnets", subnet.name)

    def group_id(self, name: str) -> str:
        return rg_id(self.subscription_id, name)

    def vm_of_nic(self, nic_name: str) -> VirtualMachine | None:
        return self._indexed("virtual_machines", "network_interface", nic_name.lower())

    def nics_in(self, vnet_name: str, subnet_name: str) -> list[NetworkInterface]:
        ref = f"{vnet_name}/{subnet_name}".lower()
        return [n for n in self.network_interfaces if n.subnet.lower() == ref]

    def subnets_using(self, attr: str, name: str) -> list[str]:
        """Ids of the subnets whose ``attr`` (network_security_group, route_table, nat_gateway) is ``name``."""
        return self.subnets_by(attr, name.lower()).get(name.lower(), [])

    def subnets_by(self, attr: str, only: str | None = None) -> dict[str, list[str]]:
        """``subnets_using`` of every name at once, by lower-cased name, in one pass over the subnets
        (``only``: of that lower-cased name alone)."""
        out: dict[str, list[str]] = {}
        for v in self.virtual_networks:
            for s in v.subnets:
                value = (getattr(s, attr) or "").lower()
                if value and (only is None or value == only):
                    out.setdefault(value, []).append(self.id_of("virtual_networks", v, "subnets", s.name))
        return out

    def nics_using_nsg(self, name: str) -> list[NetworkInterface]:
        return self.nics_by_nsg(name.lower()).get(name.lower(), [])

    def nics_by_nsg(self, only: str | None = None) -> dict[str, list[NetworkInterface]]:
        """``nics_using_nsg`` of every NSG at once, by lower-cased name (``only``: of that one alone)."""
        out: dict[str, list[NetworkInterface]] = {}
        for n in self.network_interfaces:
            value = (n.network_security_group or "").lower()
            if value and (only is None or value == only):
                out.setdefault(value, []).append(n)
        return out

    def apps_integrated_with(self, vnet_name: str, subnet_name: str | None = None) -> list[WebApp]:
        out = []
        for app in self.web_apps:
            if not app.vnet_integration:
                continue
            v, _, s = app.vnet_integration.partition("/")
            if v.lower() == vnet_name.lower() and (subnet_name is None or s.lower() == subnet_name.lower()):
                out.append(app)
        return out

    def vnet_of_ip(self, ip: ipaddress.IPv4Address) -> VirtualNetwork | None:
        return next((v for v in self.virtual_networks if any(ip in n for n in v.networks)), None)


def _follow_endpoint(nic: NetworkInterface, pe: PrivateEndpoint) -> None:
    """The NIC of an endpoint is in the endpoint's subnet, with its static address if it has one."""
    if nic.subnet.lower() != pe.subnet.lower():
        nic.subnet, nic.private_ip_address = pe.subnet, None
    if pe.private_ip_address:
        nic.private_ip_address, nic.private_ip_allocation_method = pe.private_ip_address, "Static"
    elif nic.private_ip_allocation_method == "Static":
        nic.private_ip_address, nic.private_ip_allocation_method = None, "Dynamic"
