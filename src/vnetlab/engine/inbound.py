"""Inbound to a web app: whom its front end admits, on its public endpoint and on its private endpoints.

The order is Azure's (https://learn.microsoft.com/azure/app-service/overview-access-restrictions):
1. Traffic through an Approved private endpoint goes "directly to the site without any
   restrictions" (``engine.paas.admit`` decides that before asking here).
2. The public endpoint: ``publicNetworkAccess`` Disabled refuses; unset, it is enabled "unless a
   private endpoint exists", which disables it; Enabled reopens it with private endpoints.
3. Then the rules of the site the request is for (the main site, or the scm/Kudu site, which uses
   the main site's rules when ``scmIpSecurityRestrictionsUseMain``), by priority, ties in the
   order listed; the first rule whose source and headers match decides.
4. No rule matches: the default action; unset, Allow when the site has no rule, Deny once it has one.

A refusal is App Service's ``403 Ip Forbidden`` page, with the ``x-ms-forbidden-ip`` header naming
the caller (the reference azure-paas-dns.md section 5 quotes it). The site is told by the name the
client connected to: ``<app>.scm.azurewebsites.net`` (or its privatelink form) is the scm site.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from ..model import Topology
from ..model.web import ANY_SOURCE, ANY_VNETS, IpSecurityRestriction
from .restriction_headers import first_match

IP_FORBIDDEN = "Ip Forbidden"             # the HTTP reason phrase of the refusal
FORBIDDEN_TITLE = "Error 403 - Forbidden"
FORBIDDEN_TEXT = "The web app you have attempted to reach has blocked your access."
FORBIDDEN_HEADER = "x-ms-forbidden-ip"


def is_scm_name(server_name: str | None) -> bool:
    """The request is for the scm (Kudu) site: ``<app>.scm.azurewebsites.net``, or its privatelink name."""
    low = (server_name or "").rstrip(".").lower()
    return low.endswith(".scm.azurewebsites.net") or low.endswith(".scm.privatelink.azurewebsites.net")


def public_access(topo: Topology, app) -> tuple[bool, str]:
    """(whether the site's public endpoint is open, why). Unset: open "unless a private endpoint
    exists after which it's implicitly disabled"; a private endpoint to a slot (``sites-<slot>``)
    closes that slot, not the site.
    https://learn.microsoft.com/azure/app-service/overview-access-restrictions#app-access"""
    if app.public_network_access == "Disabled":
        return False, "publicNetworkAccess Disabled"
    if app.public_network_access == "Enabled":
        return True, "publicNetworkAccess Enabled"
    pes = [pe for pe in topo.private_endpoints_to("web_apps", app.name) if pe.group_id.lower() == "sites"]
    if pes:
        return False, (f"publicNetworkAccess unset and private endpoint {pes[0].name} exists: public access is "
                       "implicitly disabled")
    return True, "publicNetworkAccess unset (Enabled: the site has no private endpoint)"


def site_rules(app, scm: bool) -> tuple[list[IpSecurityRestriction], str | None, str]:
    """(the rules, the default action as set, the label) of the site a request is for."""
    if scm and not app.scm_ip_security_restrictions_use_main:
        return app.scm_ip_security_restrictions, app.scm_ip_security_restrictions_default_action, \
            "scmIpSecurityRestrictions"
    label = "ipSecurityRestrictions" + (" (scmIpSecurityRestrictionsUseMain)" if scm else "")
    return app.ip_security_restrictions, app.ip_security_restrictions_default_action, label


def default_action(rules: list, configured: str | None) -> str:
    """"If no rules are defined, the default is Allow; once a rule exists, unmatched traffic is denied"
    unless the default action says otherwise.
    https://learn.microsoft.com/azure/app-service/overview-access-restrictions#unmatched-rule"""
    if configured is not None:
        return configured
    return "Deny" if rules else "Allow"


def ordered(rules: list[IpSecurityRestriction]) -> list[IpSecurityRestriction]:
    """By priority; ties "in the order they're listed when returned from the Azure Resource Manager API"
    (a stable sort keeps the list's order)."""
    return sorted(rules, key=lambda r: r.priority)


def source_matches(rule: IpSecurityRestriction, source: IPv4Address, subnet_id: str | None,
                   topo: Topology) -> bool:
    """Whether the caller is the rule's source.

    - subnet (service endpoint) rules match only callers whose subnet reached the app through its
      ``Microsoft.Web`` service endpoint (``subnet_id``: that subnet);
    - ``AnyVnets`` matches every such caller;
    - IP ranges match public sources: "IP-based rules with private ranges work only in an App Service
      Environment", a multi-tenant app sees service endpoint traffic by its subnet;
    - service tags match the tag's addresses (the lab's: security.PLATFORM_TAGS).
    https://learn.microsoft.com/azure/app-service/overview-access-restrictions#access-restriction-rules"""
    if rule.vnet_subnet_resource_id is not None:
        return subnet_id is not None and topo.subnet_id(rule.vnet_subnet_resource_id).lower() == subnet_id.lower()
    if rule.ip_address == ANY_SOURCE:
        return True
    if rule.ip_address == ANY_VNETS:
        return subnet_id is not None
    if rule.tag == "ServiceTag":
        from .security import PLATFORM_TAGS, tag_key
        return any(source in net for tag in rule.sources() for net in PLATFORM_TAGS.get(tag_key(tag), ()))
    if subnet_id is not None:
        return False
    return any(source in IPv4Network(cidr) for cidr in rule.sources())


def rule_label(rule: IpSecurityRestriction) -> str:
    source = rule.vnet_subnet_resource_id or rule.ip_address
    name = f"{rule.name} " if rule.name else ""
    headers = "".join(f", {k}: {','.join(v)}" for k, v in rule.headers.items())
    return f"{name}(priority {rule.priority}, {rule.action} {source}{headers})"


def cases(topo: Topology, app, scm: bool, source: IPv4Address,
          subnet_id: str | None) -> list[tuple[dict[str, list[str]], tuple[bool, str]]]:
    """What the main or scm site of ``app`` decides for a request on its public endpoint from ``source``
    (the address the app sees; ``subnet_id`` when it came through the caller subnet's Microsoft.Web
    service endpoint), by the request's headers: ``(the headers a rule asks for, (allowed, the rule that
    decided, in words))`` for each rule whose source matches, by priority, up to the first that asks for
    no header; then the default action. The request gets the first case whose headers it carries
    (``restriction_headers.first_match``): the trace asks it with the request's headers, the emulated
    front end with the real request's."""
    rules, configured, label = site_rules(app, scm)
    out: list[tuple[dict[str, list[str]], tuple[bool, str]]] = []
    for rule in ordered(rules):
        if source_matches(rule, source, subnet_id, topo):
            wanted = {name: list(values) for name, values in rule.headers.items() if values}
            out.append((wanted, (rule.action == "Allow", f"{label} {rule_label(rule)}")))
            if not wanted:
                return out
    action = default_action(rules, configured)
    setting = label.split(" ")[0] + "DefaultAction"
    why = f"{setting} {action}" if configured is not None else \
        f"{setting} unset: {action} ({'the site has no rule' if not rules else 'the site has rules'})"
    out.append(({}, (action == "Allow", f"{label}: no rule matches, {why}")))
    return out


def evaluate(topo: Topology, app, scm: bool, source: IPv4Address, subnet_id: str | None,
             headers: dict[str, str] | None = None) -> tuple[bool, str]:
    """(allowed, the rule that decided, in words) for a request with ``headers`` (see :func:`cases`)."""
    return first_match(cases(topo, app, scm, source, subnet_id), headers or {})


def forbidden_page() -> str:
    """The page App Service sends with a 403 Ip Forbidden."""
    return (f"<!DOCTYPE html><html><head><title>{FORBIDDEN_TITLE}</title></head><body><h1>{FORBIDDEN_TITLE}</h1>"
            f"<p>{FORBIDDEN_TEXT}</p></body></html>")


STOPPED_TITLE = "Error 403 - This web app is stopped."
STOPPED_TEXT = ("The web app you have attempted to reach is currently stopped and does not accept any requests. "
                "Please try to reload the page or visit it again soon.")


def stopped_page() -> str:
    """The page App Service sends for a stopped app (403 Site Disabled)."""
    return (f"<!DOCTYPE html><html><head><title>{STOPPED_TITLE}</title></head><body><h1>{STOPPED_TITLE}</h1>"
            f"<p>{STOPPED_TEXT}</p></body></html>")
