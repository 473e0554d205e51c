"""Every reason a trace can end with, produced by a lab and asserted by name.

The test is parametrized over the :class:`Reason` enum itself: a reason added to the engine without
a case here fails (``test_every_reason_has_a_case``), and so does a case that no longer produces its
reason. Each case is the smallest change to the field note's lab that makes Azure answer that way.
"""

import copy
import json

import pytest
from conftest import NOTE, build
from test_gateway import lab as vpn_lab

from vnetlab.engine.network import LabView
from vnetlab.engine.trace import Action, Reason, StepKind, Verdict, _Done, trace

INTEGRATION_IP = "10.0.0.190"  # the note's app1: the top usable address of vnet1/integration (10.0.0.128/26)


def note(**changes) -> dict:
    doc = copy.deepcopy(NOTE)
    doc.update(copy.deepcopy(changes))
    return doc


def with_route(doc: dict, route: dict, subnet: int = 0) -> dict:
    """``doc`` with a route table holding ``route`` on vnet1's subnet number ``subnet``."""
    doc.setdefault("route_tables", []).append({"name": f"rt-{route['name']}", "routes": [route]})
    doc["virtual_networks"][0]["subnets"][subnet]["route_table"] = f"rt-{route['name']}"
    return doc


def appliance(name: str, ip: str, forwarding: bool = True) -> dict:
    return {"name": name, "subnet": "vnet1/default", "private_ip_address": ip, "enable_ip_forwarding": forwarding}


def to_appliance(name: str, prefix: str, ip: str) -> dict:
    return {"name": name, "address_prefix": prefix, "next_hop_type": "VirtualAppliance", "next_hop_ip_address": ip}


def hub(vnet1_peering: dict | None = None, hub_peering: dict | None = None) -> dict:
    """The note's vnet1 peered with a hub VNet (10.1.0.0/24) holding vm2 at 10.1.0.4."""
    doc = note()
    doc["virtual_networks"][0]["peerings"] = [{"name": "to-hub", "remote_virtual_network": "hub",
                                                **(vnet1_peering or {})}]
    doc["virtual_networks"].append({"name": "hub", "address_space": ["10.1.0.0/24"],
                                    "subnets": [{"name": "s", "address_prefix": "10.1.0.0/27"}],
                                    "peerings": [{"name": "to-vnet1", "remote_virtual_network": "vnet1",
                                                  **(hub_peering or {})}]})
    doc["virtual_machines"].append({"name": "vm2", "subnet": "hub/s", "private_ip_address": "10.1.0.4",
                                    "services": [{"port": 80}]})
    return doc


def forwarded_into_spoke(allow_forwarded: bool) -> dict:
    """rg1vm1 reaches a spoke (10.2.0.0/24, peered with the hub only) through an appliance in the hub
    (10.1.0.10): the spoke receives forwarded traffic, which its side of the peering must allow."""
    doc = hub(hub_peering={})
    doc["virtual_networks"][1]["peerings"].append({"name": "to-spoke", "remote_virtual_network": "spoke",
                                                   "allow_forwarded_traffic": True})
    doc["virtual_networks"].append({"name": "spoke", "address_space": ["10.2.0.0/24"],
                                    "subnets": [{"name": "s", "address_prefix": "10.2.0.0/27"}],
                                    "peerings": [{"name": "to-hub", "remote_virtual_network": "hub",
                                                  "allow_forwarded_traffic": allow_forwarded}]})
    doc["virtual_machines"] += [{**appliance("nva", "10.1.0.10"), "subnet": "hub/s"},
                                {"name": "vm3", "subnet": "spoke/s", "services": [{"port": 80}]}]
    return with_route(doc, to_appliance("spoke-via-nva", "10.2.0.0/24", "10.1.0.10"))


def nsg_on_vm_subnet(nsg: dict) -> dict:
    doc = note(network_security_groups=[nsg])
    doc["virtual_networks"][0]["subnets"][0]["network_security_group"] = nsg["name"]
    return doc


def return_path_dropped() -> dict:
    """The SYN reaches vm2 in the hub, whose subnet sends replies for vnet1 to a None route."""
    doc = hub()
    doc["route_tables"] = [{"name": "rt-drop", "routes": [{"name": "drop", "address_prefix": "10.0.0.0/24",
                                                           "next_hop_type": "None"}]}]
    doc["virtual_networks"][1]["subnets"][0]["route_table"] = "rt-drop"
    return doc


def routing_loop() -> dict:
    """Two forwarding appliances, each in a subnet whose route table sends the destination to the other."""
    doc = note()
    doc["virtual_networks"][0]["subnets"] += [{"name": "a", "address_prefix": "10.0.0.64/28", "route_table": "to-b"},
                                              {"name": "b", "address_prefix": "10.0.0.80/28", "route_table": "to-a"}]
    doc["virtual_machines"] += [{**appliance("nva-a", "10.0.0.68"), "subnet": "vnet1/a"},
                                {**appliance("nva-b", "10.0.0.84"), "subnet": "vnet1/b"}]
    doc["route_tables"] = [{"name": "to-b", "routes": [to_appliance("far", "203.0.113.0/24", "10.0.0.84")]},
                           {"name": "to-a", "routes": [to_appliance("far", "203.0.113.0/24", "10.0.0.68")]},
                           {"name": "start", "routes": [to_appliance("far", "203.0.113.0/24", "10.0.0.68")]}]
    doc["virtual_networks"][0]["subnets"][0]["route_table"] = "start"
    return doc


def with_storage(account: dict, pe: dict | None = None) -> dict:
    """The note with a storage account, and a private endpoint to it in vnet1/default."""
    doc = note(storage_accounts=[{"name": "acct1", **account}])
    if pe is not None:
        doc["private_endpoints"] = [{"name": "pe1", "subnet": "vnet1/default", "private_ip_address": "10.0.0.20",
                                     "target": "acct1", "group_id": "blob", **pe}]
    return doc


def storage_ip(doc: dict) -> str:
    """acct1's public address, as the engine gives it."""
    return str(LabView(build(doc)).paas.public[("storage_accounts", "acct1")])


def sql_behind_pe() -> dict:
    """The note with a SQL server, a PE to it in vnet1/default and its privatelink zone linked to vnet1."""
    return note(sql_servers=[{"name": "sql1"}],
                private_dns_zones=[{"name": "privatelink.database.windows.net",
                                    "virtual_network_links": [{"name": "link", "virtual_network": "vnet1"}]}],
                private_endpoints=[{"name": "pe-sql", "subnet": "vnet1/default", "target": "sql1",
                                    "group_id": "sqlServer",
                                    "private_dns_zone_group": ["privatelink.database.windows.net"]}])


CLOSED = with_storage({"public_network_access": "Disabled"})
FIREWALLED = with_storage({"network_rule_set": {"default_action": "Deny"}})

NSG_DENY_80 = {"name": "deny-80", "security_rules": [
    {"name": "deny-http-in", "priority": 100, "direction": "Inbound", "access": "Deny",
     "protocol": "Tcp", "destination_port_range": "80"}]}

def vpn_with_other_key() -> dict:
    """test_gateway's lab whose connection's shared key differs from the site's device."""
    doc = vpn_lab()
    doc["connections"][0]["shared_key"] = "other"
    return doc


def vpn_forced_tunnel() -> dict:
    """test_gateway's lab whose hub VMs send everything to the gateway (no default site)."""
    doc = vpn_lab(route_tables=[{"name": "rt-all", "routes": [
        {"name": "all", "address_prefix": "0.0.0.0/0", "next_hop_type": "VirtualNetworkGateway"}]}])
    doc["virtual_networks"][0]["subnets"][0]["route_table"] = "rt-all"
    return doc


# reason -> (lab document, source, destination, port, protocol)
def private_subnet(nat: bool = False) -> dict:
    """The note's VM subnet made private (default outbound access off), with a NAT gateway or none."""
    doc = note(public_ip_addresses=[{"name": "pip-nat"}],
               nat_gateways=[{"name": "natgw", "public_ip_addresses": ["pip-nat"]}])
    doc["virtual_networks"][0]["subnets"][0]["default_outbound_access"] = False
    if nat:
        doc["virtual_networks"][0]["subnets"][0]["nat_gateway"] = "natgw"
    return doc


CASES = {
    Reason.REACHABLE: (note(), "app1", "rg1vm1", 80, "Tcp"),
    Reason.NO_LISTENER: (note(), "app1", "rg1vm1", 81, "Tcp"),
    Reason.INTEGRATION_INBOUND_REFUSED: (note(), "rg1vm1", INTEGRATION_IP, 80, "Tcp"),
    Reason.INTEGRATION_INBOUND_NOT_ANSWERED: (note(), "rg1vm1", INTEGRATION_IP, None, "Icmp"),
    Reason.NSG_DENIED: (nsg_on_vm_subnet(NSG_DENY_80), "app1", "rg1vm1", 80, "Tcp"),
    # 10.0.0.0/8 outside the VNet's space: Azure's system route with next hop None
    Reason.ROUTE_NONE: (note(), "rg1vm1", "10.9.9.9", 80, "Tcp"),
    Reason.PRIVATE_ADDRESS_ON_INTERNET: (note(web_apps=[{"name": "app1", "plan": "plan1"}]),
                                         "app1", "10.0.0.4", None, "Icmp"),
    Reason.NO_OUTBOUND_ACCESS: (private_subnet(), "rg1vm1", "203.0.113.10", 443, "Tcp"),
    Reason.NAT_GATEWAY_NO_ICMP: (private_subnet(nat=True), "rg1vm1", "203.0.113.10", None, "Icmp"),
    Reason.NAT_GATEWAY_INBOUND_REFUSED: (private_subnet(nat=True), "internet", "pip-nat", 80, "Tcp"),
    Reason.NAT_GATEWAY_INBOUND_NOT_ANSWERED: (private_subnet(nat=True), "internet", "pip-nat", None, "Icmp"),
    Reason.NO_HOST_AT_DESTINATION: (note(), "rg1vm1", "10.0.0.9", 80, "Tcp"),
    Reason.VM_NOT_RUNNING: (note(virtual_machines=[{**NOTE["virtual_machines"][0], "power_state": "deallocated"}]),
                            "app1", "rg1vm1", 80, "Tcp"),
    Reason.NEXT_HOP_UNREACHABLE: (with_route(note(), to_appliance("nowhere", "0.0.0.0/0", "10.0.0.10")),
                                  "rg1vm1", "203.0.113.10", 443, "Tcp"),
    Reason.NEXT_HOP_NOT_FORWARDING: (with_route(note(virtual_machines=[*NOTE["virtual_machines"],
                                                                       appliance("nva", "10.0.0.10", False)]),
                                                to_appliance("via-nva", "0.0.0.0/0", "10.0.0.10")),
                                     "rg1vm1", "203.0.113.10", 443, "Tcp"),
    Reason.GUEST_NOT_FORWARDING: (with_route(note(virtual_machines=[*NOTE["virtual_machines"],
                                                                    {**appliance("nva", "10.0.0.10"),
                                                                     "guest_ip_forwarding": False}]),
                                             to_appliance("via-nva", "0.0.0.0/0", "10.0.0.10")),
                                  "rg1vm1", "203.0.113.10", 443, "Tcp"),
    Reason.FORWARDED_TRAFFIC_NOT_ALLOWED: (forwarded_into_spoke(False), "rg1vm1", "vm3", 80, "Tcp"),
    Reason.PEERING_ACCESS_DISABLED: (hub(vnet1_peering={"allow_virtual_network_access": False}),
                                     "rg1vm1", "vm2", 80, "Tcp"),
    Reason.NO_GATEWAY: (with_route(note(), {"name": "to-gw", "address_prefix": "0.0.0.0/0",
                                            "next_hop_type": "VirtualNetworkGateway"}),
                        "rg1vm1", "203.0.113.10", 443, "Tcp"),
    Reason.ROUTING_LOOP: (routing_loop(), "rg1vm1", "203.0.113.10", 443, "Tcp"),
    Reason.GATEWAY_NO_ROUTE: (vpn_forced_tunnel(), "hubvm", "203.0.113.10", 443, "Tcp"),
    Reason.CONNECTION_NOT_CONNECTED: (vpn_with_other_key(), "hubvm", "onprem1", 80, "Tcp"),
    Reason.ON_PREMISES_NO_ROUTE: (vpn_lab(), "onprem1", "spoke2vm", 80, "Tcp"),
    Reason.RETURN_PATH_DROPPED: (return_path_dropped(), "rg1vm1", "vm2", 80, "Tcp"),
    Reason.NAME_NOT_FOUND: (note(), "rg1vm1", "nowhere.blob.core.windows.net", 443, "Tcp"),
    Reason.NO_DNS_ANSWER: (note(virtual_networks=[{**NOTE["virtual_networks"][0], "dns_servers": ["10.0.0.60"]}]),
                           "rg1vm1", "www.contoso.com", 443, "Tcp"),
    Reason.PRIVATE_ENDPOINT_NOT_APPROVED: (with_storage({}, {"connection_state": "Pending"}),
                                           "rg1vm1", "10.0.0.20", 443, "Tcp"),
    Reason.SERVICE_PORT_NOT_SERVED: (with_storage({}, {}), "rg1vm1", "10.0.0.20", 22, "Tcp"),
    Reason.PUBLIC_NETWORK_ACCESS_DISABLED: (CLOSED, "app1", storage_ip(CLOSED), 443, "Tcp"),
    Reason.SERVICE_FIREWALL_DENIED: (FIREWALLED, "rg1vm1", storage_ip(FIREWALLED), 443, "Tcp"),
    Reason.ACCESS_RESTRICTION_DENIED: (note(web_apps=[{**NOTE["web_apps"][0], "ip_security_restrictions": [
        {"name": "office", "ip_address": "203.0.113.0/24", "priority": 100}]}]), "rg1vm1",
        "app1.azurewebsites.net", 443, "Tcp"),
    Reason.WEB_APP_STOPPED: (note(web_apps=[{**NOTE["web_apps"][0], "state": "Stopped"}]), "rg1vm1",
                             "app1.azurewebsites.net", 443, "Tcp"),
    Reason.SQL_SERVER_NAME_NOT_DETERMINED: (sql_behind_pe(), "rg1vm1", "sql1.privatelink.database.windows.net", 1433,
                                            "Tcp"),
}


def test_every_reason_has_a_case():
    assert set(CASES) == set(Reason)


@pytest.mark.parametrize("reason", list(Reason), ids=str)
def test_the_lab_produces_the_reason(reason):
    doc, src, dst, port, proto = CASES[reason]
    t = trace(LabView(build(doc)), src, dst, port, proto)
    assert t.reason is reason, t.to_dict()
    assert t.verdict is reason.verdict
    out = json.loads(json.dumps(t.to_dict()))
    assert (out["reason"], out["verdict"], out["explanation"]) == (str(reason), str(reason.verdict),
                                                                   reason.explanation)


def test_an_unknown_reason_is_an_error_not_a_timeout():
    with pytest.raises(ValueError):
        _Done("SomethingElse")


def test_each_step_has_a_kind_an_action_and_the_detail_of_its_kind():
    doc, src, dst, port, proto = CASES[Reason.FORWARDED_TRAFFIC_NOT_ALLOWED]
    t = trace(LabView(build(doc)), src, dst, port, proto)
    assert [s.kind for s in t.steps] == [StepKind.ROUTE, StepKind.PEERING, StepKind.APPLIANCE, StepKind.ROUTE,
                                         StepKind.PEERING]
    assert [s.action for s in t.steps] == [Action.FORWARDED] * 4 + [Action.DROPPED]
    assert t.steps[-1].detail.forwarded and t.steps[-1].dropped
    dumped = t.to_dict()["steps"][-1]
    assert dumped == {"kind": "VNetPeering", "resource_id": t.steps[-1].resource_id, "action": "Dropped",
                      "dropped": True, "from_vnet": "hub", "to_vnet": "spoke", "peering": "to-spoke",
                      "forwarded": True}


def test_a_reason_carries_its_verdict():
    assert {r.verdict for r in Reason} == set(Verdict)
    assert [r for r in Reason if r.verdict is Verdict.CONNECTED] == [Reason.REACHABLE]
