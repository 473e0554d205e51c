"""PaaS services in the lab: where they listen, which routes lead to them, and whom they admit.

Each storage account, SQL server and key vault has one public address, taken in topology order
from its service tag's block in ``security.PLATFORM_TAGS`` (``Storage``, ``Sql``,
``AzureKeyVault``), so an NSG rule naming the tag matches the lab's resources of that service.
A private endpoint (PE) gives its target a second address, private, in the PE's subnet.

Routes (https://learn.microsoft.com/azure/virtual-network/virtual-networks-udr-overview):
- a PE adds a ``/32`` system route (next hop ``InterfaceEndpoint``) to every subnet of its VNet
  and of the directly peered VNets; it beats a UDR 0.0.0.0/0 by longest prefix. With route-table
  policies on the PE's subnet, a UDR whose prefix holds the PE's VNet range (equal or wider, not
  0.0.0.0/0) invalidates it.
  https://learn.microsoft.com/azure/private-link/disable-private-endpoint-network-policy
- a service endpoint on a subnet adds ``VirtualNetworkServiceEndpoint`` routes, on that subnet
  only, for the service's public addresses in the regions it covers (the subnet's region; Storage
  also the paired region). https://learn.microsoft.com/azure/virtual-network/virtual-network-service-endpoints-overview

Admission (``admit``) is the shared algorithm 0.2 of the reference: an Approved PE admits without
a firewall check; a closed public endpoint refuses; then the service's own rules, in its words.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from ..model import AzureError, Topology
from .restriction_headers import first_match


@dataclass(frozen=True)
class Service:
    """One PaaS service as the lab models it."""
    kind: str                  # the topology's list: storage_accounts | sql_servers | key_vaults | web_apps
    label: str                 # how the service names itself in a sentence
    endpoint_service: str      # the subnet's service endpoint that covers it (Microsoft.Storage, ...)
    tag: str                   # its service tag
    ports: frozenset[int]      # the TCP ports its frontends serve
    paired_regions: bool       # its service endpoint also covers the paired region (Storage only)


# Ports: Storage serves HTTP(S) and SMB (Azure Files); SQL's gateway 1433 (proxy policy, the only one
# through a PE: https://learn.microsoft.com/azure/azure-sql/database/private-endpoint-overview);
# Key Vault and web apps HTTP(S).
SERVICES = {s.kind: s for s in (
    Service("storage_accounts", "storage account", "Microsoft.Storage", "Storage", frozenset({80, 443, 445}), True),
    Service("sql_servers", "SQL server", "Microsoft.Sql", "Sql", frozenset({1433}), False),
    Service("key_vaults", "key vault", "Microsoft.KeyVault", "AzureKeyVault", frozenset({443}), False),
    Service("web_apps", "web app", "Microsoft.Web", "AppService", frozenset({80, 443}), False),
)}
PUBLIC_KINDS = ("storage_accounts", "sql_servers", "key_vaults", "web_apps")   # each has a public endpoint

# Azure's region pairs for the regions a lab is likely to use (both directions).
# https://learn.microsoft.com/azure/reliability/cross-region-replication-azure#azure-paired-regions
_PAIRS = (("westeurope", "northeurope"), ("eastus", "westus"), ("eastus2", "centralus"),
          ("westus2", "westcentralus"), ("westus3", "eastus"), ("northcentralus", "southcentralus"),
          ("uksouth", "ukwest"), ("francecentral", "francesouth"), ("germanywestcentral", "germanynorth"),
          ("swedencentral", "swedensouth"), ("switzerlandnorth", "switzerlandwest"), ("norwayeast", "norwaywest"),
          ("canadacentral", "canadaeast"), ("southeastasia", "eastasia"), ("australiaeast", "australiasoutheast"),
          ("japaneast", "japanwest"), ("koreacentral", "koreasouth"), ("centralindia", "southindia"),
          ("brazilsouth", "southcentralus"), ("southafricanorth", "southafricawest"),
          ("uaenorth", "uaecentral"))
PAIRED_REGION: dict[str, str] = {}
for _a, _b in _PAIRS:
    PAIRED_REGION.setdefault(_a, _b)
    PAIRED_REGION.setdefault(_b, _a)

# the policies under which a PE subnet's NSG, or its route table, applies to PE traffic
NSG_POLICIES = {"enabled", "networksecuritygroupenabled"}
ROUTE_TABLE_POLICIES = {"enabled", "routetableenabled"}
ZERO_GUID = "00000000-0000-0000-0000-000000000000"
PUBLIC_ACCESS_CLOSED = "publicNetworkAccess Disabled"   # the rule of a refusal by a closed public endpoint


def _security():
    """engine.security, imported when first used: it imports routing, which imports this module."""
    from . import security
    return security


# -- addresses ------------------------------------------------------------------------------------
def tag_pool(tag: str) -> list[IPv4Address]:
    """The addresses the lab gives a service's resources: the host addresses of its service tag's blocks
    (so the tag matches exactly the service's addresses, and no resource sits on a block's edge)."""
    return [ip for net in _security().PLATFORM_TAGS[tag] for ip in net.hosts()]


def public_addresses(topo: Topology) -> dict[tuple[str, str], IPv4Address]:
    """(kind, lower-case name) -> the resource's public address: the i-th resource of a service
    takes the i-th address of its service tag's block. A resource beyond the block has none
    (``check_public_addresses`` refuses such a lab)."""
    out: dict[tuple[str, str], IPv4Address] = {}
    for kind in PUBLIC_KINDS:
        pool = tag_pool(SERVICES[kind].tag)
        for ip, res in zip(pool, getattr(topo, kind, []), strict=False):
            out[(kind, res.name.lower())] = ip
    return out


def check_public_addresses(topo: Topology) -> None:
    """Refuse a lab with more resources of a service than its service tag's block has addresses
    (a vnetlab limit, not Azure's: code ``PaasAddressesExhausted`` chosen by vnetlab)."""
    for kind in PUBLIC_KINDS:
        blocks = _security().PLATFORM_TAGS[SERVICES[kind].tag]
        size = len(tag_pool(SERVICES[kind].tag))
        extra = getattr(topo, kind, [])[size:]
        if extra:
            label = SERVICES[kind].label
            raise AzureError(f"The lab gives each {label} a public address from its service tag "
                             f"{SERVICES[kind].tag} ({', '.join(str(n) for n in blocks)}): it holds {size} of them, "
                             f"and {label} {extra[0].name} is one more.", "PaasAddressesExhausted")


def private_endpoint_addresses(topo: Topology) -> dict[str, IPv4Address]:
    """Lower-case PE name -> its address: the address of its read-only NIC."""
    return {nic.private_endpoint.lower(): IPv4Address(nic.private_ip_address) for nic in topo.network_interfaces
            if nic.private_endpoint and nic.private_ip_address}


def connection_state(pe) -> str:
    return pe.connection_state


@dataclass(frozen=True)
class PaasEndpoint:
    """A PaaS resource listening at ``ip``: its public endpoint, or one of its private endpoints."""
    kind: str
    resource: Any
    ip: IPv4Address
    private_endpoint: Any = None     # the PE whose address ``ip`` is
    vnet: str | None = None          # the PE's VNet

    @property
    def service(self) -> Service:
        return SERVICES[self.kind]

    @property
    def name(self) -> str:
        return self.resource.name

    @property
    def approved(self) -> bool:
        return self.private_endpoint is None or connection_state(self.private_endpoint) == "Approved"

    def serves(self, protocol: str, port: int | None) -> bool:
        return protocol == "Tcp" and port in self.service.ports

    def describe(self) -> str:
        where = (f"private endpoint {self.private_endpoint.name}" if self.private_endpoint is not None
                 else "public endpoint")
        return f"{self.service.label} {self.name} ({where})"


class PaasIndex:
    """Where PaaS resources listen in one lab: public addresses, and PE addresses per VNet."""

    def __init__(self, topo: Topology, routing: "EndpointRouting | None" = None):
        self.topo = topo
        routing = routing or EndpointRouting(topo)
        self.public = routing.public
        self.public_at: dict[int, PaasEndpoint] = {}
        for (kind, low), ip in self.public.items():
            self.public_at[int(ip)] = PaasEndpoint(kind, topo.find(kind, low), ip)
        self.private_at: dict[tuple[str, int], PaasEndpoint] = {}
        for pe in topo.private_endpoints:
            target = topo.private_link_target(pe)
            ip = routing.pe_ips.get(pe.name.lower())
            if target is None or ip is None:
                continue
            vnet = pe.subnet.split("/")[0].lower()
            self.private_at[(vnet, int(ip))] = PaasEndpoint(target[0], target[1], ip, pe, vnet)

    def endpoints(self) -> list[PaasEndpoint]:
        """Every public endpoint, then every PE address, in topology order."""
        return list(self.public_at.values()) + list(self.private_at.values())


def endpoint_at(view, ip, vnet: str | None = None) -> PaasEndpoint | None:
    """The PaaS resource listening at ``ip``: a public address, or a PE address (in ``vnet`` when
    given, else in any VNet). ``view`` is a ``LabView``."""
    value = int(IPv4Address(ip))
    found = view.paas.public_at.get(value)
    if found is not None:
        return found
    if vnet is not None:
        return view.paas.private_at.get((vnet.lower(), value))
    return next((ep for (_, at), ep in view.paas.private_at.items() if at == value), None)


# -- routes -----------------------------------------------------------------------------------------
def _endpoint_services(subnet) -> list[tuple[str, list[str] | None]]:
    """(service, locations or None) of a subnet's service endpoints; ARM's objects or plain names."""
    out = []
    for se in subnet.service_endpoints:
        if isinstance(se, str):
            base, dot, scope = se.rpartition(".")
            # Microsoft.Storage.Global: the cross-region storage endpoint, every region
            out.append((base, ["*"]) if dot and scope.lower() == "global" else (se, None))
        else:
            locations = [str(x).lower().replace(" ", "") for x in (getattr(se, "locations", None) or [])]
            out.append((se.service, locations or None))
    return out


def endpoint_regions(service: Service, region: str, locations: list[str] | None) -> set[str]:
    """The regions a subnet's service endpoint covers: the ``locations`` it names, else the
    subnet's region (and, for Storage, its paired region). ``*`` covers all."""
    if locations:
        return {"*"} if "*" in locations else set(locations)
    regions = {region}
    if service.paired_regions and region in PAIRED_REGION:
        regions.add(PAIRED_REGION[region])
    return regions


def subnet_endpoint_covers(topo: Topology, vnet, subnet, kind: str, resource) -> bool:
    """The subnet has the service endpoint of ``kind``'s service for the resource's region: its
    traffic to the resource takes the endpoint (and the resource sees the subnet's identity)."""
    service = SERVICES[kind]
    region = topo.location_of(vnet)
    for name, locations in _endpoint_services(subnet):
        if name.lower() == service.endpoint_service.lower():
            covered = endpoint_regions(service, region, locations)
            return "*" in covered or topo.location_of(resource) in covered
    return False


def service_endpoint_prefixes(topo: Topology, vnet, subnet,
                              addresses: dict[tuple[str, str], IPv4Address] | None = None) -> list[str]:
    """The prefixes of the subnet's ``VirtualNetworkServiceEndpoint`` routes: each public address of a
    resource its service endpoints cover (a /32 each: the lab's addresses of that service)."""
    if not subnet.service_endpoints:
        return []
    if addresses is None:
        addresses = public_addresses(topo)
    out = []
    for kind in PUBLIC_KINDS:
        for res in getattr(topo, kind, []):
            ip = addresses.get((kind, res.name.lower()))
            if ip is not None and subnet_endpoint_covers(topo, vnet, subnet, kind, res):
                out.append(f"{ip}/32")
    return out


class EndpointRouting:
    """What the endpoint routes of every subnet need, computed once per lab: the PaaS public
    addresses, and each PE's address with the PEs per VNet."""

    def __init__(self, topo: Topology):
        self.topo = topo
        self.public = public_addresses(topo)
        self.pe_ips = private_endpoint_addresses(topo) if topo.private_endpoints else {}
        self.pes_in: dict[str, list] = {}
        for pe in topo.private_endpoints:
            if pe.name.lower() in self.pe_ips:
                self.pes_in.setdefault(pe.subnet.split("/")[0].lower(), []).append(pe)

    def private_endpoint_routes(self, vnet, peers) -> dict[str, Any]:
        """``a.b.c.d/32`` -> the PE whose route a subnet of ``vnet`` gets: the PEs in ``vnet`` and in
        its connected peers (``peers``: ``[(remote, peering)]``)."""
        out = {}
        for name in [vnet.name.lower()] + [remote.name.lower() for remote, _ in peers]:
            for pe in self.pes_in.get(name, []):
                out[f"{self.pe_ips[pe.name.lower()]}/32"] = pe
        return out

    def invalidated(self, pe, udr_prefix: str) -> bool:
        return invalidates_private_endpoint_route(self.topo, pe, self.pe_ips[pe.name.lower()], udr_prefix)


def invalidates_private_endpoint_route(topo: Topology, pe, pe_ip: IPv4Address, udr_prefix: str) -> bool:
    """A UDR overrides a PE's /32 only with route-table policies on the PE's subnet and a prefix equal
    to or wider than the PE VNet's range holding it; 0.0.0.0/0 never does.
    https://learn.microsoft.com/azure/private-link/disable-private-endpoint-network-policy"""
    found = topo.subnet(pe.subnet)
    if found is None or found[1].private_endpoint_network_policies.lower() not in ROUTE_TABLE_POLICIES:
        return False
    try:
        udr = IPv4Network(udr_prefix, strict=False)
    except ValueError:
        return False
    ip = pe_ip
    space = next((n for n in found[0].networks if ip in n), None)
    return (udr.prefixlen > 0 and ip in udr and space is not None and udr.prefixlen <= space.prefixlen)


def pe_nsg_applies(topo: Topology, pe) -> bool:
    """The PE subnet's NSG filters PE traffic only with NSG policies on that subnet."""
    found = topo.subnet(pe.subnet)
    return found is not None and found[1].private_endpoint_network_policies.lower() in NSG_POLICIES


# -- admission ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Admission:
    """What the service did with a connection that reached it: admitted (``rule`` says by what) or
    refused with its own error (``code``, ``http_status`` for HTTP services, ``text``)."""
    allowed: bool
    rule: str
    code: str | None = None
    http_status: int | None = None
    text: str | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in vars(self).items() if v is not None}


def kind_of(topo: Topology, resource) -> str:
    if isinstance(resource, PaasEndpoint):
        return resource.kind
    for kind in SERVICES:
        if any(r is resource for r in getattr(topo, kind, [])):
            return kind
    raise ValueError(f"{resource!r} is not a PaaS resource of the lab")


def admit(view, resource, arrived_at_ip, source_ip_seen, source_subnet_id: str | None,
          source_region: str | None = None, server_name: str | None = None,
          headers: dict[str, str] | None = None) -> Admission:
    """Algorithm 0.2: whether ``resource`` (a model or a ``PaasEndpoint``) admits a connection that
    arrived at ``arrived_at_ip`` from ``source_ip_seen``; ``source_subnet_id`` is the client subnet's
    id when it came through that subnet's service endpoint; ``source_region`` the caller's region
    (Storage ignores IP rules for callers in its own region); ``server_name`` the DNS name the
    client connected to (None: it used an address, SQL then takes the server from ``user@server``;
    a web app's scm site is asked by its name); ``headers``: the HTTP request's (web apps' rules)."""
    return first_match(admission_cases(view, resource, arrived_at_ip, source_ip_seen, source_subnet_id,
                                       source_region, server_name), headers or {})


def admission_cases(view, resource, arrived_at_ip, source_ip_seen, source_subnet_id: str | None,
                    source_region: str | None = None, server_name: str | None = None) -> list[tuple[dict, Admission]]:
    """:func:`admit` by the request's headers: ``(the headers asked for, the admission)`` in the order
    the service evaluates them, the last case asking for none (``restriction_headers.first_match``
    picks a request's). Only a web app's access restrictions ask for headers; every other answer is
    one case. The emulated front end holds these cases and picks with the real request's headers."""
    topo = view.topo
    kind = kind_of(topo, resource)
    res = resource.resource if isinstance(resource, PaasEndpoint) else resource
    ip = IPv4Address(arrived_at_ip)
    source = IPv4Address(source_ip_seen)
    if kind == "web_apps" and not res.running:
        return [({}, web_app_stopped(res))]
    if kind == "sql_servers" and server_name and not sql_gateway_takes(res, server_name):
        return [({}, sql_server_name_refusal(res, server_name))]
    pe = next((ep.private_endpoint for (_, at), ep in view.paas.private_at.items()
               if at == int(ip) and ep.resource is res), None)
    if pe is not None:
        return [({}, _private_endpoint_admission(pe))]
    if kind == "web_apps":
        return _site_cases(topo, res, source, source_subnet_id, server_name)
    if _public_access(res) == "Disabled":
        return [({}, _refusal(topo, kind, res, source, PUBLIC_ACCESS_CLOSED, closed=True))]
    if kind == "sql_servers":
        return [({}, _sql_firewall(topo, res, source, source_subnet_id))]
    return [({}, _acl_firewall(topo, kind, res, source, source_subnet_id, source_region))]


def _private_endpoint_admission(pe) -> Admission:
    """"You don't need any firewall access rules to allow traffic for private endpoints"; only an
    Approved connection carries traffic.
    https://learn.microsoft.com/azure/storage/common/storage-network-security
    https://learn.microsoft.com/azure/private-link/private-endpoint-overview"""
    state = connection_state(pe)
    if state != "Approved":
        return Admission(False, f"private endpoint {pe.name}: connection {state}, only Approved passes traffic")
    return Admission(True, f"private endpoint {pe.name} (Approved): no firewall check")


def _public_access(res) -> str:
    return (getattr(res, "public_network_access", None) or "Enabled").capitalize()


def _acls(kind: str, res):
    return getattr(res, "network_rule_set" if kind == "storage_accounts" else "network_acls", None)


def _subnet_ids(topo: Topology, rules) -> list[tuple[str, str]]:
    """(rule label, lower-case subnet id) of VNet rules written as VNET/SUBNET, an ARM id, or objects
    with ``subnet``/``id``."""
    out = []
    for rule in rules or []:
        ref = rule if isinstance(rule, str) else (getattr(rule, "subnet", None) or getattr(rule, "id", None))
        if not ref:
            continue
        rid = ref if ref.startswith("/") else topo.subnet_id(ref)
        label = getattr(rule, "name", None) or (ref if not ref.startswith("/") else "/".join(ref.split("/")[-3::2]))
        out.append((label, rid.lower()))
    return out


def _ip_rule_match(rules, source: IPv4Address) -> str | None:
    for rule in rules or []:
        value = rule if isinstance(rule, str) else (getattr(rule, "value", None) or getattr(rule, "ip_address", ""))
        try:
            if source in IPv4Network(str(value).strip(), strict=False):
                return str(value)
        except ValueError:
            continue
    return None


def _acl_firewall(topo: Topology, kind: str, res, source: IPv4Address, subnet_id: str | None,
                  source_region: str | None) -> Admission:
    """Storage ``networkAcls`` and Key Vault ``networkAcls``: default action, VNet rules, IP rules.
    https://learn.microsoft.com/azure/storage/common/storage-network-security
    https://learn.microsoft.com/azure/key-vault/general/network-security"""
    acls = _acls(kind, res)
    field = "networkAcls"
    if acls is None or (getattr(acls, "default_action", None) or "Allow").capitalize() == "Allow":
        return Admission(True, f"{field}.defaultAction Allow")
    if subnet_id is not None:
        rule = next((label for label, rid in _subnet_ids(topo, acls.virtual_network_rules) if rid == subnet_id.lower()),
                    None)
        if rule is not None:
            return Admission(True, f"{field}.virtualNetworkRules {rule}")
    same_region = (kind == "storage_accounts" and source_region is not None
                   and source_region == topo.location_of(res))
    if _security().is_public(int(source)) and not same_region:  # IP rules hold public addresses only
        match = _ip_rule_match(acls.ip_rules, source)
        if match is not None:
            return Admission(True, f"{field}.ipRules {match}")
    why = "no rule admits the source, defaultAction Deny"
    if same_region and _ip_rule_match(acls.ip_rules, source):
        # "IP network rules have no effect on requests originating from the same Azure region"
        why = ("ipRules have no effect on requests from the account's own region (defaultAction Deny): "
               "use a virtual network rule or a private endpoint")
    return _refusal(topo, kind, res, source, why)


def _sql_firewall(topo: Topology, res, source: IPv4Address, subnet_id: str | None) -> Admission:
    """SQL's server firewall denies until a rule admits: VNet rules (the subnet's service endpoint),
    the 0.0.0.0 rule (any Azure address), IP ranges. A subnet with the endpoint but no VNet rule gets
    40914, any other source 40615.
    https://learn.microsoft.com/azure/azure-sql/database/firewall-configure
    https://learn.microsoft.com/azure/azure-sql/database/vnet-service-endpoint-rule-overview"""
    if subnet_id is not None:
        for rule in getattr(res, "virtual_network_rules", []) or []:
            labels = _subnet_ids(topo, [rule])
            if labels and labels[0][1] == subnet_id.lower():
                return Admission(True, f"virtualNetworkRules {labels[0][0]}")
    for rule in getattr(res, "firewall_rules", []) or []:
        start, end = IPv4Address(rule.start_ip_address), IPv4Address(rule.end_ip_address)
        if start == end == IPv4Address("0.0.0.0"):
            # "Allow Azure services and resources to access this server": every source in the lab is an Azure address
            return Admission(True, f"firewallRules {rule.name} (0.0.0.0: any Azure address)")
        if subnet_id is None and start <= source <= end:
            return Admission(True, f"firewallRules {rule.name} ({start}-{end})")
    name = res.name
    if subnet_id is not None:
        return Admission(False, "the subnet's service endpoint reaches the server, no virtual network rule admits it",
                         "40914", None, f"Cannot open server '{name}' requested by the login. "
                         "Client is not allowed to access the server.")
    return Admission(False, "no firewall rule holds the source address", "40615", None,
                     f"Cannot open server '{name}' requested by the login. Client with IP address '{source}' is not "
                     "allowed to access the server. To enable access, use the Azure Management Portal or run "
                     "sp_set_firewall_rule on the master database to create a firewall rule for this IP address or "
                     "address range. It may take up to five minutes for this change to take effect.")


def _site_cases(topo: Topology, app, source: IPv4Address, subnet_id: str | None,
                server_name: str | None) -> list[tuple[dict, Admission]]:
    """A web app's public endpoint: its public network access, then its access restrictions by the
    request's headers (engine.inbound)."""
    from . import inbound
    scm = inbound.is_scm_name(server_name)
    site = f"{'scm site' if scm else 'site'}"
    is_open, why = inbound.public_access(topo, app)
    if not is_open:
        return [({}, Admission(False, PUBLIC_ACCESS_CLOSED + f" ({why})", WEB_FORBIDDEN_CODE, 403, WEB_FORBIDDEN_TEXT))]
    return [(wanted, Admission(True, f"{site}: {rule}") if allowed else
             Admission(False, f"{site}: {rule}", WEB_FORBIDDEN_CODE, 403, WEB_FORBIDDEN_TEXT))
            for wanted, (allowed, rule) in inbound.cases(topo, app, scm, source, subnet_id)]


# App Service's refusal: "403 Ip Forbidden", the page's words (reference azure-paas-dns.md section 5)
WEB_FORBIDDEN_CODE = "IpForbidden"
WEB_FORBIDDEN_TEXT = "Ip Forbidden: Error 403 - Forbidden. The web app you have attempted to reach has blocked your access."
# A stopped app's front end answers "403 Site Disabled" with the page "Error 403 - This web app is stopped."
# (observed: reference azure-paas-dns.md section 5; tfsaggregator-webhooks#25 for the reason phrase)
WEB_STOPPED_CODE = "SiteDisabled"
WEB_REASON_PHRASES = {WEB_FORBIDDEN_CODE: "Ip Forbidden", WEB_STOPPED_CODE: "Site Disabled"}   # the HTTP status line's
WEB_STOPPED_RULE = "the web app is stopped"
WEB_STOPPED_TEXT = ("Site Disabled: Error 403 - This web app is stopped. The web app you have attempted to reach is "
                    "currently stopped and does not accept any requests.")


def web_app_stopped(app) -> Admission:
    """A stopped app (`az webapp stop`) runs no code: its front end answers every request, main and scm
    site, public or private endpoint, whatever the rules, with 403 "This web app is stopped" (the
    order before the rules is the lab's choice: the docs do not say).
    https://learn.microsoft.com/cli/azure/webapp#az-webapp-stop"""
    return Admission(False, f"{WEB_STOPPED_RULE} (az webapp start {app.name} starts it)", WEB_STOPPED_CODE, 403,
                     WEB_STOPPED_TEXT)


SQL_SERVER_NAME_RULE = "the SQL gateway takes the server from <server>.database.windows.net only"


def sql_gateway_names(res) -> list[str]:
    """The server names the SQL gateway takes from a login: "Clients need to connect to the server using
    the server's FQDN. Connection attempts made directly to the IP address or using the private link FQDN
    shall fail." https://learn.microsoft.com/azure/azure-sql/database/private-endpoint-overview"""
    return [f"{res.name.lower()}.database.windows.net"]


def sql_gateway_takes(res, server_name: str) -> bool:
    return server_name.rstrip(".").lower() in sql_gateway_names(res)


def sql_server_name_refusal(res, server_name: str) -> Admission:
    """The gateway's 40531 (observed text; the number for the private link name is vnetlab's choice)."""
    return Admission(False, f"{SQL_SERVER_NAME_RULE} (the client used {server_name})", "40531", None,
                     "Server name cannot be determined. It must appear as the first segment of the server's dns "
                     "name (servername.database.windows.net). Some libraries do not send the server name, in which "
                     "case the server name must be included as part of the user name (username@servername). In "
                     "addition, if both formats are used, the server names must match.")


SQL_47073 = ("Reason: An instance-specific error occurred while establishing a connection to SQL Server. Connection "
             "was denied since Deny Public Network Access is set to Yes "
             "(https://docs.microsoft.com/azure/azure-sql/database/connectivity-settings#deny-public-network-access). "
             "To connect to this server, use the Private Endpoint from inside your virtual network "
             "(https://docs.microsoft.com/azure/sql-database/sql-database-private-endpoint-overview"
             "#how-to-set-up-private-link-for-azure-sql-database).")
STORAGE_DENIED = "This request is not authorized to perform this operation."


def _refusal(topo: Topology, kind: str, res, source: IPv4Address, why: str, closed: bool = False) -> Admission:
    """The service's own error for a refused connection (texts as the services send them; see the
    reference azure-paas-dns.md sections 2 and 3)."""
    if kind == "sql_servers":  # only a closed public endpoint reaches here for SQL
        return Admission(False, why, "47073", None, SQL_47073)
    if kind == "storage_accounts":
        return Admission(False, why, "AuthorizationFailure", 403, STORAGE_DENIED)
    vault = f"Vault: {res.name};location={topo.location_of(res)}"
    if closed:
        return Admission(False, why, "ForbiddenByConnection", 403,
                         "Public network access is disabled and request is not from a trusted service nor via an "
                         f"approved private link.\r\nCaller: appid={ZERO_GUID};oid={ZERO_GUID}\r\n{vault}")
    return Admission(False, why, "ForbiddenByFirewall", 403,
                     f"Client address is not authorized and caller is not a trusted service.\r\nClient address: "
                     f"{source}\r\nCaller: appid={ZERO_GUID};oid={ZERO_GUID};iss=https://sts.windows.net/{ZERO_GUID}/"
                     f"\r\n{vault}")


def http_body(admission: Admission, request_id: str | None = None, when: str = "2026-01-01T00:00:00.0000000Z") -> str:
    """The body an HTTP service sends with a refusal: Storage's XML error, Key Vault's JSON error."""
    if admission.code in (WEB_FORBIDDEN_CODE, WEB_STOPPED_CODE):
        from .inbound import forbidden_page, stopped_page
        return forbidden_page() if admission.code == WEB_FORBIDDEN_CODE else stopped_page()
    if admission.code == "AuthorizationFailure":
        rid = request_id or str(uuid.uuid4())
        return ('<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthorizationFailure</Code><Message>'
                f"{admission.text}\nRequestId:{rid}\nTime:{when}</Message></Error>")
    return json.dumps({"error": {"code": "Forbidden", "message": admission.text,
                                 "innererror": {"code": admission.code}}})
