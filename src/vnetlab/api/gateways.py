"""Microsoft.Network: virtualNetworkGateways, localNetworkGateways, connections (site-to-site VPN).

Wire shapes follow the REST reference and what az sends (``az network vnet-gateway create``,
``az network local-gateway create``, ``az network vpn-connection create``, the last through a template
deployment). A gateway takes 30 minutes or more in Azure; here its PUT answers at once with
provisioningState Succeeded, which az's long-running poller (and ``--no-wait``) accept.
https://learn.microsoft.com/rest/api/network-gateway/
"""

from __future__ import annotations

from ..engine.gateways import connection_status, gateway_private_ip
from ..model import Connection, LocalNetworkGateway, Topology, VirtualNetworkGateway
from ..model.gateways import GATEWAY_SUBNET
from .arm import Router, bad_request
from .network import NS, OK, ref_id, ref_name, subnet_of_id
from .resource import TopLevel, envelope, location_of
from .state import Obj, guid, require


def _tags(body: Obj) -> dict:
    return {k: str(v) for k, v in (body.data.get("tags") or {}).items()}


# -- virtual network gateways ---------------------------------------------------------------------
def gateway_ip_configuration_id(topo: Topology, gw: VirtualNetworkGateway) -> str:
    """The id of the gateway's IP configuration (what its public IP's ``ipConfiguration`` names)."""
    return f"{topo.id_of('virtual_network_gateways', gw)}/ipConfigurations/{gw.ip_configuration}"


def gateway_wire(topo: Topology, gw: VirtualNetworkGateway) -> dict:
    rid = topo.id_of("virtual_network_gateways", gw)
    config: dict = {"provisioningState": OK, "privateIPAllocationMethod": "Dynamic",
                    "subnet": {"id": topo.subnet_id(gw.subnet_ref)}}
    if gw.public_ip_address:
        config["publicIPAddress"] = {"id": ref_id(topo, "public_ip_addresses", gw.public_ip_address)}
    private = gateway_private_ip(topo, gw)
    props = {"provisioningState": OK, "resourceGuid": guid(rid), "gatewayType": gw.gateway_type,
             "vpnType": gw.vpn_type, "vpnGatewayGeneration": "Generation1", "activeActive": gw.active_active,
             "enableBgp": gw.enable_bgp, "sku": {"name": gw.sku, "tier": gw.sku},
             "ipConfigurations": [{"name": gw.ip_configuration, "id": gateway_ip_configuration_id(topo, gw),
                                   "properties": config}],
             "bgpSettings": {"asn": 65515, "bgpPeeringAddress": str(private) if private else "",
                             "peerWeight": 0}}
    return envelope(rid, gw.name, f"{NS}/virtualNetworkGateways", topo.location_of(gw), gw.tags, props)


def gateway_from_wire(topo: Topology, body: Obj, current, rg: str, name: str) -> VirtualNetworkGateway:
    props = body.obj("properties")
    configs = props.objs("ipConfigurations")
    require(configs, "properties.ipConfigurations")
    config = configs[0].obj("properties")
    subnet_id = require(config.ref("subnet"), f"{config.path}.subnet.id".lstrip("."))
    vnet, _, subnet = subnet_of_id(topo, subnet_id, f"{config.path}.subnet.id".lstrip(".")).partition("/")
    if subnet.lower() != GATEWAY_SUBNET.lower():
        # https://learn.microsoft.com/azure/vpn-gateway/vpn-gateway-about-vpn-gateway-settings#gwsub
        raise bad_request(f"Subnet {subnet} of virtual network {vnet} cannot hold virtual network gateway {name}: "
                          "the gateway subnet must be named GatewaySubnet.", "InvalidGatewaySubnet")  # vnetlab's
    sku = props.obj("sku").str("name") or "VpnGw1"
    config_name = configs[0].str("name") or (current.ip_configuration if current is not None else None)
    return VirtualNetworkGateway(
        name=name, resource_group=rg, tags=_tags(body), virtual_network=vnet,
        location=location_of(body, f"{NS}/virtualNetworkGateways", current and topo.location_of(current)),
        gateway_type=props.str("gatewayType", "Vpn"), vpn_type=props.str("vpnType", "RouteBased"), sku=sku,
        public_ip_address=ref_name(topo, config, "publicIPAddress", "public_ip_addresses", "publicIPAddresses"),
        active_active=props.bool("activeActive", False), enable_bgp=props.bool("enableBgp", False),
        **({"ip_configuration": config_name} if config_name else {}))


# -- local network gateways ------------------------------------------------------------------------
def local_gateway_wire(topo: Topology, lng: LocalNetworkGateway) -> dict:
    rid = topo.id_of("local_network_gateways", lng)
    props = {"provisioningState": OK, "resourceGuid": guid(rid), "gatewayIpAddress": lng.gateway_ip_address,
             "localNetworkAddressSpace": {"addressPrefixes": list(lng.address_prefixes)}}
    return envelope(rid, lng.name, f"{NS}/localNetworkGateways", topo.location_of(lng), lng.tags, props)


def local_gateway_from_wire(topo: Topology, body: Obj, current, rg: str, name: str) -> LocalNetworkGateway:
    props = body.obj("properties")
    return LocalNetworkGateway(
        name=name, resource_group=rg, tags=_tags(body),
        location=location_of(body, f"{NS}/localNetworkGateways", current and topo.location_of(current)),
        gateway_ip_address=require(props.str("gatewayIpAddress"), "properties.gatewayIpAddress"),
        address_prefixes=props.obj("localNetworkAddressSpace").strs("addressPrefixes"))


# -- connections -----------------------------------------------------------------------------------
def connection_wire(topo: Topology, c: Connection) -> dict:
    rid = topo.id_of("connections", c)
    props = {"provisioningState": OK, "resourceGuid": guid(rid),
             "virtualNetworkGateway1": {"id": ref_id(topo, "virtual_network_gateways", c.virtual_network_gateway)},
             "localNetworkGateway2": {"id": ref_id(topo, "local_network_gateways", c.local_network_gateway)},
             "connectionType": c.connection_type, "connectionProtocol": "IKEv2", "routingWeight": 0,
             "enableBgp": False, "usePolicyBasedTrafficSelectors": False,
             "connectionStatus": connection_status(topo, c), "ingressBytesTransferred": 0,
             "egressBytesTransferred": 0}
    return envelope(rid, c.name, f"{NS}/connections", topo.location_of(c), c.tags, props)


def connection_from_wire(topo: Topology, body: Obj, current, rg: str, name: str) -> Connection:
    props = body.obj("properties")
    kind = props.str("connectionType", "IPsec")
    if kind.lower() != "ipsec":
        raise bad_request(f"Connection {name}: connection type {kind} is not modelled; the lab has site-to-site "
                          "IPsec connections only.", "UnsupportedConnectionType")  # vnetlab's code
    gateway = ref_name(topo, props, "virtualNetworkGateway1", "virtual_network_gateways", "virtualNetworkGateways")
    local = ref_name(topo, props, "localNetworkGateway2", "local_network_gateways", "localNetworkGateways")
    # GET never returns the shared key (as in Azure): a PUT without it keeps the current one
    key = props.str("sharedKey") or (current.shared_key if current is not None else None)
    return Connection(name=name, resource_group=rg, tags=_tags(body),
                      location=location_of(body, f"{NS}/connections", current and topo.location_of(current)),
                      virtual_network_gateway=require(gateway, "properties.virtualNetworkGateway1.id"),
                      local_network_gateway=require(local, "properties.localNetworkGateway2.id"),
                      shared_key=key)


GATEWAYS = TopLevel("virtual_network_gateways", NS, "virtualNetworkGateways", gateway_wire, gateway_from_wire)
LOCAL_GATEWAYS = TopLevel("local_network_gateways", NS, "localNetworkGateways", local_gateway_wire,
                          local_gateway_from_wire)
CONNECTIONS = TopLevel("connections", NS, "connections", connection_wire, connection_from_wire)


def router(state) -> Router:
    r = Router()
    for kind in (GATEWAYS, LOCAL_GATEWAYS, CONNECTIONS):
        kind.register(r, state)
    return r
