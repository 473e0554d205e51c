"""Inbound to a web app: its public address and default host names, public network access, access
restrictions (main and scm sites), private endpoints to the app, and the internet as a source
(azure-paas-dns.md section 5, "Test scenarios"; azure-networking.md section 3)."""

import copy
import json
from ipaddress import IPv4Address, IPv4Network

import pytest
import yaml
from conftest import build, cli

from vnetlab.engine.dns import resolve
from vnetlab.engine.network import LabView
from vnetlab.engine.paas import public_addresses, service_endpoint_prefixes
from vnetlab.engine.security import PLATFORM_TAGS
from vnetlab.engine.trace import Reason, trace
from vnetlab.lab import Lab
from vnetlab.model import AzureError
from vnetlab.topology import parse

LAB = {
    "name": "inbound", "location": "westeurope", "resource_group": "rg1",
    "virtual_networks": [{"name": "hub", "address_space": ["10.0.0.0/16"], "subnets": [
        {"name": "vms", "address_prefix": "10.0.0.0/24"},
        {"name": "trusted", "address_prefix": "10.0.2.0/24", "service_endpoints": ["Microsoft.Web"]},
        {"name": "integration", "address_prefix": "10.0.1.0/26", "delegations": ["Microsoft.Web/serverFarms"]},
        {"name": "pe", "address_prefix": "10.0.3.0/24"}]}],
    "virtual_machines": [{"name": "vm1", "subnet": "hub/vms"}, {"name": "vm2", "subnet": "hub/trusted"}],
    "app_service_plans": [{"name": "plan1", "sku": "P1v3"}],
    "web_apps": [{"name": "app1", "plan": "plan1", "vnet_integration": "hub/integration"},
                 {"name": "app2", "plan": "plan1"}],
    "internet_hosts": [{"name": "office", "ip": "203.0.113.10"}, {"name": "home", "ip": "203.0.113.77"},
                       {"name": "afd", "ip": "198.18.5.10"}],
}
HTTPS = 443


def lab(**app1) -> dict:
    """The lab with app1's inbound settings ``app1``."""
    doc = copy.deepcopy(LAB)
    doc["web_apps"][0].update(copy.deepcopy(app1))
    return doc


def rule(priority: int, source: str | None = None, action: str = "Allow", **more) -> dict:
    out = {"name": f"r{priority}", "priority": priority, "action": action, **more}
    if source is not None:
        out["ip_address"] = source
    return out


def check(doc_or_topo, source: str, destination: str = "app1", port: int = HTTPS, **kw):
    topo = build(doc_or_topo) if isinstance(doc_or_topo, dict) else doc_or_topo
    return trace(LabView(topo), source, destination, port, **kw)


def verdict(doc, source: str, destination: str = "app1", **kw) -> str:
    return str(check(doc, source, destination, **kw).reason)


# -- the public side of an app --------------------------------------------------------------------------
def test_each_app_has_a_public_address_of_the_appservice_tag_and_its_host_names_resolve_to_it():
    topo = build(lab())
    address = public_addresses(topo)[("web_apps", "app1")]
    assert any(address in net for net in PLATFORM_TAGS["AppService"])
    view = LabView(topo)
    for name in ("app1.azurewebsites.net", "app1.scm.azurewebsites.net"):
        res = resolve(view, "vm1", name)
        assert res.outcome == "NoError" and res.addresses == [str(address)]


def test_the_internet_reaches_an_app_without_rules_and_it_sees_the_client():
    t = check(lab(), "internet", "app1", source_ip="198.51.100.9")
    assert t.reason == Reason.REACHABLE and t.source_ip_seen == "198.51.100.9"
    assert t.flow.destination == "app1.azurewebsites.net"
    assert t.admission.allowed and "no rule" in t.admission.rule
    default = check(lab(), "internet", "app1")   # no --from: the first internet host
    assert default.source_ip_seen == "203.0.113.10"


def test_a_client_on_the_internet_gets_public_dns_only():
    doc = lab()
    doc["private_dns_zones"] = [{"name": "azurewebsites.net", "records": [
        {"name": "app1", "type": "A", "values": ["10.0.0.99"]}],
        "virtual_network_links": [{"name": "l", "virtual_network": "hub"}]}]
    t = check(doc, "internet", "app1.azurewebsites.net")
    assert t.reason == Reason.REACHABLE and t.flow.destination_ip == str(
        public_addresses(build(doc))[("web_apps", "app1")])


@pytest.mark.parametrize("address", ["10.0.0.5", "198.18.3.9", "198.19.0.4"])
def test_an_internet_source_must_be_an_internet_address(address):
    with pytest.raises(AzureError) as err:
        check(lab(), "internet", "app1", source_ip=address)
    assert err.value.code == "InvalidSource"


def test_a_vm_reaches_an_app_over_the_public_path_seen_as_its_outbound_address():
    doc = lab(ip_security_restrictions=[rule(100, "203.0.113.0/24")])
    doc["public_ip_addresses"] = [{"name": "pip-nat", "ip_address": "198.19.0.50"}]
    doc["nat_gateways"] = [{"name": "natgw", "public_ip_addresses": ["pip-nat"]}]
    doc["virtual_networks"][0]["subnets"][0]["nat_gateway"] = "natgw"
    denied = check(doc, "vm1", "app1.azurewebsites.net")
    assert denied.reason == Reason.ACCESS_RESTRICTION_DENIED and denied.source_ip_seen == "198.19.0.50"
    doc["web_apps"][0]["ip_security_restrictions"].append(rule(200, "198.19.0.50"))
    allowed = check(doc, "vm1", "app1.azurewebsites.net")
    assert allowed.reason == Reason.REACHABLE and "r200" in allowed.admission.rule


def test_an_app_reaches_another_app_seen_as_its_outbound_address():
    topo = build(lab())
    t = check(topo, "app2", "app1.azurewebsites.net")
    seen = LabView(topo).outbound[("web_apps", "app2")]
    assert t.reason == Reason.REACHABLE and t.source_ip_seen == str(seen)


def test_the_integration_address_is_never_inbound_whatever_the_rules_say():
    doc = lab(ip_security_restrictions=[rule(100, "Any")], public_network_access="Enabled")
    t = check(doc, "vm1", "app1", 80)
    assert t.reason == Reason.INTEGRATION_INBOUND_REFUSED


# -- public network access ---------------------------------------------------------------------------
def test_public_network_access_disabled_refuses_with_403_ip_forbidden():
    t = check(lab(public_network_access="Disabled"), "internet", "app1")
    assert t.reason == Reason.PUBLIC_NETWORK_ACCESS_DISABLED
    assert t.admission.http_status == 403 and "Ip Forbidden" in t.admission.text
    assert "blocked your access" in t.admission.text


def with_private_endpoint(doc: dict, group: str = "sites", linked: bool = True) -> dict:
    doc["private_endpoints"] = [{"name": "pe-app1", "subnet": "hub/pe", "target": "app1", "group_id": group,
                                 "private_dns_zone_group": ["privatelink.azurewebsites.net"]}]
    doc["private_dns_zones"] = [{"name": "privatelink.azurewebsites.net", "virtual_network_links": [
        {"name": "hub", "virtual_network": "hub"}] if linked else []}]
    return doc


def test_a_private_endpoint_with_public_access_unset_closes_the_public_endpoint():
    doc = with_private_endpoint(lab(ip_security_restrictions=[rule(100, "203.0.113.0/24")]))
    closed = check(doc, "internet", "app1")
    assert closed.reason == Reason.PUBLIC_NETWORK_ACCESS_DISABLED and "pe-app1" in closed.admission.rule
    doc["web_apps"][0]["public_network_access"] = "Enabled"     # reopened: the rules decide again
    assert verdict(doc, "internet", "app1") == "Reachable"
    assert verdict(doc, "internet", "app1", source_ip="198.51.100.9") == "AccessRestrictionDenied"


def test_a_private_endpoint_to_a_slot_does_not_close_the_site():
    doc = with_private_endpoint(lab(), group="sites-staging")
    assert verdict(doc, "internet", "app1") == "Reachable"


def test_traffic_through_the_private_endpoint_skips_the_restrictions():
    doc = with_private_endpoint(lab(ip_security_restrictions_default_action="Deny",
                                    ip_security_restrictions=[rule(100, "203.0.113.0/24")],
                                    scm_ip_security_restrictions_use_main=True))
    for name in ("app1.azurewebsites.net", "app1.scm.azurewebsites.net"):
        t = check(doc, "vm1", name)
        assert t.reason == Reason.REACHABLE and "private endpoint pe-app1" in t.admission.rule
        assert IPv4Address(t.flow.destination_ip) in IPv4Network("10.0.3.0/24")


def test_without_the_private_zone_a_vm_goes_public_and_gets_403():
    doc = with_private_endpoint(lab(), linked=False)
    t = check(doc, "vm1", "app1.azurewebsites.net")
    assert t.reason == Reason.PUBLIC_NETWORK_ACCESS_DISABLED and t.admission.http_status == 403


# -- access restrictions -----------------------------------------------------------------------------------
def test_one_allow_rule_denies_everyone_else_with_403_ip_forbidden():
    doc = lab(ip_security_restrictions=[rule(100, "203.0.113.0/25")])
    assert verdict(doc, "office") == "Reachable"
    t = check(doc, "internet", "app1", source_ip="198.51.100.9")
    assert t.reason == Reason.ACCESS_RESTRICTION_DENIED
    assert t.admission.code == "IpForbidden" and t.admission.http_status == 403
    assert "unset: Deny" in t.admission.rule


def test_a_deny_rule_with_default_allow_blocks_only_that_address():
    doc = lab(ip_security_restrictions=[rule(100, "203.0.113.77", "Deny")],
              ip_security_restrictions_default_action="Allow")
    assert verdict(doc, "home") == "AccessRestrictionDenied"
    assert verdict(doc, "office") == "Reachable"


def test_the_lowest_priority_number_decides_and_ties_keep_the_listed_order():
    deny_first = lab(ip_security_restrictions=[rule(200, "203.0.113.0/24"), rule(100, "203.0.113.77/32", "Deny")])
    assert verdict(deny_first, "home") == "AccessRestrictionDenied"
    assert verdict(deny_first, "office") == "Reachable"
    allow_first = lab(ip_security_restrictions=[rule(100, "203.0.113.0/24"), rule(200, "203.0.113.77/32", "Deny")])
    assert verdict(allow_first, "home") == "Reachable"
    tie = lab(ip_security_restrictions=[{**rule(100, "203.0.113.77/32", "Deny"), "name": "a"},
                                        {**rule(100, "203.0.113.0/24"), "name": "b"}])
    t = check(tie, "home")
    assert t.reason == Reason.ACCESS_RESTRICTION_DENIED and " a (priority 100" in t.admission.rule


def test_explicit_default_action_deny_without_rules_denies():
    assert verdict(lab(ip_security_restrictions_default_action="Deny"), "office") == "AccessRestrictionDenied"


def test_the_scm_site_has_its_own_rules_unless_it_uses_the_main_ones():
    doc = lab(ip_security_restrictions_default_action="Deny", scm_ip_security_restrictions_use_main=False)
    assert verdict(doc, "office", "app1.azurewebsites.net") == "AccessRestrictionDenied"
    scm = check(doc, "office", "app1.scm.azurewebsites.net")
    assert scm.reason == Reason.REACHABLE and scm.admission.rule.startswith("scm site")
    doc["web_apps"][0]["scm_ip_security_restrictions_use_main"] = True
    assert verdict(doc, "office", "app1.scm.azurewebsites.net") == "AccessRestrictionDenied"


def test_scm_rules_apply_to_the_scm_site_only():
    doc = lab(scm_ip_security_restrictions=[rule(100, "203.0.113.10")])
    assert verdict(doc, "home", "app1.scm.azurewebsites.net") == "AccessRestrictionDenied"
    assert verdict(doc, "home", "app1.azurewebsites.net") == "Reachable"
    assert verdict(doc, "office", "app1.scm.azurewebsites.net") == "Reachable"


def test_a_subnet_rule_needs_the_microsoft_web_service_endpoint_on_the_callers_subnet():
    with pytest.raises(AzureError) as err:
        build(lab(ip_security_restrictions=[{"name": "vms", "priority": 100, "vnet_subnet_resource_id": "hub/vms"}]))
    assert err.value.code == "ServiceEndpointMissing" and "Microsoft.Web" in err.value.message
    ignored = lab(ip_security_restrictions=[{"name": "vms", "priority": 100, "vnet_subnet_resource_id": "hub/vms",
                                             "ignore_missing_vnet_service_endpoint": True}])
    t = check(ignored, "vm1", "app1.azurewebsites.net")    # no endpoint: the app sees the public address
    assert t.reason == Reason.ACCESS_RESTRICTION_DENIED and IPv4Address(t.source_ip_seen) not in IPv4Network("10.0.0.0/16")
    trusted = lab(ip_security_restrictions=[{"name": "trusted", "priority": 100,
                                             "vnet_subnet_resource_id": "hub/trusted"}])
    t = check(trusted, "vm2", "app1.azurewebsites.net")
    assert t.reason == Reason.REACHABLE and t.source_ip_seen.startswith("10.0.2.") and "trusted" in t.admission.rule
    assert verdict(trusted, "vm1", "app1.azurewebsites.net") == "AccessRestrictionDenied"


def test_a_subnet_rule_names_an_existing_subnet():
    with pytest.raises(AzureError) as err:
        build(lab(ip_security_restrictions=[{"priority": 100, "vnet_subnet_resource_id": "hub/nowhere"}]))
    assert err.value.code == "BadRequest" and "VnetSubnetResourceId is invalid" in err.value.message


def test_the_microsoft_web_service_endpoint_routes_to_the_apps_public_addresses():
    topo = build(lab())
    vnet = topo.vnet("hub")
    address = public_addresses(topo)[("web_apps", "app1")]
    assert f"{address}/32" in service_endpoint_prefixes(topo, vnet, vnet.subnets[1])
    assert service_endpoint_prefixes(topo, vnet, vnet.subnets[0]) == []


def test_ip_rules_do_not_match_private_service_endpoint_sources_but_anyvnets_does():
    private = lab(ip_security_restrictions=[rule(100, "10.0.0.0/8")])
    assert verdict(private, "vm2", "app1.azurewebsites.net") == "AccessRestrictionDenied"
    assert verdict(lab(ip_security_restrictions=[rule(100, "AnyVnets")]), "vm2", "app1.azurewebsites.net") == \
        "Reachable"


def test_x_forwarded_for_narrows_a_rule_to_the_clients_behind_a_proxy():
    doc = lab(ip_security_restrictions=[rule(100, "203.0.113.0/24", headers={"x-forwarded-for": ["198.51.100.0/24"]})])
    assert verdict(doc, "office") == "AccessRestrictionDenied"     # no header
    assert verdict(doc, "office", headers={"X-Forwarded-For": "198.51.100.20, 10.0.0.1"}) == "Reachable"
    assert verdict(doc, "office", headers={"x-forwarded-for": "8.8.8.8"}) == "AccessRestrictionDenied"


def test_a_service_tag_rule_with_front_door_id():
    fdid = "00000000-0000-0000-0000-0000000000aa"
    doc = lab(ip_security_restrictions=[rule(100, "AzureFrontDoor.Backend", tag="ServiceTag",
                                             headers={"x-azure-fdid": [fdid]})])
    assert verdict(doc, "afd", headers={"x-azure-fdid": fdid}) == "Reachable"
    assert verdict(doc, "afd", headers={"x-azure-fdid": "another"}) == "AccessRestrictionDenied"
    assert verdict(doc, "office", headers={"x-azure-fdid": fdid}) == "AccessRestrictionDenied"


def test_x_forwarded_host_takes_a_subdomain_wildcard():
    doc = lab(ip_security_restrictions=[rule(100, "Any", headers={"x-forwarded-host": ["*.contoso.com"]})])
    assert verdict(doc, "office", headers={"x-forwarded-host": "WWW.contoso.com"}) == "Reachable"
    assert verdict(doc, "office", headers={"x-forwarded-host": "contoso.net"}) == "AccessRestrictionDenied"


@pytest.mark.parametrize("bad, code", [
    ({"priority": 1, "ip_address": "nonsense"}, "InvalidIpSecurityRestriction"),
    ({"priority": 1, "ip_address": "NoSuchTag", "tag": "ServiceTag"}, "InvalidIpSecurityRestriction"),
    ({"priority": 1, "ip_address": "1.2.3.4", "headers": {"x-custom": ["a"]}}, "InvalidIpSecurityRestriction"),
    ({"priority": 1}, "InvalidIpSecurityRestriction"),
])
def test_malformed_rules_are_refused(bad, code):
    with pytest.raises(AzureError) as err:
        parse(lab(ip_security_restrictions=[bad]))
    assert err.value.code == code


# -- the CLI -----------------------------------------------------------------------------------------------
def up(tmp_path, doc):
    f = tmp_path / "lab.yaml"
    f.write_text(yaml.safe_dump(doc))
    home = tmp_path / "lab"
    assert cli(home, "up", str(f)).exit_code == 0
    return home


def cli_json(home, *args):
    result = cli(home, *args, "-o", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_cli_check_internet_with_from_and_headers(tmp_path):
    home = up(tmp_path, lab(ip_security_restrictions=[rule(100, "203.0.113.0/24",
                                                           headers={"x-forwarded-for": ["198.51.100.0/24"]})]))
    denied = cli(home, "check", "internet", "app1", "--port", "443", "--from", "198.51.100.9", "-o", "json")
    assert denied.exit_code == 1 and json.loads(denied.output)["reason"] == "AccessRestrictionDenied"
    ok = cli(home, "check", "internet", "app1", "--port", "443", "--header", "x-forwarded-for=198.51.100.3")
    assert ok.exit_code == 0 and "Connected" in ok.output
    text = cli(home, "check", "internet", "app1", "--port", "443", "--from", "198.51.100.9")
    assert "403 IpForbidden" in text.output and "Ip Forbidden" in text.output


def test_cli_access_restriction_add_show_remove_set(tmp_path):
    home = up(tmp_path, lab())
    shown = cli_json(home, "webapp", "config", "access-restriction", "show", "-n", "app1")
    assert [r["name"] for r in shown["ipSecurityRestrictions"]] == ["Allow all"]
    cli_json(home, "webapp", "config", "access-restriction", "add", "-n", "app1", "--priority", "100",
             "--rule-name", "vms", "--subnet", "vms", "--vnet-name", "hub")
    assert "Microsoft.Web" in Lab.open(home).topology().vnet("hub").subnets[0].service_endpoints   # as az adds it
    shown = cli_json(home, "webapp", "config", "access-restriction", "add", "-n", "app1", "--priority", "50",
                     "--rule-name", "block", "--action", "Deny", "--ip-address", "203.0.113.77/32")
    rules = shown["ipSecurityRestrictions"]
    assert [r["name"] for r in rules] == ["vms", "block", "Deny all"]
    assert rules[0]["vnetSubnetResourceId"].endswith("/virtualNetworks/hub/subnets/vms")
    assert cli(home, "check", "vm1", "app1.azurewebsites.net", "--port", "443").exit_code == 0  # SE added by add
    before = cli_json(home, "webapp", "config", "access-restriction", "show", "-n", "app1")
    missing = cli(home, "webapp", "config", "access-restriction", "remove", "-n", "app1", "--rule-name", "block")
    assert missing.exit_code == 2 and "you must explicitly specify --action Deny" in missing.output
    assert cli_json(home, "webapp", "config", "access-restriction", "show", "-n", "app1") == before
    cli_json(home, "webapp", "config", "access-restriction", "remove", "-n", "app1", "--rule-name", "block",
             "--action", "Deny")
    shown = cli_json(home, "webapp", "config", "access-restriction", "set", "-n", "app1",
                     "--use-same-restrictions-for-scm-site", "true", "--default-action", "Allow")
    assert shown["scmIpSecurityRestrictionsUseMain"] is True and shown["ipSecurityRestrictionsDefaultAction"] == "Allow"
    assert cli(home, "check", "home", "app1.scm.azurewebsites.net", "--port", "443").exit_code == 0


def test_cli_add_refuses_two_sources_and_bad_headers(tmp_path):
    home = up(tmp_path, lab())
    both = cli(home, "webapp", "config", "access-restriction", "add", "-n", "app1", "--priority", "1",
               "--ip-address", "1.2.3.4", "--service-tag", "AppService")
    assert both.exit_code == 2 and "Please specify either" in both.output
    header = cli(home, "webapp", "config", "access-restriction", "add", "-n", "app1", "--priority", "1",
                 "--ip-address", "1.2.3.4", "--http-headers", "x-custom=1")
    assert header.exit_code == 2 and 'Invalid http-header name: "x-custom"' in header.output


def test_cli_webapp_update_public_network_access(tmp_path):
    home = up(tmp_path, lab())
    out = cli_json(home, "webapp", "update", "-n", "app1", "--set", "publicNetworkAccess=Disabled")
    assert out["publicNetworkAccess"] == "Disabled"
    result = cli(home, "check", "internet", "app1", "--port", "443", "-o", "json")
    assert json.loads(result.output)["reason"] == "PublicNetworkAccessDisabled"
    bad = cli(home, "webapp", "update", "-n", "app1", "--set", "publicNetworkAccess=Maybe")
    assert bad.exit_code == 2


# -- service endpoint rules and private endpoints -------------------------------------------------------------
# "Access restriction rules based on service endpoints are not supported on apps that have private endpoint
# configured" (overview-access-restrictions): no error code documented, so the lab refuses the change.
SE_RULE = {"name": "trusted", "priority": 100, "vnet_subnet_resource_id": "hub/trusted"}
SE_REFUSAL = "ServiceEndpointRuleNotSupportedWithPrivateEndpoint"


@pytest.mark.parametrize("rules", [{"ip_security_restrictions": [SE_RULE]},
                                   {"scm_ip_security_restrictions": [SE_RULE]},
                                   {"ip_security_restrictions": [rule(100, "AnyVnets")]}])
def test_a_service_endpoint_rule_and_a_private_endpoint_are_refused_together(rules):
    with pytest.raises(AzureError) as err:
        build(with_private_endpoint(lab(**rules)))
    assert err.value.code == SE_REFUSAL and err.value.status == 400
    assert "not supported on apps that have private endpoint configured" in err.value.message
    assert "pe-app1" in err.value.message


def test_ip_rules_and_a_slots_private_endpoint_go_with_a_private_endpoint_and_a_service_endpoint_rule():
    build(with_private_endpoint(lab(ip_security_restrictions=[rule(100, "203.0.113.0/24")])))
    build(with_private_endpoint(lab(ip_security_restrictions=[SE_RULE]), group="sites-staging"))


def test_cli_refuses_a_subnet_rule_on_an_app_with_a_private_endpoint_and_changes_nothing(tmp_path):
    home = up(tmp_path, with_private_endpoint(lab()))
    before = Lab.open(home).topology()
    result = cli(home, "webapp", "config", "access-restriction", "add", "-n", "app1", "--priority", "100",
                 "--rule-name", "vms", "--subnet", "vms", "--vnet-name", "hub")
    assert result.exit_code == 2 and SE_REFUSAL in result.output, result.output
    assert Lab.open(home).topology() == before      # not even the service endpoint az would have added
    ok = cli(home, "webapp", "config", "access-restriction", "add", "-n", "app1", "--priority", "100",
             "--ip-address", "203.0.113.0/24")
    assert ok.exit_code == 0, ok.output


def test_up_refuses_a_private_endpoint_to_an_app_with_a_subnet_rule(tmp_path):
    home = up(tmp_path, lab(ip_security_restrictions=[SE_RULE]))
    before = Lab.open(home).topology()
    f = tmp_path / "with-pe.yaml"
    f.write_text(yaml.safe_dump(with_private_endpoint(lab(ip_security_restrictions=[SE_RULE]))))
    result = cli(home, "up", str(f))
    assert result.exit_code == 2 and SE_REFUSAL in result.output, result.output
    assert Lab.open(home).topology() == before


def test_arm_refuses_either_half_and_changes_nothing(tmp_path):
    import warnings
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()

    from vnetlab.api import create_app
    from vnetlab.api.discovery import SUBSCRIPTION
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient
    rg = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg1"
    subnet = f"{rg}/providers/Microsoft.Network/virtualNetworks/hub/subnets/trusted"
    site = f"{rg}/providers/Microsoft.Web/sites/app1"
    se_rule = {"ipSecurityRestrictions": [{"name": "trusted", "priority": 100, "action": "Allow",
                                           "vnetSubnetResourceId": subnet}]}
    pe_body = {"location": "westeurope", "properties": {
        "subnet": {"id": f"{rg}/providers/Microsoft.Network/virtualNetworks/hub/subnets/pe"},
        "privateLinkServiceConnections": [{"name": "c1", "properties": {
            "privateLinkServiceId": site, "groupIds": ["sites"]}}]}}
    pe = f"{rg}/providers/Microsoft.Network/privateEndpoints/pe-app1"

    home = up(tmp_path / "a", with_private_endpoint(lab()))
    client = TestClient(create_app(home))
    client.params = {"api-version": "2024-04-01"}
    before = Lab.open(home).topology()
    res = client.put(f"{site}/config/web", json={"properties": se_rule})
    assert res.status_code == 400 and res.json()["error"]["code"] == SE_REFUSAL, res.text
    assert Lab.open(home).topology() == before

    home = up(tmp_path / "b", lab(ip_security_restrictions=[SE_RULE]))
    client = TestClient(create_app(home))
    client.params = {"api-version": "2024-05-01"}
    before = Lab.open(home).topology()
    res = client.put(pe, json=pe_body)
    assert res.status_code == 400 and res.json()["error"]["code"] == SE_REFUSAL, res.text
    assert Lab.open(home).topology() == before


def test_the_emulated_front_end_decides_headers_with_the_engines_own_module():
    """One rule, one place: the front end (run isolated, no package import) loads the engine's file."""
    import os

    from vnetlab.backends.netns import services
    from vnetlab.engine import restriction_headers
    loaded = services.restriction_headers()
    assert os.path.samefile(loaded.__file__, restriction_headers.__file__)
    doc = lab(ip_security_restrictions=[rule(100, "203.0.113.0/24", headers={"x-forwarded-for": ["198.51.100.0/24"]})])
    topo = build(doc)
    from vnetlab.engine.paas import admission_cases
    view = LabView(topo)
    address = public_addresses(topo)[("web_apps", "app1")]
    cases = admission_cases(view, topo.web_apps[0], address, "203.0.113.10", None,
                            server_name="app1.azurewebsites.net")
    assert [(wanted, adm.allowed) for wanted, adm in cases] == [({"x-forwarded-for": ["198.51.100.0/24"]}, True),
                                                               ({}, False)]
    assert loaded.first_match(cases, {"X-Forwarded-For": "198.51.100.4"}).allowed
    assert not loaded.first_match(cases, {}).allowed
