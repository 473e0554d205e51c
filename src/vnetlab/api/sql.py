"""Microsoft.Sql/servers with their firewallRules and virtualNetworkRules: the logical server's public
endpoint (``<server>.database.windows.net``), ``publicNetworkAccess``, its IP firewall (deny unless a
rule matches) and its VNet rules.

Firewall rules cannot change while public network access is disabled (error 42101): validation
refuses it, as it refuses any change of the lab.
https://learn.microsoft.com/rest/api/sql/servers
https://learn.microsoft.com/azure/azure-sql/database/firewall-configure
https://learn.microsoft.com/azure/azure-sql/database/vnet-service-endpoint-rule-overview
"""

from __future__ import annotations

from ..model import Topology
from ..model.paas import SqlFirewallRule, SqlServer, SqlVirtualNetworkRule
from .arm import Router
from .network import subnet_of_id
from .paas_common import endpoint_connections
from .resource import Child, TopLevel, envelope, location_of
from .state import LabState, Obj, require

NS = "Microsoft.Sql"
TYPE = f"{NS}/servers"


def server_wire(topo: Topology, server: SqlServer) -> dict:
    rid = topo.id_of("sql_servers", server)
    props = {"version": "12.0", "state": "Ready", "fullyQualifiedDomainName": f"{server.name}.database.windows.net",
             "privateEndpointConnections": endpoint_connections(topo, "sql_servers", server),
             "minimalTlsVersion": "1.2", "publicNetworkAccess": server.public_network_access,
             "restrictOutboundNetworkAccess": "Disabled", "administrators": None}
    return envelope(rid, server.name, TYPE, topo.location_of(server), server.tags, props, kind="v12.0")


def server_from_wire(topo: Topology, body: Obj, current: SqlServer | None, rg: str, name: str) -> SqlServer:
    """The server's own properties; its firewall and VNet rules are child resources and stay. The
    administrator login and password are accepted and not kept (the lab has no databases)."""
    props = body.obj("properties")
    return SqlServer(name=name, resource_group=rg, tags=dict(body.obj("tags").data),
                     location=location_of(body, TYPE, current and topo.location_of(current)),
                     public_network_access=props.str("publicNetworkAccess",
                                                     current.public_network_access if current else "Enabled"),
                     firewall_rules=list(current.firewall_rules) if current else [],
                     virtual_network_rules=list(current.virtual_network_rules) if current else [])


def firewall_rule_wire(topo: Topology, server: SqlServer, rule: SqlFirewallRule) -> dict:
    rid = topo.id_of("sql_servers", server, "firewallRules", rule.name)
    return envelope(rid, rule.name, f"{TYPE}/firewallRules", None, None,
                    {"startIpAddress": rule.start_ip_address, "endIpAddress": rule.end_ip_address})


def firewall_rule_from_wire(topo: Topology, body: Obj, server: SqlServer, current, name: str) -> SqlFirewallRule:
    props = body.obj("properties")
    return SqlFirewallRule(name=name, start_ip_address=require(props.str("startIpAddress"), "properties.startIpAddress"),
                           end_ip_address=require(props.str("endIpAddress"), "properties.endIpAddress"))


def vnet_rule_wire(topo: Topology, server: SqlServer, rule: SqlVirtualNetworkRule) -> dict:
    rid = topo.id_of("sql_servers", server, "virtualNetworkRules", rule.name)
    return envelope(rid, rule.name, f"{TYPE}/virtualNetworkRules", None, None,
                    {"virtualNetworkSubnetId": topo.subnet_id(rule.subnet),
                     "ignoreMissingVnetServiceEndpoint": rule.ignore_missing_vnet_service_endpoint, "state": "Ready"})


def vnet_rule_from_wire(topo: Topology, body: Obj, server: SqlServer, current, name: str) -> SqlVirtualNetworkRule:
    props = body.obj("properties")
    rid = require(props.str("virtualNetworkSubnetId"), "properties.virtualNetworkSubnetId")
    return SqlVirtualNetworkRule(name=name, subnet=subnet_of_id(topo, rid, "properties.virtualNetworkSubnetId"),
                                 ignore_missing_vnet_service_endpoint=props.bool("ignoreMissingVnetServiceEndpoint",
                                                                                 False))


SERVERS = TopLevel("sql_servers", NS, "servers", server_wire, server_from_wire)
FIREWALL_RULES = Child(SERVERS, "firewallRules", lambda s: s.firewall_rules, firewall_rule_wire,
                       firewall_rule_from_wire)
VNET_RULES = Child(SERVERS, "virtualNetworkRules", lambda s: s.virtual_network_rules, vnet_rule_wire,
                   vnet_rule_from_wire)


def router(state: LabState) -> Router:
    r = Router()
    for kind in (SERVERS, FIREWALL_RULES, VNET_RULES):
        kind.register(r, state)
    return r
