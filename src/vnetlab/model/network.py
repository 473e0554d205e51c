"""Virtual networks, subnets, delegations, peerings and network interfaces.

https://learn.microsoft.com/azure/templates/microsoft.network/virtualnetworks
https://learn.microsoft.com/azure/templates/microsoft.network/networkinterfaces
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, field_validator, model_validator

from .base import Model, Resource

WEB_SERVER_FARMS = "Microsoft.Web/serverFarms"


def _cidr(value: str) -> str:
    try:
        return str(ipaddress.IPv4Network(str(value).strip(), strict=True))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a valid IPv4 CIDR prefix ({exc})") from None


class Delegation(Model):
    name: str = ""
    service_name: str

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data):
        if isinstance(data, str):
            return {"name": data.replace("/", "."), "service_name": data}
        return data

    @model_validator(mode="after")
    def _default_name(self):
        if not self.name:
            self.name = self.service_name.replace("/", ".")
        return self


class Subnet(Model):
    name: str = Field(min_length=1, max_length=80)
    address_prefix: str
    network_security_group: str | None = None
    route_table: str | None = None
    delegations: list[Delegation] = Field(default_factory=list)
    service_endpoints: list[str] = Field(default_factory=list)
    private_endpoint_network_policies: str = "Disabled"

    _v_prefix = field_validator("address_prefix")(lambda cls, v: _cidr(v))

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.address_prefix)

    def delegated_to(self, service: str) -> bool:
        return any(d.service_name.lower() == service.lower() for d in self.delegations)


PeeringState = Literal["Initiated", "Connected", "Disconnected"]


class VirtualNetworkPeering(Model):
    """One direction of a peering. Traffic flows only when the remote VNet has the
    reverse peering too (peeringState Connected); otherwise it is Initiated. Once connected,
    deleting the reverse peering or the remote VNet leaves this one Disconnected (kept, no
    traffic) until it is deleted and created again, or changed.
    https://learn.microsoft.com/azure/virtual-network/virtual-network-peering-overview"""

    name: str = Field(min_length=1, max_length=80)
    remote_virtual_network: str
    allow_virtual_network_access: bool = True
    allow_forwarded_traffic: bool = False
    allow_gateway_transit: bool = False
    use_remote_gateways: bool = False
    # read-only in ARM: set by every change (engine.routing.settle_peerings), never taken from input
    peering_state: PeeringState | None = None

    def settings(self) -> tuple:
        """What the user writes: a peering whose settings change counts as updated."""
        return (self.remote_virtual_network.lower(), self.allow_virtual_network_access, self.allow_forwarded_traffic,
                self.allow_gateway_transit, self.use_remote_gateways)


class VirtualNetwork(Resource):
    address_space: list[str] = Field(min_length=1)
    dns_servers: list[str] = Field(default_factory=list)
    subnets: list[Subnet] = Field(default_factory=list)
    peerings: list[VirtualNetworkPeering] = Field(default_factory=list)

    @field_validator("address_space", mode="before")
    @classmethod
    def _v_space(cls, v):
        return [v] if isinstance(v, str) else v

    @field_validator("address_space")
    @classmethod
    def _v_space_cidr(cls, v):
        out = []
        for p in v:
            try:
                out.append(str(ipaddress.ip_network(str(p).strip(), strict=True)))
            except ValueError as exc:
                raise ValueError(f"{p!r} is not a valid CIDR prefix ({exc})") from None
        return out

    @property
    def ipv4_space(self) -> list[str]:
        """The IPv4 ranges: the lab's data plane is IPv4 (an IPv6 range is kept, and refused for integration)."""
        return [p for p in self.address_space if ":" not in p]

    @property
    def networks(self) -> list[ipaddress.IPv4Network]:
        return [ipaddress.IPv4Network(p) for p in self.ipv4_space]

    def subnet(self, name: str) -> Subnet | None:
        low = name.lower()
        return next((s for s in self.subnets if s.name.lower() == low), None)


class NetworkInterface(Resource):
    subnet: str = Field(description="VNET/SUBNET")
    private_ip_address: str | None = None
    private_ip_allocation_method: Literal["Dynamic", "Static"] = "Dynamic"
    network_security_group: str | None = None
    enable_ip_forwarding: bool = False

    @field_validator("private_ip_address")
    @classmethod
    def _v_ip(cls, v):
        if v is None:
            return v
        try:
            return str(ipaddress.IPv4Address(str(v).strip()))
        except ValueError:
            raise ValueError(f"{v!r} is not a valid IPv4 address") from None

    @model_validator(mode="before")
    @classmethod
    def _static_when_given(cls, data):
        if isinstance(data, dict) and data.get("private_ip_address") and "private_ip_allocation_method" not in data:
            data = {**data, "private_ip_allocation_method": "Static"}
        return data
