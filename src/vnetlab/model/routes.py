"""Route tables and user-defined routes.

https://learn.microsoft.com/azure/virtual-network/virtual-networks-udr-overview
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from .base import Model, Resource

NextHopType = Literal["VirtualNetworkGateway", "VnetLocal", "Internet", "VirtualAppliance", "None"]
_CANON = {t.lower(): t for t in ("VirtualNetworkGateway", "VnetLocal", "Internet", "VirtualAppliance", "None")}


class Route(Model):
    name: str = Field(min_length=1, max_length=80)
    address_prefix: str
    next_hop_type: NextHopType
    next_hop_ip_address: str | None = None

    @field_validator("next_hop_type", mode="before")
    @classmethod
    def _v_type(cls, v):
        return _CANON.get(str(v).lower(), v)


class RouteTable(Resource):
    routes: list[Route] = Field(default_factory=list)
    disable_bgp_route_propagation: bool = False
