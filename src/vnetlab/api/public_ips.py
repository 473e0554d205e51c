"""Microsoft.Network: publicIPAddresses, publicIPPrefixes and natGateways (Standard, static IPv4).

The addresses come from the lab's public range (engine.outbound); a NAT gateway's ``subnets`` and a
public IP's ``ipConfiguration`` / ``natGateway`` are read-only, filled from the side that holds them.
https://learn.microsoft.com/rest/api/virtualnetwork/public-ip-addresses
https://learn.microsoft.com/rest/api/virtualnetwork/public-ip-prefixes
https://learn.microsoft.com/rest/api/virtualnetwork/nat-gateways
"""

from __future__ import annotations

from ..engine.outbound import requested_public_address, requested_public_prefix
from ..model import NatGateway, PublicIpAddress, PublicIpPrefix, Topology
from .arm import Router, bad_request
from .gateways import gateway_ip_configuration_id
from .network import NS, OK, _tags, ref_id, subnet_users_wires
from .resource import TopLevel, envelope, location_of
from .state import LabState, Obj, check_ref_group, guid, parse_ref, require

SKU = {"name": "Standard", "tier": "Regional"}


def _users_of_ip(topo: Topology, pip: PublicIpAddress) -> dict:
    """The resource using the public IP, as Azure shows it (read-only): the IP configuration holding it
    (a NIC's, a VPN gateway's) under ``ipConfiguration``, or the NAT gateway under ``natGateway``.
    https://learn.microsoft.com/rest/api/virtualnetwork/public-ip-addresses/get"""
    low = pip.name.lower()
    nic = next((n for n in topo.network_interfaces if (n.public_ip_address or "").lower() == low), None)
    if nic is not None:
        return {"ipConfiguration": {"id": f"{topo.id_of('network_interfaces', nic)}/ipConfigurations/"
                                          f"{nic.primary_ip_configuration}"}}
    gateway = next((g for g in topo.virtual_network_gateways if (g.public_ip_address or "").lower() == low), None)
    if gateway is not None:
        return {"ipConfiguration": {"id": gateway_ip_configuration_id(topo, gateway)}}
    nat = next((g for g in topo.nat_gateways if low in (p.lower() for p in g.public_ip_addresses)), None)
    return {"natGateway": {"id": topo.id_of("nat_gateways", nat)}} if nat is not None else {}


def public_ip_wire(topo: Topology, pip: PublicIpAddress) -> dict:
    rid = topo.id_of("public_ip_addresses", pip)
    props = {"provisioningState": OK, "resourceGuid": guid(rid), "ipAddress": pip.ip_address,
             "publicIPAddressVersion": "IPv4", "publicIPAllocationMethod": "Static", "idleTimeoutInMinutes": 4,
             "ipTags": [], **_users_of_ip(topo, pip)}
    return envelope(rid, pip.name, f"{NS}/publicIPAddresses", topo.location_of(pip), pip.tags, props,
                    sku={"name": pip.sku, "tier": "Regional"})


def public_ip_from_wire(topo: Topology, body: Obj, current, rg: str, name: str) -> PublicIpAddress:
    props = body.obj("properties")
    method = (props.str("publicIPAllocationMethod") or "Static").capitalize()
    if method != "Static" or (props.str("publicIPAddressVersion") or "IPv4").upper() != "IPV4":
        raise bad_request(f"Public IP address {name}: the lab holds Standard static IPv4 addresses only.",
                          "UnsupportedPublicIpAddress")
    sku = body.obj("sku").str("name") or "Standard"
    return PublicIpAddress(name=name, resource_group=rg, tags=_tags(body), sku=sku,
                           ip_address=current.ip_address if current is not None else
                           requested_public_address(topo, props.str("ipAddress")),
                           location=location_of(body, f"{NS}/publicIPAddresses",
                                                current and topo.location_of(current)))


def prefix_wire(topo: Topology, pfx: PublicIpPrefix) -> dict:
    rid = topo.id_of("public_ip_prefixes", pfx)
    props = {"provisioningState": OK, "resourceGuid": guid(rid), "prefixLength": pfx.prefix_length,
             "ipPrefix": pfx.ip_prefix, "publicIPAddressVersion": "IPv4", "ipTags": []}
    nat = next((g for g in topo.nat_gateways if pfx.name.lower() in (p.lower() for p in g.public_ip_prefixes)), None)
    if nat is not None:
        props["natGateway"] = {"id": topo.id_of("nat_gateways", nat)}
    return envelope(rid, pfx.name, f"{NS}/publicIPPrefixes", topo.location_of(pfx), pfx.tags, props, sku=SKU)


def prefix_from_wire(topo: Topology, body: Obj, current, rg: str, name: str) -> PublicIpPrefix:
    props = body.obj("properties")
    length = props.int("prefixLength", 28)
    if current is not None:
        kept = current.ip_prefix if current.prefix_length == length else None
    else:
        kept = requested_public_prefix(topo, props.str("ipPrefix"), length)
    return PublicIpPrefix(name=name, resource_group=rg, tags=_tags(body), prefix_length=length, ip_prefix=kept,
                          location=location_of(body, f"{NS}/publicIPPrefixes", current and topo.location_of(current)))


def nat_gateway_wire(topo: Topology, nat: NatGateway, users: dict[str, list[str]] | None = None) -> dict:
    """``users``: the subnets of every NAT gateway (``Topology.subnets_by``), when many are written at once."""
    rid = topo.id_of("nat_gateways", nat)
    props: dict = {"provisioningState": OK, "resourceGuid": guid(rid),
                   "idleTimeoutInMinutes": nat.idle_timeout_in_minutes,
                   "publicIpAddresses": [{"id": ref_id(topo, "public_ip_addresses", p)} for p in nat.public_ip_addresses],
                   "publicIpPrefixes": [{"id": ref_id(topo, "public_ip_prefixes", p)} for p in nat.public_ip_prefixes]}
    subnets = users.get(nat.name.lower(), []) if users is not None else topo.subnets_using("nat_gateway", nat.name)
    if subnets:
        props["subnets"] = [{"id": s} for s in subnets]
    return envelope(rid, nat.name, f"{NS}/natGateways", topo.location_of(nat), nat.tags, props, sku={"name": "Standard"},
                    zones=[])


def nat_gateway_from_wire(topo: Topology, body: Obj, current, rg: str, name: str) -> NatGateway:
    props = body.obj("properties")
    pips = [_ref(topo, item, "public_ip_addresses", "publicIPAddresses") for item in _refs(props, "publicIpAddresses")]
    prefixes = [_ref(topo, item, "public_ip_prefixes", "publicIPPrefixes")
                for item in _refs(props, "publicIpPrefixes")]
    return NatGateway(name=name, resource_group=rg, tags=_tags(body), public_ip_addresses=pips,
                      public_ip_prefixes=prefixes, idle_timeout_in_minutes=props.int("idleTimeoutInMinutes", 4),
                      location=location_of(body, f"{NS}/natGateways", current and topo.location_of(current)))


def _refs(props: Obj, key: str) -> list[Obj]:
    """``publicIpAddresses`` as the SDK spells it, or ``publicIPAddresses``."""
    return props.objs(key) or props.objs(key.replace("Ip", "IP"))


def _ref(topo: Topology, item: Obj, kind: str, type_: str) -> str:
    path = f"{item.path}.id"
    rid = require(item.str("id"), path)
    name, rg = parse_ref(rid, NS, (type_,), path, topo)
    check_ref_group(topo, kind, name, rg, rid, path)
    return name


PUBLIC_IPS = TopLevel("public_ip_addresses", NS, "publicIPAddresses", public_ip_wire, public_ip_from_wire)
PREFIXES = TopLevel("public_ip_prefixes", NS, "publicIPPrefixes", prefix_wire, prefix_from_wire)
NAT_GATEWAYS = TopLevel("nat_gateways", NS, "natGateways", nat_gateway_wire, nat_gateway_from_wire,
                        to_wire_many=subnet_users_wires("nat_gateway", nat_gateway_wire))


def router(state: LabState) -> Router:
    r = Router()
    for kind in (PUBLIC_IPS, PREFIXES, NAT_GATEWAYS):
        kind.register(r, state)
    return r
