"""Microsoft.Web: serverfarms (App Service plans) and sites (web apps) with regional VNet
integration: the site's virtualNetworkSubnetId, vnetRouteAllEnabled and outboundVnetRouting,
sites/networkConfig/virtualNetwork, sites/virtualNetworkConnections, config/web, app settings,
and what ``az webapp create`` needs on the way (publishing profile, slot config names).

Microsoft.Web answers a PUT with 200, never 201 (the SDK rejects 201), and the swift
networkConfig PUT and DELETE with 200 only (the responses the REST reference lists).
https://learn.microsoft.com/rest/api/appservice/web-apps
"""

from __future__ import annotations

import re
from xml.sax.saxutils import quoteattr

from starlette.responses import Response

from pydantic import ValidationError

from ..lab import disconnect, integrate
from ..model.errors import InvalidRequestContent, NotFound
from ..model.web import ANY_SOURCE, LAST_PRIORITY, IpSecurityRestriction
from ..engine.inbound import default_action
from ..topology import pydantic_error
from ..engine.addressing import integration_addresses, usable_count
from ..engine.outbound import site_outbound_addresses
from ..model import AppServicePlan, OutboundVnetRouting, Topology, WebApp
from .arm import Call, Router, json_response, resource_response
from .discovery import LOCATIONS
from .network import subnet_of_id
from .resource import TopLevel, envelope, location_of
from .state import LabState, Obj, find, guid, parse_ref, require

NS = "Microsoft.Web"
OUTBOUND_FIELDS = {"allTraffic": "all_traffic", "applicationTraffic": "application_traffic",
                   "contentShareTraffic": "content_share_traffic", "imagePullTraffic": "image_pull_traffic",
                   "backupRestoreTraffic": "backup_restore_traffic"}
# siteConfig members that are not stored as given: derived, or kept in their own model fields
SITE_CONFIG_DERIVED = {"vnetname", "vnetrouteallenabled", "appsettings", "connectionstrings", "machinekey",
                       "publishingusername", "ipsecurityrestrictions", "scmipsecurityrestrictions",
                       "ipsecurityrestrictionsdefaultaction", "scmipsecurityrestrictionsdefaultaction",
                       "scmipsecurityrestrictionsusemain"}


def display_location(name: str) -> str:
    """Microsoft.Web answers with the region's display name ('West Europe')."""
    return LOCATIONS.get(name, name)


def canonical_sku(name: str) -> str:
    """P1V3 -> P1v3, as Azure spells it."""
    up = name.strip().upper()
    return re.sub(r"V(\d)$", r"v\1", up) if re.match(r"^[PI]\d+M?V\d$", up) else up


def sku_family(name: str) -> str:
    m = re.match(r"^([A-Z]+)\d+(M?)(v\d)?$", name, re.IGNORECASE)
    if not m:
        return name
    return m.group(1).upper() + (m.group(3) or "").lower()


# -- plans -------------------------------------------------------------------------------------

def plan_wire(topo: Topology, plan: AppServicePlan) -> dict:
    rid = topo.id_of("app_service_plans", plan)
    rg, loc = topo.rg_of(plan), topo.location_of(plan)
    kind = "linux" if plan.os == "linux" else "app"
    sites = [a for a in topo.web_apps if a.plan.lower() == plan.name.lower()]
    props = {"serverFarmId": int(guid(rid)[:8], 16) % 100000, "name": plan.name, "workerSize": "Default",
             "workerSizeId": 0, "currentWorkerSize": "Default", "currentWorkerSizeId": 0,
             "currentNumberOfWorkers": plan.instances, "status": "Ready",
             "webSpace": f"{rg}-{loc}webspace" + ("-Linux" if kind == "linux" else ""),
             "subscription": topo.subscription_id, "maximumNumberOfWorkers": 30, "planName": "VirtualDedicatedPlan",
             "geoRegion": display_location(loc), "perSiteScaling": False, "elasticScaleEnabled": False,
             "maximumElasticWorkerCount": 1, "numberOfSites": len(sites), "isSpot": False, "kind": kind,
             "reserved": plan.os == "linux", "isXenon": False, "hyperV": False, "targetWorkerCount": 0,
             "targetWorkerSizeId": 0, "provisioningState": "Succeeded", "resourceGroup": rg,
             "zoneRedundant": False, "numberOfWorkers": plan.instances}
    sku = {"name": plan.sku, "tier": plan.tier, "size": plan.sku, "family": sku_family(plan.sku),
           "capacity": plan.instances}
    return envelope(rid, plan.name, f"{NS}/serverfarms", display_location(loc), plan.tags, props, kind=kind, sku=sku)


def plan_from_wire(topo: Topology, body: Obj, current: AppServicePlan | None, rg: str, name: str) -> AppServicePlan:
    props, sku = body.obj("properties"), body.obj("sku")
    # Azure makes a Linux plan only when reserved is true, whatever the kind says.
    reserved = props.bool("reserved", current.os == "linux" if current else False)
    return AppServicePlan(name=name, resource_group=rg, tags=dict(body.obj("tags").data),
                          sku=canonical_sku(sku.str("name") or (current.sku if current else "P1v3")),
                          os="linux" if reserved else "windows",
                          instances=sku.int("capacity", current.instances if current else 1),
                          location=location_of(body, f"{NS}/serverfarms", current and topo.location_of(current)))


# -- sites -------------------------------------------------------------------------------------

def outbound_wire(app: WebApp) -> dict:
    """outboundVnetRouting as it acts, from the model's one Route All truth table."""
    ovr = app.effective_outbound_routing()
    return {wire: getattr(ovr, field) for wire, field in OUTBOUND_FIELDS.items()}


def vnet_name(topo: Topology, app: WebApp) -> str | None:
    """siteConfig.vnetName / the connection name: '<vnet resourceGuid>_<subnet>'."""
    if not app.vnet_integration:
        return None
    vnet, _, subnet = app.vnet_integration.partition("/")
    found = topo.subnet(app.vnet_integration)
    vnet_id = topo.id_of("virtual_networks", found[0]) if found else vnet
    return f"{guid(vnet_id)}_{found[1].name if found else subnet}"


def site_config_defaults(app: WebApp, linux: bool) -> dict:
    return {"numberOfWorkers": 1,
            "defaultDocuments": ["Default.htm", "Default.html", "index.html", "hostingstart.html"],
            "netFrameworkVersion": "v4.0", "phpVersion": "", "pythonVersion": "", "nodeVersion": "",
            "powerShellVersion": "", "linuxFxVersion": "" if linux else None, "requestTracingEnabled": False,
            "remoteDebuggingEnabled": False, "httpLoggingEnabled": False, "acrUseManagedIdentityCreds": False,
            "logsDirectorySizeLimit": 35, "detailedErrorLoggingEnabled": False, "scmType": "None",
            "use32BitWorkerProcess": True, "webSocketsEnabled": False, "alwaysOn": False,
            "managedPipelineMode": "Integrated", "loadBalancing": "LeastRequests",
            "virtualApplications": [{"virtualPath": "/", "physicalPath": "site\\wwwroot", "preloadEnabled": False}],
            "experiments": {"rampUpRules": []}, "autoHealEnabled": False, "vnetPrivatePortsCount": 0,
            "localMySqlEnabled": False, "http20Enabled": False, "minTlsVersion": "1.2",
            "scmMinTlsVersion": "1.2", "ftpsState": "FtpsOnly", "preWarmedInstanceCount": 0,
            "functionsRuntimeScaleMonitoringEnabled": False, "minimumElasticInstanceCount": 1,
            "azureStorageAccounts": {}}


def _linux(topo: Topology, app: WebApp) -> bool:
    plan = topo.find("app_service_plans", app.plan)
    return plan is not None and plan.os == "linux"


def site_config_wire(topo: Topology, app: WebApp) -> dict:
    out = site_config_defaults(app, _linux(topo, app))
    out.update(app.site_config)
    out.update(vnetName=vnet_name(topo, app) or "", vnetRouteAllEnabled=app.route_all,
               publishingUsername=f"${app.name}", appSettings=None, **restrictions_wire(topo, app))
    return out


# -- access restrictions -----------------------------------------------------------------------
# The implicit last rule ARM lists after the site's own: "Allow all" with no rule, else the unmatched
# rule's action. https://learn.microsoft.com/azure/app-service/overview-access-restrictions#unmatched-rule
IMPLICIT_RULES = {"allow all", "deny all"}


def restriction_wire(topo: Topology, rule: IpSecurityRestriction) -> dict:
    out = {"ipAddress": rule.ip_address, "action": rule.action, "tag": rule.tag, "priority": rule.priority,
           "name": rule.name, "description": rule.description, "headers": dict(rule.headers) or None}
    if rule.vnet_subnet_resource_id is not None:
        out.update(vnetSubnetResourceId=topo.subnet_id(rule.vnet_subnet_resource_id), vnetTrafficTag=0,
                   subnetTrafficTag=0)
    return out


def _rules_wire(topo: Topology, rules: list, configured: str | None) -> list[dict]:
    action = default_action(rules, configured)
    implicit = {"ipAddress": ANY_SOURCE, "action": action, "priority": LAST_PRIORITY, "name": f"{action} all",
                "description": f"{action} all access"}
    return [restriction_wire(topo, r) for r in rules] + [implicit]


def restrictions_wire(topo: Topology, app: WebApp) -> dict:
    """The five members `az webapp config access-restriction show` prints."""
    return {"ipSecurityRestrictions": _rules_wire(topo, app.ip_security_restrictions,
                                                  app.ip_security_restrictions_default_action),
            "scmIpSecurityRestrictions": _rules_wire(topo, app.scm_ip_security_restrictions,
                                                     app.scm_ip_security_restrictions_default_action),
            "scmIpSecurityRestrictionsUseMain": app.scm_ip_security_restrictions_use_main,
            # as set: unset (null) follows the rules (the implicit last rule says which way)
            "ipSecurityRestrictionsDefaultAction": app.ip_security_restrictions_default_action,
            "scmIpSecurityRestrictionsDefaultAction": app.scm_ip_security_restrictions_default_action}


def _implicit(rule: Obj) -> bool:
    """The implicit last rule, sent back as read (az adds a rule to the list it got)."""
    return (str(rule.raw("ipAddress") or "").lower() == "any" and rule.int("priority") == LAST_PRIORITY
            and str(rule.raw("name") or "").lower() in IMPLICIT_RULES)


def restriction_from_wire(topo: Topology, rule: Obj) -> IpSecurityRestriction:
    """A rule as ARM takes it; ARM does not check the subnet's service endpoint (az and PowerShell do)."""
    rid = rule.str("vnetSubnetResourceId")
    headers = {k: v for k, v in rule.obj("headers").data.items()} if rule.raw("headers") else {}
    fields = dict(name=rule.str("name"), ip_address=None if rid else rule.str("ipAddress"),
                  subnet_mask=rule.str("subnetMask"), action=rule.str("action") or "Allow",
                  priority=rule.int("priority", 0), tag=rule.str("tag") or "Default", headers=headers,
                  description=rule.str("description"),
                  vnet_subnet_resource_id=subnet_of_id(topo, rid, f"{rule.path}.vnetSubnetResourceId") if rid else None,
                  ignore_missing_vnet_service_endpoint=bool(rid))
    try:
        return IpSecurityRestriction(**fields)
    except ValidationError as exc:
        raise pydantic_error(exc) from None


def apply_restrictions(topo: Topology, app: WebApp, config: Obj) -> None:
    """The access restriction members a siteConfig (or config/web) body gives; the others stay."""
    for wire, field in (("ipSecurityRestrictions", "ip_security_restrictions"),
                        ("scmIpSecurityRestrictions", "scm_ip_security_restrictions")):
        if config.raw(wire) is not None:
            setattr(app, field, [restriction_from_wire(topo, r) for r in config.objs(wire) if not _implicit(r)])
    for wire, field in (("ipSecurityRestrictionsDefaultAction", "ip_security_restrictions_default_action"),
                        ("scmIpSecurityRestrictionsDefaultAction", "scm_ip_security_restrictions_default_action")):
        if wire in config:
            value = config.str(wire)
            if value is not None and value.lower() not in ("allow", "deny"):
                raise InvalidRequestContent(f"{config.path}.{wire} takes Allow or Deny, not '{value}'.")
            setattr(app, field, value.capitalize() if value else None)
    if config.raw("scmIpSecurityRestrictionsUseMain") is not None:
        app.scm_ip_security_restrictions_use_main = config.bool("scmIpSecurityRestrictionsUseMain")


def merge_site_config(app: WebApp, config: Obj, linux: bool) -> dict:
    """Store the siteConfig members that differ from the defaults (the CLI sends all of them back)."""
    defaults = site_config_defaults(app, linux)
    out = dict(app.site_config)
    for key, value in config.data.items():
        if key.lower() in SITE_CONFIG_DERIVED or value is None:
            continue
        if defaults.get(key) == value:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def legacy_routing_wire(app: WebApp) -> dict:
    """The site properties that preceded outboundVnetRouting's configuration channels."""
    ovr = app.effective_outbound_routing()
    return {"vnetImagePullEnabled": ovr.image_pull_traffic, "vnetContentShareEnabled": ovr.content_share_traffic,
            "vnetBackupRestoreEnabled": ovr.backup_restore_traffic}


def site_wire(topo: Topology, app: WebApp) -> dict:
    rid = topo.id_of("web_apps", app)
    rg, loc = topo.rg_of(app), topo.location_of(app)
    plan = topo.find("app_service_plans", app.plan)
    linux = _linux(topo, app)
    host = f"{app.name.lower()}.azurewebsites.net"
    scm = f"{app.name.lower()}.scm.azurewebsites.net"
    current, possible = site_outbound_addresses(topo, app)
    props = {"name": app.name, "state": app.state, "hostNames": [host], "webSpace": f"{rg}-{loc}webspace",
             "repositorySiteName": app.name, "usageState": "Normal", "enabled": True, "adminEnabled": True,
             "enabledHostNames": [host, scm], "availabilityState": "Normal",
             "hostNameSslStates": [{"name": host, "sslState": "Disabled", "hostType": "Standard"},
                                   {"name": scm, "sslState": "Disabled", "hostType": "Repository"}],
             "serverFarmId": topo.id_of("app_service_plans", plan) if plan else None,
             "reserved": linux, "isXenon": False, "hyperV": False, "storageRecoveryDefaultState": "Running",
             "contentAvailabilityState": "Normal", "runtimeAvailabilityState": "Normal",
             "vnetRouteAllEnabled": app.route_all, **legacy_routing_wire(app), "outboundVnetRouting": outbound_wire(app),
             "siteConfig": site_config_wire(topo, app), "deploymentId": app.name,
             "sku": plan.tier if plan else "PremiumV3", "scmSiteAlsoStopped": False, "clientAffinityEnabled": True,
             "clientCertEnabled": False, "clientCertMode": "Required", "hostNamesDisabled": False,
             "outboundIpAddresses": ",".join(current), "possibleOutboundIpAddresses": ",".join(possible), "containerSize": 0,
             "dailyMemoryTimeQuota": 0, "resourceGroup": rg, "defaultHostName": host, "httpsOnly": app.https_only,
             "redundancyMode": "None", "publicNetworkAccess": app.public_network_access,
             "storageAccountRequired": False,
             "virtualNetworkSubnetId": topo.subnet_id(app.vnet_integration) if app.vnet_integration else None,
             "keyVaultReferenceIdentity": "SystemAssigned", "provisioningState": "Succeeded",
             "dnsConfiguration": dns_configuration_wire(app)}
    kind = "app,linux" if linux else "app"
    return envelope(rid, app.name, f"{NS}/sites", display_location(loc), app.tags, props, kind=kind)


def dns_configuration_wire(app: WebApp) -> dict:
    """The site's dnsConfiguration (its own DNS servers; the WEBSITE_DNS_SERVER app setting is an app
    setting and is answered as one). https://learn.microsoft.com/azure/app-service/overview-name-resolution"""
    return {"dnsServers": list(app.dns_servers), "dnsLegacySortOrder": False}


def _dns_servers_from(props: Obj, current: WebApp | None) -> list[str]:
    if "dnsConfiguration" not in props:
        return list(current.dns_servers) if current else []
    return props.obj("dnsConfiguration").strs("dnsServers")


def _route_all_asked(props: Obj, config: Obj, given: OutboundVnetRouting | None, current: WebApp | None) -> bool | None:
    """The Route All the body asks for, or None when it says nothing. A body read back from a GET
    repeats the current value in several places: the one that differs from it is the change."""
    asked = [source.bool("vnetRouteAllEnabled") for source in (props, config) if "vnetRouteAllEnabled" in source]
    if given is not None:
        asked.append(given.application_traffic or given.all_traffic)
    if not asked:
        return None
    now = current.route_all if current else False
    return next((value for value in asked if value != now), now)


def _outbound_from(props: Obj, current: WebApp | None) -> OutboundVnetRouting | None:
    if "outboundVnetRouting" not in props:
        return current.outbound_vnet_routing.model_copy() if current and current.outbound_vnet_routing else None
    given = props.obj("outboundVnetRouting")
    ovr = OutboundVnetRouting(**{f: given.bool(w, False) for w, f in OUTBOUND_FIELDS.items()})
    # every channel off acts as none set: kept as none, so that a site read back (az group export)
    # and written again is the same site
    return None if ovr == OutboundVnetRouting() else ovr


def site_from_wire(topo: Topology, body: Obj, current: WebApp | None, rg: str, name: str) -> WebApp:
    props = body.obj("properties")
    config = props.obj("siteConfig")
    plan = current.plan if current else None
    plan_id = props.str("serverFarmId")
    if plan_id:
        plan, plan_rg = parse_ref(plan_id, NS, ("serverfarms",), "properties.serverFarmId", topo)
        if find(topo, "app_service_plans", plan_rg, plan) is None:
            raise NotFound(f"Cannot find ServerFarm with name {plan}.")
    require(plan, "properties.serverFarmId")
    integration = current.vnet_integration if current else None
    if "virtualNetworkSubnetId" in props.data:
        rid = props.str("virtualNetworkSubnetId")
        integration = subnet_of_id(topo, rid, "properties.virtualNetworkSubnetId") if rid else None
    ovr = _outbound_from(props, current)
    settings = dict(current.app_settings) if current else {}
    if "appSettings" in config:
        settings = {require(s.str("name"), f"{s.path}.name"): s.str("value") or "" for s in config.objs("appSettings")}
    draft = WebApp(name=name, resource_group=rg, tags=dict(body.obj("tags").data), plan=plan,
                   vnet_integration=integration, outbound_vnet_routing=ovr,
                   vnet_route_all_enabled=current.vnet_route_all_enabled if current else False,
                   app_settings=settings, https_only=props.bool("httpsOnly", current.https_only if current else False),
                   site_config=current.site_config if current else {},
                   dns_servers=_dns_servers_from(props, current),
                   state=current.state if current else "Running", restarts=current.restarts if current else 0,
                   location=location_of(body, f"{NS}/sites", current and topo.location_of(current)))
    asked = _route_all_asked(props, config, ovr if "outboundVnetRouting" in props else None, current)
    if asked is not None:
        draft.set_route_all(asked)
    _inbound_from(topo, props, config, current, draft)
    linux_plan = topo.find("app_service_plans", plan)
    draft.site_config = merge_site_config(draft, config, bool(linux_plan and linux_plan.os == "linux"))
    return draft


def _inbound_from(topo: Topology, props: Obj, config: Obj, current: WebApp | None, draft: WebApp) -> None:
    """publicNetworkAccess (a site property) and the access restrictions (siteConfig) the body gives;
    the site's current ones otherwise."""
    if current is not None:
        for field in INBOUND_FIELDS:
            setattr(draft, field, getattr(current, field))
    if "publicNetworkAccess" in props:
        value = props.str("publicNetworkAccess")
        if value and value.lower() not in ("enabled", "disabled"):
            raise InvalidRequestContent(f"properties.publicNetworkAccess takes Enabled or Disabled, not '{value}'.")
        draft.public_network_access = value.capitalize() if value else None
    apply_restrictions(topo, draft, config)


INBOUND_FIELDS = ("public_network_access", "ip_security_restrictions", "ip_security_restrictions_default_action",
                  "scm_ip_security_restrictions", "scm_ip_security_restrictions_default_action",
                  "scm_ip_security_restrictions_use_main")


PLANS = TopLevel("app_service_plans", NS, "serverfarms", plan_wire, plan_from_wire, created=200)
SITES = TopLevel("web_apps", NS, "sites", site_wire, site_from_wire, created=200)


# -- site sub-resources ------------------------------------------------------------------------

def _site(state: LabState, call: Call) -> tuple[Topology, WebApp]:
    return SITES.lookup(state, call)


def _change_site(state: LabState, call: Call, fn) -> tuple[Topology, WebApp]:
    """Apply ``fn(topo, app)`` to the site inside one transaction; return the new lab and site."""

    def change(topo: Topology) -> None:
        fn(topo, SITES.existing(topo, call))

    topo = state.change(change)
    return topo, find(topo, "web_apps", call.params["rg"], call.params["name"])


def config_doc(topo: Topology, app: WebApp, name: str, properties, type_: str = "config") -> dict:
    rid = f"{topo.id_of('web_apps', app)}/{type_}/{name}"
    return envelope(rid, name, f"{NS}/sites/{type_}", display_location(topo.location_of(app)), None, properties)


def get_config_web(state: LabState, call: Call) -> Response:
    topo, app = _site(state, call)
    return resource_response(config_doc(topo, app, "web", site_config_wire(topo, app)))


def apply_config_web(topo: Topology, app: WebApp, config: Obj) -> None:
    """sites/{app}/config/web: the members given change, the others stay."""
    if "vnetRouteAllEnabled" in config:
        app.set_route_all(config.bool("vnetRouteAllEnabled"))
    apply_restrictions(topo, app, config)
    app.site_config = merge_site_config(app, config, _linux(topo, app))


def apply_app_settings(topo: Topology, app: WebApp, props: Obj) -> None:
    """sites/{app}/config/appsettings: the settings are replaced."""
    app.app_settings = {key: props.str(key) or "" for key in props.data}


def apply_swift(topo: Topology, app: WebApp, props: Obj) -> None:
    """sites/{app}/networkConfig/virtualNetwork {subnetResourceId}: regional VNet integration."""
    rid = require(props.str("subnetResourceId"), "properties.subnetResourceId")
    integrate(topo, app, subnet_of_id(topo, rid, "properties.subnetResourceId"), delegate=False)


# A site's settings written as child resources (as templates declare them), by type and name:
# what their PUT does to the site. https://learn.microsoft.com/azure/templates/microsoft.web/sites/config
SITE_SETTINGS = {("config", "web"): apply_config_web, ("config", "appsettings"): apply_app_settings,
                 ("networkconfig", "virtualnetwork"): apply_swift}


def set_config_web(state: LabState, call: Call) -> Response:
    """PUT or PATCH sites/{app}/config/web: the members given change, the others stay."""
    config = Obj(call.resource_body(), "").obj("properties")
    topo, app = _change_site(state, call, lambda topo, app: apply_config_web(topo, app, config))
    return resource_response(config_doc(topo, app, "web", site_config_wire(topo, app)))


def list_app_settings(state: LabState, call: Call) -> Response:
    topo, app = _site(state, call)
    return json_response(config_doc(topo, app, "appsettings", dict(app.app_settings)))


def put_app_settings(state: LabState, call: Call) -> Response:
    props = Obj(call.resource_body(), "").obj("properties")
    topo, app = _change_site(state, call, lambda topo, app: apply_app_settings(topo, app, props))
    return json_response(config_doc(topo, app, "appsettings", dict(app.app_settings)))


def slot_config_names(state: LabState, call: Call) -> Response:
    topo, app = _site(state, call)
    doc = {"id": f"{topo.id_of('web_apps', app)}/config/slotConfigNames", "name": "slotConfigNames",
           "type": f"{NS}/sites/config",
           "properties": {"appSettingNames": [], "connectionStringNames": [], "azureStorageConfigNames": []}}
    return json_response(doc)


def publish_xml(state: LabState, call: Call) -> Response:
    """POST sites/{app}/publishxml: az webapp create parses it as XML."""
    topo, app = _site(state, call)
    name = app.name.lower()
    user, pwd = f"${app.name}", guid(topo.id_of("web_apps", app)).replace("-", "")
    profiles = [("Web Deploy", "MSDeploy", f"{name}.scm.azurewebsites.net:443"),
                ("FTP", "FTP", "ftps://waws-prod-vnetlab.ftp.azurewebsites.windows.net/site/wwwroot"),
                ("Zip Deploy", "ZipDeploy", f"{name}.scm.azurewebsites.net:443")]
    rows = "".join(
        f"<publishProfile profileName={quoteattr(f'{app.name} - {label}')} publishMethod={quoteattr(method)} "
        f"publishUrl={quoteattr(url)} msdeploySite={quoteattr(app.name)} userName={quoteattr(user)} "
        f"userPWD={quoteattr(pwd)} destinationAppUrl={quoteattr(f'https://{name}.azurewebsites.net')} "
        f"SQLServerDBConnectionString=\"\" mySQLDBConnectionString=\"\" hostingProviderForumLink=\"\" "
        f"controlPanelLink=\"https://portal.azure.com\" webSystem=\"WebSites\"><databases /></publishProfile>"
        for label, method, url in profiles)
    return Response(f"<publishData>{rows}</publishData>", media_type="application/xml")


def swift_doc(topo: Topology, app: WebApp) -> dict:
    return config_doc(topo, app, "virtualNetwork",
                      {"subnetResourceId": topo.subnet_id(app.vnet_integration), "swiftSupported": True},
                      "networkConfig")


def get_swift(state: LabState, call: Call) -> Response:
    topo, app = _site(state, call)
    if not app.vnet_integration:
        raise NotFound(f"Web app {app.name} has no regional virtual network integration.")
    return resource_response(swift_doc(topo, app))


def put_swift(state: LabState, call: Call) -> Response:
    """PUT/PATCH sites/{app}/networkConfig/virtualNetwork {properties.subnetResourceId}: 200 only."""
    props = Obj(call.resource_body(), "").obj("properties")
    topo, app = _change_site(state, call, lambda topo, app: apply_swift(topo, app, props))
    return resource_response(swift_doc(topo, app))


def delete_swift(state: LabState, call: Call) -> Response:
    _change_site(state, call, lambda _topo, app: disconnect(app))
    return Response(status_code=200)


def vnet_info(topo: Topology, app: WebApp, owner_id: str, owner_type: str) -> dict:
    name = vnet_name(topo, app)
    return {"id": f"{owner_id}/virtualNetworkConnections/{name}", "name": name,
            "type": f"{NS}/{owner_type}/virtualNetworkConnections",
            "location": display_location(topo.location_of(app)),
            "properties": {"vnetResourceId": topo.subnet_id(app.vnet_integration), "certThumbprint": None,
                           "certBlob": None, "routes": None, "resyncRequired": False, "dnsServers": None,
                           "isSwift": True}}


def site_vnet_connections(state: LabState, call: Call) -> Response:
    """GET sites/{app}/virtualNetworkConnections[/{vnetName}]: a bare JSON array for the list."""
    topo, app = _site(state, call)
    items = [vnet_info(topo, app, topo.id_of("web_apps", app), "sites")] if app.vnet_integration else []
    if "conn" not in call.params:
        return json_response(items)
    hit = next((i for i in items if i["name"].lower() == call.params["conn"].lower()), None)
    if hit is None:
        raise NotFound(f"Virtual network connection {call.params['conn']} of web app {app.name} was not found.")
    return json_response(hit)


def plan_vnet_connections(state: LabState, call: Call) -> Response:
    """GET serverfarms/{plan}/virtualNetworkConnections (az appservice vnet-integration list): a bare array."""
    topo, plan = PLANS.lookup(state, call)
    plan_id = topo.id_of("app_service_plans", plan)
    seen, out = set(), []
    for app in topo.web_apps:
        if app.plan.lower() == plan.name.lower() and app.vnet_integration and app.vnet_integration.lower() not in seen:
            seen.add(app.vnet_integration.lower())
            out.append(vnet_info(topo, app, plan_id, "serverfarms"))
    return json_response(out)


def plan_vnet_integrations(state: LabState, call: Call) -> Response:
    """The plan's subnets with their address usage, in the GetVirtualNetworkIntegrations shape
    (azure-rest-api-specs, Microsoft.Web 2023-12-01 examples)."""
    topo, plan = PLANS.lookup(state, call)
    used = integration_addresses(topo)
    refs = sorted({a.vnet_integration.lower() for a in topo.web_apps
                   if a.plan.lower() == plan.name.lower() and a.vnet_integration})
    value = []
    for ref in refs:
        found = topo.subnet(ref)
        if not found:
            continue
        taken = sum(len(ips) for (p, r), ips in used.items() if r == ref)
        apps = [a for a in topo.web_apps if (a.vnet_integration or "").lower() == ref]
        plans = sorted({a.plan.lower() for a in apps})
        value.append({"subnetResourceId": topo.subnet_id(ref),
                      "subnetIpAllocation": {"subnetIpAddressesAvailable": usable_count(found[1].network) - taken,
                                             "subnetIpAddressesUsed": taken},
                      "resourceAllocation": {
                          "connectedServerFarmsId": [topo.id_of("app_service_plans", topo.find("app_service_plans", p))
                                                     for p in plans],
                          "connectedSitesId": [topo.id_of("web_apps", a) for a in apps]}})
    return json_response({"value": value})


def site_exists(state: LabState):
    return lambda name: state.read().find("web_apps", name) is not None


def router(state: LabState) -> Router:
    r = Router()
    PLANS.register(r, state)
    SITES.register(r, state)
    site = "subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.Web/sites/{name}"
    plan = "subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.Web/serverfarms/{name}"
    routes = [("GET", f"{site}/config/web", get_config_web), ("PUT PATCH", f"{site}/config/web", set_config_web),
              ("POST", f"{site}/config/appsettings/list", list_app_settings),
              ("PUT", f"{site}/config/appsettings", put_app_settings),
              ("GET PUT", f"{site}/config/slotConfigNames", slot_config_names),
              ("POST", f"{site}/publishxml", publish_xml),
              ("GET", f"{site}/networkConfig/virtualNetwork", get_swift),
              ("PUT PATCH", f"{site}/networkConfig/virtualNetwork", put_swift),
              ("DELETE", f"{site}/networkConfig/virtualNetwork", delete_swift),
              ("GET", f"{site}/virtualNetworkConnections", site_vnet_connections),
              ("GET", f"{site}/virtualNetworkConnections/{{conn}}", site_vnet_connections),
              ("GET", f"{plan}/virtualNetworkConnections", plan_vnet_connections),
              ("GET", f"{plan}/virtualNetworkIntegrations", plan_vnet_integrations)]
    for methods, pattern, handler in routes:
        r.add(methods, pattern, (lambda h: lambda call: h(state, call))(handler), blocking=True)
    return r

