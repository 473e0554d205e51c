"""App Service plans and web apps with regional VNet integration.

https://learn.microsoft.com/azure/app-service/overview-vnet-integration
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from .base import Model, Resource
from .dns import dns_server_addresses

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
    """The 2024-11-01 site property; applicationTraffic was vnetRouteAllEnabled.
    https://learn.microsoft.com/azure/app-service/configure-vnet-integration-routing"""

    all_traffic: bool = False
    application_traffic: bool = False
    content_share_traffic: bool = False
    image_pull_traffic: bool = False
    backup_restore_traffic: bool = False


# The legacy app setting that also turns Route All on ("1"; "true" is accepted too).
# https://learn.microsoft.com/azure/app-service/configure-vnet-integration-routing#configure-application-routing
ROUTE_ALL_SETTING = "WEBSITE_VNET_ROUTE_ALL"
CONFIGURATION_CHANNELS = ("content_share_traffic", "image_pull_traffic", "backup_restore_traffic")


class WebApp(Resource):
    plan: str
    vnet_integration: str | None = Field(default=None, description="VNET/SUBNET")
    vnet_route_all_enabled: bool = False
    outbound_vnet_routing: OutboundVnetRouting | None = None
    app_settings: dict[str, str] = Field(default_factory=dict)
    https_only: bool = False
    # `az webapp stop/start/restart`: a stopped app runs no code (nothing answers, nothing is sent);
    # each restart counts, so that a backend can tell the app's process must be started again.
    # https://learn.microsoft.com/rest/api/appservice/web-apps/stop
    state: Literal["Running", "Stopped"] = "Running"
    restarts: int = Field(default=0, ge=0)
    site_config: dict = Field(default_factory=dict, description="other siteConfig properties, ARM camelCase")
    # siteConfig.dnsConfiguration.dnsServers (up to 5); the app settings WEBSITE_DNS_SERVER and
    # WEBSITE_DNS_ALT_SERVER also count (dns_servers_setting).
    # https://learn.microsoft.com/azure/app-service/overview-name-resolution
    dns_servers: list[str] = Field(default_factory=list, max_length=5)

    @field_validator("dns_servers", mode="before")
    @classmethod
    def _v_dns(cls, v, info: ValidationInfo):
        return dns_server_addresses(v, f"web app {info.data.get('name') or '?'}")

    @field_validator("app_settings", mode="before")
    @classmethod
    def _v_settings(cls, v):
        return {str(k): str(val) for k, val in (v or {}).items()}

    # -- Route All: the one truth table ---------------------------------------------------------
    # Application traffic goes into the VNet when ANY of these is on: the site's vnetRouteAllEnabled,
    # outboundVnetRouting.applicationTraffic (its new name), outboundVnetRouting.allTraffic (which
    # "enables all other routing options"), or the app setting WEBSITE_VNET_ROUTE_ALL=1.
    # https://learn.microsoft.com/azure/app-service/configure-vnet-integration-routing
    def route_all_sources(self) -> dict[str, bool]:
        """Each setting that can turn Route All on, and whether it does."""
        ovr = self.outbound_vnet_routing or OutboundVnetRouting()
        key = self._route_all_setting_key()
        setting = self.app_settings[key].strip().lower() if key else ""
        return {"vnetRouteAllEnabled": self.vnet_route_all_enabled,
                "outboundVnetRouting.applicationTraffic": ovr.application_traffic,
                "outboundVnetRouting.allTraffic": ovr.all_traffic,
                ROUTE_ALL_SETTING: setting in ("1", "true")}

    @property
    def route_all(self) -> bool:
        """Whether all outbound application traffic goes through the VNet integration."""
        return any(self.route_all_sources().values())

    def effective_outbound_routing(self) -> OutboundVnetRouting:
        """outboundVnetRouting as it acts (what ARM shows): allTraffic turns every channel on."""
        ovr = self.outbound_vnet_routing or OutboundVnetRouting()
        channels = {c: getattr(ovr, c) or ovr.all_traffic for c in CONFIGURATION_CHANNELS}
        return OutboundVnetRouting(all_traffic=ovr.all_traffic, application_traffic=self.route_all, **channels)

    def set_route_all(self, on: bool) -> None:
        """Turn Route All on or off through every setting, so that no other one contradicts it.

        On: the site property and applicationTraffic. Off: all of them; allTraffic is cleared and the
        configuration channels it turned on are kept on explicitly; the legacy app setting is removed.
        """
        if on == self.route_all:
            return
        self.vnet_route_all_enabled = on
        ovr = self.outbound_vnet_routing
        if ovr is not None:
            if not on and ovr.all_traffic:
                for channel in CONFIGURATION_CHANNELS:
                    setattr(ovr, channel, True)
                ovr.all_traffic = False
            ovr.application_traffic = on
        if not on:
            self.app_settings.pop(self._route_all_setting_key() or ROUTE_ALL_SETTING, None)

    @property
    def running(self) -> bool:
        return self.state == "Running"

    def stop(self) -> None:
        self.state = "Stopped"

    def start(self) -> None:
        self.state = "Running"

    def restart(self) -> None:
        """A restart starts a stopped app too, as Azure's restart does."""
        self.state = "Running"
        self.restarts += 1

    def _route_all_setting_key(self) -> str | None:
        """The app setting's key as the user spelled it (app setting names are case-insensitive)."""
        return next((k for k in self.app_settings if k.upper() == ROUTE_ALL_SETTING), None)
