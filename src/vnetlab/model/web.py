"""App Service plans and web apps with regional VNet integration.

https://learn.microsoft.com/azure/app-service/overview-vnet-integration
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from .base import Model, Resource

# sku name prefix -> ARM tier. https://azure.microsoft.com/pricing/details/app-service/linux/
_TIERS = [
    (r"^F\d", "Free"), (r"^D\d", "Shared"), (r"^B\d", "Basic"), (r"^S\d", "Standard"),
    (r"^P\d+V2$", "PremiumV2"), (r"^P\d+M?V3$", "PremiumV3"), (r"^P\d+M?V4$", "PremiumV4"),
    (r"^P\d$", "Premium"), (r"^EP\d", "ElasticPremium"), (r"^I\d+V2$", "IsolatedV2"),
    (r"^I\d", "Isolated"), (r"^Y\d", "Dynamic"), (r"^FC\d", "FlexConsumption"),
]
# Regional VNet integration: not Free or Shared, not Isolated (already in a VNet).
# https://learn.microsoft.com/azure/app-service/overview-vnet-integration#limitations
INTEGRATION_TIERS = {"Basic", "Standard", "Premium", "PremiumV2", "PremiumV3", "PremiumV4", "ElasticPremium",
                     "FlexConsumption"}
# https://learn.microsoft.com/azure/app-service/overview-vnet-integration#how-regional-virtual-network-integration-works
INTEGRATIONS_PER_PLAN = {"linux": 1, "windows": 2}


def sku_tier(sku: str) -> str | None:
    up = sku.upper()
    return next((tier for pattern, tier in _TIERS if re.match(pattern, up)), None)


class AppServicePlan(Resource):
    sku: str = "P1v3"
    os: Literal["linux", "windows"] = "linux"
    instances: int = Field(default=1, ge=1, le=100)

    @field_validator("os", mode="before")
    @classmethod
    def _v_os(cls, v):
        return str(v).lower()

    @field_validator("sku")
    @classmethod
    def _v_sku(cls, v):
        if sku_tier(v) is None:
            raise ValueError(f"unknown App Service plan sku {v!r} (e.g. F1, B1, S1, P1v2, P1v3)")
        return v

    @property
    def tier(self) -> str:
        return sku_tier(self.sku) or "Unknown"


class OutboundVnetRouting(Model):
    """The 2024-11-01 site property; applicationTraffic was vnetRouteAllEnabled."""

    all_traffic: bool = False
    application_traffic: bool = False
    content_share_traffic: bool = False
    image_pull_traffic: bool = False
    backup_restore_traffic: bool = False


class WebApp(Resource):
    plan: str
    vnet_integration: str | None = Field(default=None, description="VNET/SUBNET")
    vnet_route_all_enabled: bool = False
    outbound_vnet_routing: OutboundVnetRouting | None = None
    app_settings: dict[str, str] = Field(default_factory=dict)
    https_only: bool = False
    site_config: dict = Field(default_factory=dict, description="other siteConfig properties, ARM camelCase")

    @field_validator("app_settings", mode="before")
    @classmethod
    def _v_settings(cls, v):
        return {str(k): str(val) for k, val in (v or {}).items()}

    @property
    def route_all(self) -> bool:
        """Any of the settings that send all outbound traffic into the VNet.
        https://learn.microsoft.com/azure/app-service/configure-vnet-integration-routing"""
        ovr = self.outbound_vnet_routing
        return bool(self.vnet_route_all_enabled
                    or self.app_settings.get("WEBSITE_VNET_ROUTE_ALL", "").strip() in ("1", "true", "True")
                    or (ovr and (ovr.all_traffic or ovr.application_traffic)))
