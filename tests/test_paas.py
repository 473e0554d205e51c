"""PaaS services: private endpoints, service endpoints, the services' firewalls, and what they answer.

Each test is a scenario of the reference (azure-paas-dns.md sections 2 and 3) or one of its user
pains (section 7): the verdict, the reason, the service's own code and text, and the source the
service saw. Addresses come from the model (the PE's address, the resource's public address, the
VM's and the app's public outbound addresses), never written here.
"""

import copy
import json
import ssl

import pytest
from conftest import build, cli, up_note

from vnetlab.engine import paas
from vnetlab.engine.network import LabView
from vnetlab.engine.trace import trace

LAB = {
    "name": "paas", "location": "westeurope", "resource_group": "rg1",
    "virtual_networks": [
        {"name": "hub", "address_space": ["10.0.0.0/16"], "subnets": [
            {"name": "vms", "address_prefix": "10.0.0.0/24"},
            {"name": "integration", "address_prefix": "10.0.1.0/26", "delegations": ["Microsoft.Web/serverFarms"]},
            {"name": "pe", "address_prefix": "10.0.2.0/24"},
            {"name": "nva", "address_prefix": "10.0.3.0/24"}],
         "peerings": [{"name": "to-spoke", "remote_virtual_network": "spoke"}]},
        {"name": "spoke", "address_space": ["10.1.0.0/16"],
         "subnets": [{"name": "default", "address_prefix": "10.1.0.0/24"}],
         "peerings": [{"name": "to-hub", "remote_virtual_network": "hub"}]}],
    "virtual_machines": [{"name": "vm1", "subnet": "hub/vms"}, {"name": "vm2", "subnet": "spoke/default"}],
    "app_service_plans": [{"name": "plan1", "sku": "P1v3"}],
    "web_apps": [{"name": "app1", "plan": "plan1", "vnet_integration": "hub/integration"}],
    "storage_accounts": [{"name": "acct1"}],
    "sql_servers": [{"name": "sql1"}],
    "key_vaults": [{"name": "kv1"}],
}

STORAGE_XML_CODE = "AuthorizationFailure"


def lab(**changes) -> dict:
    doc = copy.deepcopy(LAB)
    doc.update(copy.deepcopy(changes))
    return doc


def subnet(doc: dict, ref: str) -> dict:
    vnet_name, name = ref.split("/")
    vnet = next(v for v in doc["virtual_networks"] if v["name"] == vnet_name)
    return next(s for s in vnet["subnets"] if s["name"] == name)


def with_pe(doc: dict, target: str, group_id: str, **extra) -> dict:
    doc.setdefault("private_endpoints", []).append(
        {"name": f"pe-{target}", "subnet": "hub/pe", "target": target, "group_id": group_id, **extra})
    return doc


def public_ip(net: LabView, kind: str, name: str) -> str:
    return str(net.paas.public[(kind, name)])


def pe_ip(topo, name: str) -> str:
    """The private endpoint's address: its read-only NIC's."""
    return topo.private_endpoint_ip(topo.find("private_endpoints", name))


def vm_ip(topo, name: str) -> str:
    return topo.find("network_interfaces", topo.find("virtual_machines", name).network_interface).private_ip_address


def check(topo, src: str, dst: str, port: int = 443):
    return trace(LabView(topo), src, dst, port)


def admission_step(t):
    return next(s for s in t.steps if s.kind == "Admission")


# -- public addresses -------------------------------------------------------------------------------
def test_each_paas_resource_listens_on_an_address_of_its_service_tag():
    topo = build(lab(storage_accounts=[{"name": "acct1"}, {"name": "acct2"}]))
    net = LabView(topo)
    from vnetlab.engine.security import PLATFORM_TAGS
    for kind, name, tag in (("storage_accounts", "acct1", "Storage"), ("storage_accounts", "acct2", "Storage"),
                            ("sql_servers", "sql1", "Sql"), ("key_vaults", "kv1", "AzureKeyVault")):
        ip = net.paas.public[(kind, name)]
        assert any(ip in block for block in PLATFORM_TAGS[tag])
        assert paas.endpoint_at(net, ip).name == name
    assert net.paas.public[("storage_accounts", "acct1")] != net.paas.public[("storage_accounts", "acct2")]


def test_an_open_storage_account_admits_a_vm_by_its_public_address_and_sees_the_vms_public_ip():
    topo = build(lab())
    net = LabView(topo)
    t = check(topo, "vm1", public_ip(net, "storage_accounts", "acct1"))
    assert (t.verdict, t.reason) == ("Connected", "Reachable")
    assert t.source_ip_seen == str(net.public_ip("network_interfaces", topo.virtual_machines[0].network_interface))
    assert admission_step(t).detail.rule == "networkAcls.defaultAction Allow"


def test_a_port_the_service_does_not_serve_times_out():
    topo = build(lab())
    t = check(topo, "vm1", public_ip(LabView(topo), "sql_servers", "sql1"), 22)
    assert (t.verdict, t.reason) == ("TimedOut", "ServicePortNotServed")


def test_an_nsg_service_tag_matches_the_labs_storage_accounts():
    doc = lab(network_security_groups=[{"name": "no-storage", "security_rules": [
        {"name": "deny-storage", "priority": 100, "direction": "Outbound", "access": "Deny",
         "destination_address_prefix": "Storage"}]}])
    subnet(doc, "hub/vms")["network_security_group"] = "no-storage"
    topo = build(doc)
    net = LabView(topo)
    assert check(topo, "vm1", public_ip(net, "storage_accounts", "acct1")).reason == "NsgDenied"
    assert check(topo, "vm1", public_ip(net, "key_vaults", "kv1")).verdict == "Connected"


# -- section 2: private endpoints ------------------------------------------------------------------------
def test_pe_approved_admits_without_firewall_and_pending_passes_nothing():
    doc = with_pe(lab(storage_accounts=[{"name": "acct1", "public_network_access": "Disabled"}]), "acct1", "blob")
    topo = build(doc)
    t = check(topo, "vm1", pe_ip(topo, "pe-acct1"))
    assert (t.verdict, t.reason) == ("Connected", "Reachable")
    assert t.source_ip_seen == vm_ip(topo, "vm1")
    assert admission_step(t).detail.rule.startswith("private endpoint pe-acct1")
    for state in ("Pending", "Rejected", "Disconnected"):
        doc["private_endpoints"][0]["connection_state"] = state
        topo = build(doc)
        t = check(topo, "vm1", pe_ip(topo, "pe-acct1"))
        assert (t.verdict, t.reason) == ("TimedOut", "PrivateEndpointNotApproved")
        assert state in t.steps[-1].detail.why


def _via_nva(doc: dict, prefix: str) -> dict:
    doc["virtual_machines"].append({"name": "nva", "subnet": "hub/nva", "private_ip_address": "10.0.3.4",
                                    "enable_ip_forwarding": True})
    doc["route_tables"] = [{"name": "rt", "routes": [{"name": "via-nva", "address_prefix": prefix,
                                                      "next_hop_type": "VirtualAppliance",
                                                      "next_hop_ip_address": "10.0.3.4"}]}]
    subnet(doc, "hub/vms")["route_table"] = "rt"
    return doc


def test_pe_route_is_in_every_subnet_of_its_vnet_and_peers_and_beats_a_udr_default_route():
    topo = build(_via_nva(with_pe(lab(), "acct1", "blob"), "0.0.0.0/0"))
    net = LabView(topo)
    prefix = f"{pe_ip(topo, 'pe-acct1')}/32"
    for ref in ("hub/vms", "hub/integration", "hub/pe", "hub/nva", "spoke/default"):
        route = next(r for r in net.subnet_view(ref).routes if r.address_prefix == prefix)
        assert (route.source, route.state, route.next_hop_type) == ("Default", "Active", "InterfaceEndpoint")
    t = check(topo, "vm1", pe_ip(topo, "pe-acct1"))
    assert t.verdict == "Connected" and not any(s.kind == "VirtualAppliance" for s in t.steps)
    assert check(topo, "vm2", pe_ip(topo, "pe-acct1")).verdict == "Connected"  # across the peering


@pytest.mark.parametrize("policies,prefix,invalid,via_nva", [
    ("Disabled", "10.0.0.0/16", False, False),          # no route-table policies on the PE subnet
    ("RouteTableEnabled", "10.0.0.0/16", True, True),   # the VNet's range: invalidates, the UDR wins
    ("Enabled", "10.0.0.0/8", True, False),             # wider: invalidates, but the VNet's /16 route is longer
    ("RouteTableEnabled", "10.0.2.0/24", False, False),  # narrower than the VNet's range: does not
    ("RouteTableEnabled", "0.0.0.0/0", False, False),    # 0.0.0.0/0 never does
])
def test_only_a_udr_as_wide_as_the_vnet_invalidates_the_pe_route_under_route_table_policies(policies, prefix,
                                                                                             invalid, via_nva):
    doc = _via_nva(with_pe(lab(), "acct1", "blob"), prefix)
    subnet(doc, "hub/pe")["private_endpoint_network_policies"] = policies
    topo = build(doc)
    net = LabView(topo)
    pe_prefix = f"{pe_ip(topo, 'pe-acct1')}/32"
    route = next(r for r in net.subnet_view("hub/vms").routes if r.address_prefix == pe_prefix)
    assert route.state == ("Invalid" if invalid else "Active")
    t = check(topo, "vm1", pe_ip(topo, "pe-acct1"))
    assert any(s.kind == "VirtualAppliance" for s in t.steps) == via_nva
    assert t.verdict == "Connected"  # the NVA forwards it on; its subnet still has the /32


@pytest.mark.parametrize("policies,denied", [("Disabled", False), ("RouteTableEnabled", False),
                                             ("NetworkSecurityGroupEnabled", True), ("Enabled", True)])
def test_the_pe_subnets_nsg_applies_only_under_nsg_policies(policies, denied):
    doc = with_pe(lab(network_security_groups=[{"name": "pe-nsg", "security_rules": [
        {"name": "deny-in", "priority": 100, "direction": "Inbound", "access": "Deny"}]}]), "acct1", "blob")
    subnet(doc, "hub/pe").update(network_security_group="pe-nsg", private_endpoint_network_policies=policies)
    topo = build(doc)
    t = check(topo, "vm1", pe_ip(topo, "pe-acct1"))
    assert t.reason == ("NsgDenied" if denied else "Reachable")


def test_storage_with_public_access_disabled_admits_the_pe_and_refuses_the_public_path_with_its_xml_error():
    doc = with_pe(lab(storage_accounts=[{"name": "acct1", "public_network_access": "Disabled"}]), "acct1", "blob")
    topo = build(doc)
    net = LabView(topo)
    assert check(topo, "vm1", pe_ip(topo, "pe-acct1")).verdict == "Connected"
    t = check(topo, "vm1", public_ip(net, "storage_accounts", "acct1"))
    assert (t.verdict, t.reason) == ("Denied", "PublicNetworkAccessDisabled")
    assert (t.admission.code, t.admission.http_status) == (STORAGE_XML_CODE, 403)
    assert t.admission.text == "This request is not authorized to perform this operation."
    assert t.source_ip_seen == str(net.public_ip("network_interfaces", topo.virtual_machines[0].network_interface))
    body = paas.http_body(t.admission, "req-1")
    assert body.startswith('<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthorizationFailure</Code>')
    assert "RequestId:req-1" in body


def test_sql_public_off_gives_47073_to_an_app_off_the_pe_path_and_the_pe_sees_the_integration_address():
    doc = with_pe(lab(sql_servers=[{"name": "sql1", "public_network_access": "Disabled"}]), "sql1", "sqlServer")
    topo = build(doc)
    net = LabView(topo)
    t = check(topo, "app1", public_ip(net, "sql_servers", "sql1"), 1433)
    assert (t.verdict, t.reason, t.admission.code) == ("Denied", "PublicNetworkAccessDisabled", "47073")
    assert "Deny Public Network Access is set to Yes" in t.admission.text
    assert t.source_ip_seen == str(net.sandbox(topo.web_apps[0]).outbound_ip)
    t = check(topo, "app1", pe_ip(topo, "pe-sql1"), 1433)  # RFC 1918: through the integration even without Route All
    assert t.verdict == "Connected"
    assert t.source_ip_seen == str(net.sandbox(topo.web_apps[0]).integration_ip)


def test_key_vault_sees_the_vms_private_address_through_its_pe_and_the_public_one_outside():
    topo = build(with_pe(lab(), "kv1", "vault"))
    net = LabView(topo)
    assert check(topo, "vm1", pe_ip(topo, "pe-kv1")).source_ip_seen == vm_ip(topo, "vm1")
    assert check(topo, "vm1", public_ip(net, "key_vaults", "kv1")).source_ip_seen == \
        str(net.public_ip("network_interfaces", topo.virtual_machines[0].network_interface))


# -- section 3: firewalls and service endpoints ------------------------------------------------------------
def deny_storage(**rules) -> dict:
    return {"name": "acct1", "network_rule_set": {"default_action": "Deny", **rules}}


def test_storage_deny_without_rules_refuses_a_vm_with_authorization_failure():
    topo = build(lab(storage_accounts=[deny_storage()]))
    t = check(topo, "vm1", public_ip(LabView(topo), "storage_accounts", "acct1"))
    assert (t.verdict, t.reason, t.admission.code, t.admission.http_status) == \
        ("Denied", "ServiceFirewallDenied", "AuthorizationFailure", 403)


def test_storage_ip_rules_admit_a_cross_region_caller_but_not_a_same_region_one():
    vm_public = str(LabView(build(lab())).public_ip("network_interfaces", "vm1VMNic"))
    accounts = [{**deny_storage(ip_rules=[vm_public]), "name": "near"},
                {**deny_storage(ip_rules=[vm_public]), "name": "far", "location": "eastus"}]
    topo = build(lab(storage_accounts=accounts))
    net = LabView(topo)
    far = check(topo, "vm1", public_ip(net, "storage_accounts", "far"))
    assert far.verdict == "Connected" and admission_step(far).detail.rule == f"networkAcls.ipRules {vm_public}"
    near = check(topo, "vm1", public_ip(net, "storage_accounts", "near"))
    assert (near.verdict, near.admission.code) == ("Denied", "AuthorizationFailure")
    assert "no effect on requests from the account's own region" in near.admission.rule


def test_storage_service_endpoint_and_vnet_rule_admit_with_the_private_address_and_removing_it_denies():
    doc = lab(storage_accounts=[deny_storage(virtual_network_rules=["hub/vms"])])
    subnet(doc, "hub/vms")["service_endpoints"] = ["Microsoft.Storage"]
    topo = build(doc)
    net = LabView(topo)
    t = check(topo, "vm1", public_ip(net, "storage_accounts", "acct1"))
    assert (t.verdict, t.source_ip_seen) == ("Connected", vm_ip(topo, "vm1"))
    route = next(s for s in t.steps if s.kind == "Route").detail
    assert route.next_hop_type == "VirtualNetworkServiceEndpoint"
    assert admission_step(t).detail.source_subnet == topo.subnet_id("hub/vms")
    subnet(doc, "hub/vms")["service_endpoints"] = []
    doc["storage_accounts"][0]["network_rule_set"]["virtual_network_rules"] = []  # validation refuses a rule without it
    topo = build(doc)
    t = check(topo, "vm1", public_ip(LabView(topo), "storage_accounts", "acct1"))
    assert (t.verdict, t.admission.code) == ("Denied", "AuthorizationFailure")


def test_service_endpoint_routes_are_on_that_subnet_only_and_cover_the_paired_region_for_storage_only():
    doc = lab(storage_accounts=[{"name": "acct1"}, {"name": "paired", "location": "northeurope"},
                                {"name": "far", "location": "eastus"}],
              sql_servers=[{"name": "sql1"}, {"name": "sqlpaired", "location": "northeurope"}])
    subnet(doc, "hub/vms")["service_endpoints"] = ["Microsoft.Storage", "Microsoft.Sql"]
    topo = build(doc)
    net = LabView(topo)
    se = {r.address_prefix for r in net.subnet_view("hub/vms").routes
          if r.next_hop_type == "VirtualNetworkServiceEndpoint" and r.source == "Default"}
    want = {f"{public_ip(net, k, n)}/32" for k, n in (("storage_accounts", "acct1"), ("storage_accounts", "paired"),
                                                       ("sql_servers", "sql1"))}
    assert se == want
    assert not any(r.next_hop_type == "VirtualNetworkServiceEndpoint" for r in net.subnet_view("hub/pe").routes)


def test_enabling_the_storage_endpoint_breaks_an_account_that_allow_lists_the_vms_public_ip():
    """Pain 7 (GH-51330): the subnet's source for every covered account becomes private."""
    vm_public = str(LabView(build(lab())).public_ip("network_interfaces", "vm1VMNic"))
    doc = lab(storage_accounts=[{**deny_storage(ip_rules=[vm_public]), "name": "other", "location": "northeurope"}])
    topo = build(doc)
    assert check(topo, "vm1", public_ip(LabView(topo), "storage_accounts", "other")).verdict == "Connected"
    subnet(doc, "hub/vms")["service_endpoints"] = ["Microsoft.Storage"]
    topo = build(doc)
    t = check(topo, "vm1", public_ip(LabView(topo), "storage_accounts", "other"))
    assert (t.verdict, t.source_ip_seen, t.admission.code) == ("Denied", vm_ip(topo, "vm1"), "AuthorizationFailure")


def test_sql_without_rules_40615_then_endpoint_without_rule_40914_then_vnet_rule_admits():
    doc = lab()
    topo = build(doc)
    net = LabView(topo)
    vm_public = str(net.public_ip("network_interfaces", "vm1VMNic"))
    t = check(topo, "vm1", public_ip(net, "sql_servers", "sql1"), 1433)
    assert (t.verdict, t.reason, t.admission.code) == ("Denied", "ServiceFirewallDenied", "40615")
    assert t.admission.text.startswith(f"Cannot open server 'sql1' requested by the login. Client with IP address "
                                       f"'{vm_public}' is not allowed to access the server.")
    subnet(doc, "hub/vms")["service_endpoints"] = ["Microsoft.Sql"]
    topo = build(doc)
    t = check(topo, "vm1", public_ip(LabView(topo), "sql_servers", "sql1"), 1433)
    assert (t.admission.code, t.admission.text) == ("40914", "Cannot open server 'sql1' requested by the login. "
                                                               "Client is not allowed to access the server.")
    doc["sql_servers"][0]["virtual_network_rules"] = [{"name": "vms", "subnet": "hub/vms"}]
    topo = build(doc)
    t = check(topo, "vm1", public_ip(LabView(topo), "sql_servers", "sql1"), 1433)
    assert (t.verdict, t.source_ip_seen) == ("Connected", vm_ip(topo, "vm1"))
    assert admission_step(t).detail.rule == "virtualNetworkRules vms"


def test_sql_allow_azure_services_admits_the_apps_outbound_address():
    topo = build(lab(sql_servers=[{"name": "sql1", "firewall_rules": [
        {"name": "AllowAllWindowsAzureIps", "start_ip_address": "0.0.0.0", "end_ip_address": "0.0.0.0"}]}]))
    net = LabView(topo)
    t = check(topo, "app1", public_ip(net, "sql_servers", "sql1"), 1433)
    assert (t.verdict, t.source_ip_seen) == ("Connected", str(net.sandbox(topo.web_apps[0]).outbound_ip))
    assert "AllowAllWindowsAzureIps" in admission_step(t).detail.rule


def test_sql_ip_firewall_rule_admits_the_vms_public_address():
    vm_public = str(LabView(build(lab())).public_ip("network_interfaces", "vm1VMNic"))
    topo = build(lab(sql_servers=[{"name": "sql1", "firewall_rules": [
        {"name": "vm", "start_ip_address": vm_public, "end_ip_address": vm_public}]}]))
    t = check(topo, "vm1", public_ip(LabView(topo), "sql_servers", "sql1"), 1433)
    assert t.verdict == "Connected" and "firewallRules vm" in admission_step(t).detail.rule


def test_key_vault_deny_refuses_a_public_caller_by_firewall_and_a_closed_vault_by_connection():
    vm_public = str(LabView(build(lab())).public_ip("network_interfaces", "vm1VMNic"))
    topo = build(lab(key_vaults=[{"name": "kv1", "network_acls": {"default_action": "Deny"}}]))
    t = check(topo, "vm1", public_ip(LabView(topo), "key_vaults", "kv1"))
    assert (t.verdict, t.admission.code, t.admission.http_status) == ("Denied", "ForbiddenByFirewall", 403)
    assert f"Client address: {vm_public}\r\n" in t.admission.text and "Vault: kv1;location=westeurope" in t.admission.text
    assert json.loads(paas.http_body(t.admission))["error"]["innererror"]["code"] == "ForbiddenByFirewall"
    topo = build(lab(key_vaults=[{"name": "kv1", "public_network_access": "Disabled",
                                  "network_acls": {"default_action": "Deny", "ip_rules": [vm_public]}}]))
    t = check(topo, "vm1", public_ip(LabView(topo), "key_vaults", "kv1"))
    assert (t.verdict, t.reason, t.admission.code) == ("Denied", "PublicNetworkAccessDisabled",
                                                       "ForbiddenByConnection")
    assert t.admission.text.startswith("Public network access is disabled and request is not from a trusted "
                                       "service nor via an approved private link.")


# -- section 7: user pains ------------------------------------------------------------------------------------
def test_pain5_integrated_app_gets_storage_403_without_an_endpoint_path():
    topo = build(lab(storage_accounts=[deny_storage()]))
    net = LabView(topo)
    t = check(topo, "app1", public_ip(net, "storage_accounts", "acct1"))
    assert (t.verdict, t.admission.code, t.source_ip_seen) == \
        ("Denied", "AuthorizationFailure", str(net.sandbox(topo.web_apps[0]).outbound_ip))


def test_pain6_allow_listing_the_apps_outbound_ip_on_same_region_storage_never_matches():
    app_public = str(LabView(build(lab())).sandbox(build(lab()).web_apps[0]).outbound_ip)
    topo = build(lab(storage_accounts=[deny_storage(ip_rules=[app_public])]))
    t = check(topo, "app1", public_ip(LabView(topo), "storage_accounts", "acct1"))
    assert (t.verdict, t.source_ip_seen) == ("Denied", app_public)
    assert "own region" in t.admission.rule


@pytest.mark.parametrize("rule", [False, True])
def test_pain8_the_endpoint_on_the_integration_subnet_needs_the_rule_on_the_account(rule):
    doc = lab(storage_accounts=[deny_storage(virtual_network_rules=["hub/integration"] if rule else [])])
    subnet(doc, "hub/integration")["service_endpoints"] = ["Microsoft.Storage"]
    topo = build(doc)
    net = LabView(topo)
    t = check(topo, "app1", public_ip(net, "storage_accounts", "acct1"))  # Route All off: the endpoint still applies
    assert (t.verdict, t.source_ip_seen) == ("Connected" if rule else "Denied",
                                             str(net.sandbox(topo.web_apps[0]).integration_ip))


def test_pain8_a_sql_rule_for_a_subnet_without_the_endpoint_does_nothing():
    doc = lab(sql_servers=[{"name": "sql1", "virtual_network_rules": [
        {"name": "int", "subnet": "hub/integration", "ignore_missing_vnet_service_endpoint": True}]}])
    topo = build(doc)
    net = LabView(topo)
    t = check(topo, "app1", public_ip(net, "sql_servers", "sql1"), 1433)
    outbound = str(net.sandbox(topo.web_apps[0]).outbound_ip)
    assert (t.verdict, t.admission.code, t.source_ip_seen) == ("Denied", "40615", outbound)
    subnet(doc, "hub/integration")["service_endpoints"] = ["Microsoft.Sql"]
    t = check(build(doc), "app1", public_ip(net, "sql_servers", "sql1"), 1433)
    assert (t.verdict, admission_step(t).detail.rule) == ("Connected", "virtualNetworkRules int")


def test_pain11_service_endpoint_traffic_bypasses_a_udr_default_route_to_an_appliance():
    doc = _via_nva(lab(storage_accounts=[deny_storage(virtual_network_rules=["hub/vms"])]), "0.0.0.0/0")
    subnet(doc, "hub/vms")["service_endpoints"] = ["Microsoft.Storage"]
    topo = build(doc)
    t = check(topo, "vm1", public_ip(LabView(topo), "storage_accounts", "acct1"))
    assert t.verdict == "Connected" and not any(s.kind == "VirtualAppliance" for s in t.steps)
    assert t.source_ip_seen == vm_ip(topo, "vm1")


def test_pain12_an_app_calling_a_firewalled_vault_gets_forbidden_by_firewall_with_its_outbound_address():
    topo = build(lab(key_vaults=[{"name": "kv1", "network_acls": {"default_action": "Deny"}}]))
    net = LabView(topo)
    t = check(topo, "app1", public_ip(net, "key_vaults", "kv1"))
    outbound = str(net.sandbox(topo.web_apps[0]).outbound_ip)
    assert (t.admission.code, t.source_ip_seen) == ("ForbiddenByFirewall", outbound)
    assert f"Client address: {outbound}" in t.admission.text


# -- the faces: routes, check, matrix, Network Watcher ------------------------------------------------------
def _lab_with_endpoints() -> dict:
    doc = with_pe(lab(storage_accounts=[deny_storage()]), "acct1", "blob")
    subnet(doc, "hub/vms")["service_endpoints"] = ["Microsoft.Sql"]
    return doc


def test_cli_routes_show_the_pe_and_service_endpoint_routes(tmp_path):
    home = up_note(tmp_path, _lab_with_endpoints())
    result = cli(home, "routes", "vm1", "-o", "json")
    assert result.exit_code == 0, result.output
    hops = {r["next_hop_type"] for r in json.loads(result.output)["value"]}
    assert {"InterfaceEndpoint", "VirtualNetworkServiceEndpoint"} <= hops


def test_cli_check_by_ip_says_denied_with_the_services_text(tmp_path):
    home = up_note(tmp_path, _lab_with_endpoints())
    topo = build(_lab_with_endpoints())
    ip = public_ip(LabView(topo), "storage_accounts", "acct1")
    result = cli(home, "check", "vm1", ip, "--port", "443", "-o", "json")
    assert result.exit_code == 1
    doc = json.loads(result.output)
    assert (doc["verdict"], doc["admission"]["code"]) == ("Denied", "AuthorizationFailure")
    text = cli(home, "check", "vm1", ip, "--port", "443").output
    assert "Denied" in text and "AuthorizationFailure" in text


def test_matrix_with_paas_destinations(tmp_path):
    home = up_note(tmp_path, _lab_with_endpoints())
    result = cli(home, "matrix", "--ports", "443", "--paas", "--expand", "-o", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    kinds = {c["kind"] for c in doc["classes"]}
    assert {"storage_account", "sql_server", "key_vault", "private_endpoint"} <= kinds
    pairs = {(p["source"], p["destination"]): p["verdicts"]["443"] for p in doc["pairs"]}
    assert pairs[("vm1", "acct1")] == "Denied" and pairs[("vm1", "pe-acct1")] == "Connected"
    assert pairs[("vm1", "kv1")] == "Connected"
    assert not any(p["source"] in ("acct1", "pe-acct1") for p in doc["pairs"])  # destinations only


def test_network_watcher_effective_routes_list_the_endpoint_routes(tmp_path):
    import httpx

    from vnetlab.api import ServerThread, create_app, ensure_tls
    from vnetlab.api.discovery import SUBSCRIPTION
    home = up_note(tmp_path, _lab_with_endpoints())
    tls = ensure_tls(tmp_path / "tls")
    nic = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg1/providers/Microsoft.Network/networkInterfaces/vm1VMNic"
    with ServerThread(create_app(home), tls) as url, httpx.Client(base_url=url, verify=ssl.create_default_context(cafile=str(tls.ca)), timeout=30,
                                                                 params={"api-version": "2024-07-01"}) as client:
        resp = client.post(f"{nic}/effectiveRouteTable")
        account_ip = public_ip(LabView(build(_lab_with_endpoints())), "storage_accounts", "acct1")
        vm_id = nic.replace("Microsoft.Network/networkInterfaces/vm1VMNic", "Microsoft.Compute/virtualMachines/vm1")
        check_resp = client.post(nic.replace("networkInterfaces/vm1VMNic", "networkWatchers/nw/connectivityCheck"),
                                 json={"source": {"resourceId": vm_id},
                                       "destination": {"address": account_ip, "port": 443}})
    assert check_resp.status_code == 200, check_resp.text
    result = check_resp.json()
    # the TCP connection opened (what the check tests); the account refused the request after it
    assert (result["connectionStatus"], result["vnetlabTrace"]["verdict"]) == ("Reachable", "Denied")
    assert result["vnetlabTrace"]["admission"]["code"] == "AuthorizationFailure"
    assert result["hops"][-1]["resourceId"].endswith("/providers/Microsoft.Storage/storageAccounts/acct1")
    assert resp.status_code == 200
    routes = {r["nextHopType"]: r for r in resp.json()["value"]}
    pe = routes["InterfaceEndpoint"]
    assert (pe["source"], pe["state"], pe["nextHopIpAddress"]) == ("Default", "Active", [])
    assert pe["addressPrefix"] == [f"{pe_ip(build(_lab_with_endpoints()), 'pe-acct1')}/32"]
    assert routes["VirtualNetworkServiceEndpoint"]["source"] == "Default"


def test_a_lab_with_more_accounts_than_the_storage_tag_has_addresses_is_refused():
    from vnetlab.model import AzureError
    from vnetlab.engine.paas import tag_pool
    from vnetlab.engine.security import PLATFORM_TAGS
    size = len(tag_pool("Storage"))
    assert size == PLATFORM_TAGS["Storage"][0].num_addresses - 2 >= 254  # a /24: room for real labs
    build(lab(storage_accounts=[{"name": f"acct{i}"} for i in range(size)]))
    with pytest.raises(AzureError) as err:
        build(lab(storage_accounts=[{"name": f"acct{i}"} for i in range(size + 1)]))
    assert err.value.code == "PaasAddressesExhausted" and f"acct{size}" in err.value.message


# -- by name: the resolution decides which path the packet takes ------------------------------------------
def _sql_behind_pe(link_to: str | None) -> dict:
    """SQL with public access off and a PE in hub/pe; the privatelink zone linked to ``link_to`` (or nowhere)."""
    zone = {"name": "privatelink.database.windows.net",
            "virtual_network_links": [{"name": "link", "virtual_network": link_to}] if link_to else []}
    return with_pe(lab(sql_servers=[{"name": "sql1", "public_network_access": "Disabled"}],
                       private_dns_zones=[zone]), "sql1", "sqlServer",
                   private_dns_zone_group=["privatelink.database.windows.net"])


@pytest.mark.parametrize("link_to", [None, "spoke"])
def test_pain9_an_app_whose_vnet_is_not_linked_resolves_the_public_address_and_gets_47073(link_to):
    """Scenario 2.4 and pain 1: no link, or the zone linked to another VNet."""
    topo = build(_sql_behind_pe(link_to))
    net = LabView(topo)
    t = check(topo, "app1", "sql1.database.windows.net", 1433)
    assert t.flow.destination_ip == public_ip(net, "sql_servers", "sql1")
    assert (t.verdict, t.reason, t.admission.code) == ("Denied", "PublicNetworkAccessDisabled", "47073")
    assert t.source_ip_seen == str(net.sandbox(topo.web_apps[0]).outbound_ip)


def test_scenario_2_4_with_the_zone_linked_the_app_reaches_sql_through_its_pe_from_the_integration_address():
    topo = build(_sql_behind_pe("hub"))
    net = LabView(topo)
    t = check(topo, "app1", "sql1.database.windows.net", 1433)
    assert t.flow.destination_ip == pe_ip(topo, "pe-sql1")
    assert (t.verdict, t.source_ip_seen) == ("Connected", str(net.sandbox(topo.web_apps[0]).integration_ip))
    assert t.to_dict()["resolution"]["addresses"] == [pe_ip(topo, "pe-sql1")]


def test_scenario_2_3_a_vm_in_a_linked_vnet_reaches_closed_storage_and_one_outside_gets_the_403():
    doc = with_pe(lab(storage_accounts=[{"name": "acct1", "public_network_access": "Disabled"}],
                      private_dns_zones=[{"name": "privatelink.blob.core.windows.net",
                                          "virtual_network_links": [{"name": "hub", "virtual_network": "hub"}]}]),
                  "acct1", "blob", private_dns_zone_group=["privatelink.blob.core.windows.net"])
    topo = build(doc)
    net = LabView(topo)
    inside = check(topo, "vm1", "acct1.blob.core.windows.net")
    assert (inside.verdict, inside.flow.destination_ip) == ("Connected", pe_ip(topo, "pe-acct1"))
    outside = check(topo, "vm2", "acct1.blob.core.windows.net")  # spoke: peered, but its VNet is not linked
    assert outside.flow.destination_ip == public_ip(net, "storage_accounts", "acct1")
    assert (outside.verdict, outside.admission.code, outside.admission.http_status) == \
        ("Denied", "AuthorizationFailure", 403)
    assert outside.source_ip_seen == str(net.public_ip("network_interfaces", "vm2VMNic"))


def test_scenario_2_5_a_login_through_the_private_link_name_fails_and_by_address_it_takes_user_at_server():
    topo = build(_sql_behind_pe("hub"))
    t = check(topo, "vm1", "sql1.privatelink.database.windows.net", 1433)
    assert t.flow.destination_ip == pe_ip(topo, "pe-sql1")  # the name resolves: the gateway refuses the login
    assert (t.verdict, t.reason, t.admission.code) == ("Denied", "SqlServerNameNotDetermined", "40531")
    assert t.admission.text.startswith("Server name cannot be determined.")
    # by address vnetlab assumes the login names the server (user@server), as the 40531 text allows
    assert check(topo, "vm1", pe_ip(topo, "pe-sql1"), 1433).verdict == "Connected"


def test_diff_names_the_paas_refusal_a_firewall_change_brings(tmp_path):
    from vnetlab.engine.whatif import what_if
    before = build(lab())
    after = build(lab(storage_accounts=[deny_storage()]))
    result = what_if(before, after, ["443"])
    change = next(c for c in result.reachability if c.source == "vm1" and c.destination == "acct1")
    assert (change.before.verdict, change.after.verdict) == ("Connected", "Denied")
    assert change.after.cause == "ServiceFirewallDenied: 403 AuthorizationFailure (no rule admits the source, " \
                                 "defaultAction Deny)"
    assert result.breaks_paths
