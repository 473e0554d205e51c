"""Site-to-site VPN: virtual network gateways, local network gateways, the connections between them,
and the on-premises sites of the lab behind the local network gateways.

https://learn.microsoft.com/azure/templates/microsoft.network/virtualnetworkgateways
https://learn.microsoft.com/azure/templates/microsoft.network/localnetworkgateways
https://learn.microsoft.com/azure/templates/microsoft.network/connections
https://learn.microsoft.com/azure/vpn-gateway/vpn-gateway-about-vpn-gateway-settings
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from .base import Model, Resource
from .compute import Service
from .network import _cidr, _ipv4

# https://learn.microsoft.com/azure/vpn-gateway/about-gateway-skus
VPN_SKUS = ("Basic", "VpnGw1", "VpnGw2", "VpnGw3", "VpnGw4", "VpnGw5",
            "VpnGw1AZ", "VpnGw2AZ", "VpnGw3AZ", "VpnGw4AZ", "VpnGw5AZ")
GATEWAY_SUBNET = "GatewaySubnet"


class VirtualNetworkGateway(Resource):
    """A route-based VPN gateway in the ``GatewaySubnet`` of ``virtual_network`` (ARM: its IP
    configuration's subnet). Static routing only: the prefixes of its connections' local network
    gateways (BGP is out of the lab's scope). ``public_ip_address``: the lab's public IP resource that
    is the tunnel's Azure end (the next hop address effective routes show). ``ip_configuration``: the
    name of its IP configuration, as ARM keeps the one the client gave (az: ``vnetGatewayConfig0`` with
    ``--public-ip-addresses``, else ``vnetGatewayConfig``); the public IP's ``ipConfiguration`` names it."""

    virtual_network: str
    gateway_type: Literal["Vpn"] = "Vpn"
    vpn_type: Literal["RouteBased", "PolicyBased"] = "RouteBased"
    sku: str = "VpnGw1"
    public_ip_address: str | None = None
    ip_configuration: str = Field("vnetGatewayConfig", min_length=1, max_length=80)
    active_active: bool = False
    enable_bgp: bool = False

    @field_validator("gateway_type", "vpn_type", mode="before")
    @classmethod
    def _v_case(cls, v, info: ValidationInfo):
        words = ("Vpn",) if info.field_name == "gateway_type" else ("RouteBased", "PolicyBased")
        return next((w for w in words if str(v).lower() == w.lower()), v)

    @property
    def subnet_ref(self) -> str:
        return f"{self.virtual_network}/{GATEWAY_SUBNET}"


class LocalNetworkGateway(Resource):
    """The on-premises VPN device (``gateway_ip_address``, its public address) and the address
    prefixes of the site behind it (ARM ``localNetworkAddressSpace.addressPrefixes``)."""

    gateway_ip_address: str
    address_prefixes: list[str] = Field(default_factory=list)

    @field_validator("gateway_ip_address", mode="before")
    @classmethod
    def _v_ip(cls, v):
        return _ipv4(v)

    @field_validator("address_prefixes", mode="before")
    @classmethod
    def _v_prefixes(cls, v, info: ValidationInfo):
        return [_cidr(p, str(info.data.get("name") or "?")) for p in ([v] if isinstance(v, str) else v or [])]

    @property
    def networks(self) -> list[ipaddress.IPv4Network]:
        return [ipaddress.IPv4Network(p) for p in self.address_prefixes]


class Connection(Resource):
    """A site-to-site IPsec connection between a VPN gateway and a local network gateway. Its status
    (ARM ``connectionStatus``, read-only) is derived: engine.gateways.connection_status."""

    virtual_network_gateway: str
    local_network_gateway: str
    connection_type: Literal["IPsec"] = "IPsec"
    shared_key: str | None = None

    @field_validator("connection_type", mode="before")
    @classmethod
    def _v_type(cls, v):
        return "IPsec" if str(v).lower() == "ipsec" else v


class OnPremisesHost(Model):
    """A host of an on-premises site: an address among its local network gateway's prefixes, and the
    services it listens on (it answers ping too)."""

    name: str = Field(min_length=1, max_length=80)
    ip: str
    services: list[Service] = Field(default_factory=lambda: [Service(port=22), Service(port=80),
                                                             Service(port=443)])

    @field_validator("ip", mode="before")
    @classmethod
    def _v_ip(cls, v):
        return _ipv4(v)


class OnPremisesSite(Model):
    """An on-premises network of the lab (not an Azure resource): the site behind
    ``local_network_gateway``, whose VPN device holds the LNG's ``gateway_ip_address``. ``shared_key``:
    the device's IPsec key; when set, a connection whose key differs does not come up."""

    name: str = Field(min_length=1, max_length=80)
    local_network_gateway: str
    shared_key: str | None = None
    hosts: list[OnPremisesHost] = Field(default_factory=list)
