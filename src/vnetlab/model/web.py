"""App Service plans and web apps with regional VNet integration.

https://learn.microsoft.com/azure/app-service/overview-vnet-integration
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .base import Model, Resource, canonical_choice
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


# -- inbound: access restrictions ------------------------------------------------------------------
# https://learn.microsoft.com/azure/app-service/overview-access-restrictions
RESTRICTION_HEADERS = ("x-forwarded-host", "x-forwarded-for", "x-azure-fdid", "x-fd-healthprobe")
MAX_HEADER_VALUES = 8      # "up to eight values" per header, as az checks
MAX_SOURCES = 8            # a multi-source rule: up to 8 IP ranges or 8 service tags, comma-separated
ANY_SOURCE = "Any"         # the address of Azure's implicit "Allow all" / "Deny all" rule
ANY_VNETS = "AnyVnets"     # every caller that arrives through a Microsoft.Web service endpoint
LAST_PRIORITY = 2147483647  # the implicit rule's priority


def _restriction_error(text: str) -> PydanticCustomError:
    # Azure does not document the text of these refusals: the code is vnetlab's
    return PydanticCustomError("InvalidIpSecurityRestriction", text)


class IpSecurityRestriction(Model):
    """One access restriction rule of a site (``siteConfig.ipSecurityRestrictions`` or
    ``scmIpSecurityRestrictions``): its source is an IP range (``ip_address``, ``tag: Default``), a
    service tag (``ip_address`` holds the tag, ``tag: ServiceTag``) or a subnet
    (``vnet_subnet_resource_id``, VNET/SUBNET or an ARM id); ``headers`` narrow it further.
    https://learn.microsoft.com/azure/app-service/overview-access-restrictions
    https://learn.microsoft.com/rest/api/appservice/web-apps/update-configuration#ipsecurityrestriction"""

    name: str | None = None
    ip_address: str | None = None
    subnet_mask: str | None = None
    vnet_subnet_resource_id: str | None = None
    action: Literal["Allow", "Deny"] = "Allow"
    priority: int = Field(ge=0, le=LAST_PRIORITY)
    tag: Literal["Default", "XffProxy", "ServiceTag"] = "Default"
    headers: dict[str, list[str]] = Field(default_factory=dict)
    description: str | None = None
    # vnetlab's: az and PowerShell check the subnet's Microsoft.Web service endpoint before they send
    # a subnet rule (az adds it) unless told --ignore-missing-endpoint; ARM itself does not check.
    ignore_missing_vnet_service_endpoint: bool = False

    @field_validator("action", mode="before")
    @classmethod
    def _v_action(cls, v):
        return canonical_choice(v, ("Allow", "Deny"))

    @field_validator("tag", mode="before")
    @classmethod
    def _v_tag(cls, v):
        return canonical_choice(v or "Default", ("Default", "XffProxy", "ServiceTag"))

    @field_validator("vnet_subnet_resource_id", mode="before")
    @classmethod
    def _v_subnet(cls, v):
        from .paas import subnet_ref
        return subnet_ref(v) if v else None

    @field_validator("headers", mode="before")
    @classmethod
    def _v_headers(cls, v):
        out: dict[str, list[str]] = {}
        for name, values in (v or {}).items():
            low = str(name).strip().lower()
            if low not in RESTRICTION_HEADERS:
                raise _restriction_error(f'Invalid http-header name: "{low}" (one of {", ".join(RESTRICTION_HEADERS)})')
            items = [values] if isinstance(values, str) else list(values or [])
            items = [str(x).strip() for x in items if str(x).strip()]
            if len(items) > MAX_HEADER_VALUES:
                raise _restriction_error(f'Only {MAX_HEADER_VALUES} values are allowed for each http-header: "{low}"')
            if low == "x-forwarded-for":
                items = [_cidr(x, "x-forwarded-for") for x in items]
            out[low] = items
        return out

    @model_validator(mode="after")
    def _one_source(self):
        if (self.ip_address is None) == (self.vnet_subnet_resource_id is None):
            raise _restriction_error(f"Access restriction {self.name or self.priority}: give either ip_address (an IP "
                                     "range or, with tag ServiceTag, service tags) or vnet_subnet_resource_id.")
        if self.ip_address is not None:
            self.ip_address = self._source_text(self.ip_address)
        return self

    def _source_text(self, text: str) -> str:
        """The rule's sources in canonical form: ``Any``, ``AnyVnets``, CIDRs or service tags."""
        value = text.strip()
        if value.lower() in (ANY_SOURCE.lower(), ANY_VNETS.lower()):
            return ANY_SOURCE if value.lower() == "any" else ANY_VNETS
        items = [x.strip() for x in value.split(",") if x.strip()]
        if not items or len(items) > MAX_SOURCES:
            raise _restriction_error(f"Access restriction {self.name or self.priority}: {len(items)} sources; a rule "
                                     f"takes 1 to {MAX_SOURCES}.")
        if self.tag == "ServiceTag":
            from ..engine.security import service_tag
            tags = [service_tag(x) for x in items]
            if None in tags:
                bad = items[tags.index(None)]
                raise _restriction_error(f"Access restriction {self.name or self.priority}: '{bad}' is not a service "
                                         "tag the lab knows (README, service tags).")
            return ",".join(tags)
        if self.subnet_mask and len(items) == 1 and "/" not in items[0]:
            items = [f"{items[0]}/{self.subnet_mask}"]
        return ",".join(_cidr(x, "ipAddress") for x in items)

    def sources(self) -> list[str]:
        return self.ip_address.split(",") if self.ip_address else []


def _cidr(text: str, where: str) -> str:
    """An IPv4 address (a /32) or range in CIDR notation, host bits allowed (Azure keeps them)."""
    try:
        net = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise _restriction_error(f"{where} '{text}' is not an IP address or a CIDR range.") from None
    if net.version != 4:
        raise _restriction_error(f"{where} '{text}': the lab models IPv4 only.")
    return str(net)


def _default_action(v):
    return None if v is None or str(v).strip() == "" else canonical_choice(v, ("Allow", "Deny"))


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
    # Inbound: the site's public endpoint (None: Enabled, unless the site has a private endpoint) and
    # its access restrictions, main site and scm (Kudu) site.
    # https://learn.microsoft.com/azure/app-service/overview-access-restrictions
    public_network_access: Literal["Enabled", "Disabled"] | None = None
    ip_security_restrictions: list[IpSecurityRestriction] = Field(default_factory=list)
    ip_security_restrictions_default_action: Literal["Allow", "Deny"] | None = None
    scm_ip_security_restrictions: list[IpSecurityRestriction] = Field(default_factory=list)
    scm_ip_security_restrictions_default_action: Literal["Allow", "Deny"] | None = None
    scm_ip_security_restrictions_use_main: bool = False

    @field_validator("public_network_access", mode="before")
    @classmethod
    def _v_public_access(cls, v):
        return None if v is None or str(v).strip() == "" else canonical_choice(v, ("Enabled", "Disabled"))

    @field_validator("ip_security_restrictions_default_action", "scm_ip_security_restrictions_default_action",
                     mode="before")
    @classmethod
    def _v_default_action(cls, v):
        return _default_action(v)

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
