"""Name resolution (engine.dns): the reference's private DNS scenarios (azure-paas-dns.md section 1,
"Test scenarios" 1-6) and the user pains 1-4 and 15 of its section 7. Each asserts the answer and
the why; addresses come from the model (the endpoint's NIC, the service tag's block)."""

import copy

import pytest
from conftest import cli

from vnetlab.engine import dns
from vnetlab.engine.network import LabView
from vnetlab.lab import preview
from vnetlab.model import AzureError
from vnetlab.topology import parse

BLOB_ZONE = "privatelink.blob.core.windows.net"
ACCT = "acct1.blob.core.windows.net"

BASE = {
    "name": "names", "location": "westeurope",
    "virtual_networks": [
        {"name": "hub", "address_space": ["10.0.0.0/16"], "subnets": [
            {"name": "default", "address_prefix": "10.0.0.0/24"},
            {"name": "pe", "address_prefix": "10.0.2.0/24"},
            {"name": "integration", "address_prefix": "10.0.3.0/26", "delegations": ["Microsoft.Web/serverFarms"]}],
         "peerings": [{"name": "hub-spoke", "remote_virtual_network": "spoke"}]},
        {"name": "spoke", "address_space": ["10.1.0.0/16"], "subnets": [
            {"name": "default", "address_prefix": "10.1.0.0/24"}],
         "peerings": [{"name": "spoke-hub", "remote_virtual_network": "hub"}]},
    ],
    "virtual_machines": [{"name": "vm1", "subnet": "hub/default"}, {"name": "vm2", "subnet": "spoke/default"}],
    "storage_accounts": [{"name": "acct1"}, {"name": "acct2"}],
}


def doc(**extra):
    d = copy.deepcopy(BASE)
    for key, value in extra.items():
        d[key] = value
    return d


def view(d) -> LabView:
    return LabView(preview(parse(d), None))


def resolve(d, source, name=ACCT):
    return dns.resolve(view(d), source, name)


def kinds(res):
    return [s.kind for s in res.steps]


def pe_ip(d, name="pe-blob"):
    topo = preview(parse(d), None)
    return topo.private_endpoint_ip(topo.find("private_endpoints", name))


def public_ip(d, kind="storage_accounts", name="acct1"):
    return dns.public_addresses(preview(parse(d), None))[(kind, name)]


def with_pe(d, zone_links=(("link-hub", "hub"),), target="acct1", records=None, policy="Default"):
    """A blob PE for ``target`` in hub/pe, its zone group writing into the blob zone, the zone linked
    to ``zone_links``."""
    d["private_endpoints"] = [{"name": "pe-blob", "subnet": "hub/pe", "target": target, "group_id": "blob",
                               "private_dns_zone_group": [BLOB_ZONE]}]
    d["private_dns_zones"] = [{"name": BLOB_ZONE, "records": records or [], "virtual_network_links": [
        {"name": n, "virtual_network": v, "resolution_policy": policy} for n, v in zone_links]}]
    return d


# -- section 1, test scenarios ------------------------------------------------------------------------
def test_1_no_zone_no_endpoint_resolves_the_public_address_without_privatelink_alias():
    d = doc()
    res = resolve(d, "vm1")
    assert res.outcome == "NoError" and res.addresses == [public_ip(d)]
    assert not any("privatelink" in c for c in res.cnames)
    assert res.server == "168.63.129.16" and kinds(res)[-1] == "PublicRecord"


def test_2_endpoint_and_zone_the_link_decides():
    unlinked = with_pe(doc(), zone_links=())
    res = resolve(unlinked, "vm1")  # case (b): the privatelink alias, then the public address
    assert res.cnames[0] == "acct1.privatelink.blob.core.windows.net"
    assert res.addresses == [public_ip(unlinked)] and "LinkedZone" not in kinds(res)
    linked = with_pe(doc())
    res = resolve(linked, "vm1")  # case (c): the chain stops at the zone's record
    assert res.cnames == ["acct1.privatelink.blob.core.windows.net"] and res.addresses == [pe_ip(linked)]
    step = res.steps[-1]
    assert (step.kind, step.zone, step.link, step.vnet) == ("LinkedZone", BLOB_ZONE, "link-hub", "hub")


def test_3_linked_zone_without_the_record_is_nxdomain_unless_nxdomain_redirect():
    d = with_pe(doc())  # the zone has acct1 (zone group), not acct2 whose PE lives elsewhere
    d["private_endpoints"].append({"name": "pe-acct2", "subnet": "spoke/default", "target": "acct2",
                                   "group_id": "blob"})
    res = resolve(d, "vm1", "acct2.blob.core.windows.net")
    assert res.outcome == "NXDOMAIN" and res.addresses == []
    assert res.steps[-1].kind == "LinkedZoneNxDomain" and res.steps[-1].zone == BLOB_ZONE
    d["private_dns_zones"][0]["virtual_network_links"][0]["resolution_policy"] = "NxDomainRedirect"
    res = resolve(d, "vm1", "acct2.blob.core.windows.net")  # case (e)
    assert res.outcome == "NoError" and res.addresses == [public_ip(d, name="acct2")]
    assert "NxDomainRedirect" in kinds(res)
    assert res.cnames[0] == "acct2.privatelink.blob.core.windows.net"


def test_4_linked_zone_and_an_account_without_endpoint_resolves_public():
    d = with_pe(doc(), target="acct2")
    res = resolve(d, "vm1", ACCT)
    assert res.outcome == "NoError" and res.addresses == [public_ip(d)]
    assert "LinkedZone" not in kinds(res)


def forwarder_lab(link_forwarder_vnet: bool):
    """The spoke's DNS is a forwarder VM in VNet fwd (peered with the spoke), which forwards to Azure DNS."""
    d = with_pe(doc(), zone_links=(("link-fwd", "fwd"),) if link_forwarder_vnet else ())
    d["virtual_networks"].append({"name": "fwd", "address_space": ["10.9.0.0/16"], "subnets": [
        {"name": "default", "address_prefix": "10.9.0.0/24"}],
        "peerings": [{"name": "fwd-spoke", "remote_virtual_network": "spoke"}]})
    d["virtual_networks"][1]["peerings"].append({"name": "spoke-fwd", "remote_virtual_network": "fwd"})
    d["virtual_networks"][1]["dns_servers"] = ["10.9.0.53"]
    d["virtual_machines"].append({"name": "fwd1", "subnet": "fwd/default", "private_ip_address": "10.9.0.53",
                                  "dns_server": {"forwarders": ["168.63.129.16"]}})
    return d


def test_5_a_forwarder_in_an_unlinked_vnet_gets_public_answers_then_private_once_linked():
    d = forwarder_lab(link_forwarder_vnet=False)
    res = resolve(d, "vm2")
    assert res.server == "10.9.0.53" and res.addresses == [public_ip(d)]
    query = next(s for s in res.steps if s.kind == "Query" and s.server == "168.63.129.16")
    assert query.vnet == "fwd"  # whose VNet's links count: the forwarder's, not the client's
    d = forwarder_lab(link_forwarder_vnet=True)
    res = resolve(d, "vm2")
    assert res.addresses == [pe_ip(d)] and res.steps[-1].link == "link-fwd"


def test_6_a_registration_link_registers_the_vnets_vms():
    d = doc(private_dns_zones=[{"name": "corp.internal", "virtual_network_links": [
        {"name": "reg", "virtual_network": "hub", "registration_enabled": True}]}])
    v = view(d)
    zone = v.topo.find("private_dns_zones", "corp.internal")
    records = {r.name: r for r in dns.zone_records(v.topo, zone)}
    vm1_ip = v.topo.find("network_interfaces", "vm1VMNic").private_ip_address
    assert records["vm1"].is_auto_registered and records["vm1"].values == [vm1_ip]
    assert "vm2" not in records  # vm2's VNet has no registration link
    res = dns.resolve(v, "vm1", "vm1.corp.internal")
    assert res.addresses == [vm1_ip] and "auto-registered" in res.steps[-1].text
    d["virtual_machines"] = [vm for vm in d["virtual_machines"] if vm["name"] != "vm1"]  # the VM goes
    gone = dns.resolve(view(d), "vm2", "vm1.corp.internal")
    assert gone.outcome == "NXDOMAIN"  # spoke is not linked: public DNS has no corp.internal
    d["private_dns_zones"][0]["records"] = [{"name": "vm2", "type": "A", "value": "10.1.0.99"}]
    d["private_dns_zones"][0]["virtual_network_links"].append(
        {"name": "reg2", "virtual_network": "spoke", "registration_enabled": True})
    zone = view(d).topo.find("private_dns_zones", "corp.internal")
    vm2 = [r for r in dns.zone_records(view(d).topo, zone) if r.name == "vm2"]
    assert [(r.values, r.is_auto_registered) for r in vm2] == [(["10.1.0.99"], False)]  # a manual record wins


# -- the zone group's record goes with its endpoint -----------------------------------------------------
def test_a_zone_group_writes_the_endpoints_record_and_it_goes_with_the_endpoint():
    d = with_pe(doc())
    v = view(d)
    zone = v.topo.find("private_dns_zones", BLOB_ZONE)
    assert [(r.name, r.values) for r in dns.zone_records(v.topo, zone)] == [("acct1", [pe_ip(d)])]
    d["private_endpoints"] = []
    v = view(d)
    assert dns.zone_records(v.topo, v.topo.find("private_dns_zones", BLOB_ZONE)) == []
    res = dns.resolve(v, "vm1", ACCT)
    assert res.addresses == [public_ip(d)] and not any("privatelink" in c for c in res.cnames)


def test_only_an_approved_endpoint_gives_the_privatelink_alias():
    d = with_pe(doc(), zone_links=())
    d["private_endpoints"][0]["connection_state"] = "Pending"
    assert not any("privatelink" in c for c in resolve(d, "vm1").cnames)


def test_default_names_resolve_in_their_own_vnet_only():
    d = doc()
    v = view(d)
    vm1_ip = v.topo.find("network_interfaces", "vm1VMNic").private_ip_address
    assert dns.resolve(v, "vm1", "vm1.internal.cloudapp.net").addresses == [vm1_ip]
    assert dns.resolve(v, "vm1", "vm1").addresses == [vm1_ip]
    assert dns.resolve(v, "vm2", "vm1.internal.cloudapp.net").outcome == "NXDOMAIN"


def test_a_vnet_without_linked_zones_shares_the_public_answer_only_where_it_is_its_own():
    """Azure DNS answers a VNet without linked zones as the public resolver does, except for its
    own VMs' names: the engine computes such an answer once for every VNet; each must equal the
    answer worked out for that VNet alone."""
    d = with_pe(doc())   # the blob zone is linked to hub; spoke has no linked zone
    d["virtual_networks"].append({"name": "far", "address_space": ["10.2.0.0/16"],
                                  "subnets": [{"name": "default", "address_prefix": "10.2.0.0/24"}]})
    d["virtual_machines"].append({"name": "vm3", "subnet": "far/default"})
    v = view(d)
    names = dns.known_names(v) + ["vm1", "vm2", "vm3", "nothing.example.com"]
    for vnet in ("hub", "spoke", "far", None):
        alone = v.topo.vnet(vnet) if vnet else None
        for name in names:
            assert dns.azure_dns_answer(v, vnet, name).to_dict() == \
                dns._azure_dns_answer(v, alone, name.lower()).to_dict(), (vnet, name)
    assert dns.azure_dns_answer(v, "spoke", ACCT) is dns.azure_dns_answer(v, None, ACCT)
    assert dns.azure_dns_answer(v, "spoke", "vm2").addresses != []
    assert dns.azure_dns_answer(v, "hub", ACCT) is not dns.azure_dns_answer(v, None, ACCT)


# -- custom DNS servers ------------------------------------------------------------------------------
def test_a_custom_dns_server_without_forwarders_answers_only_its_own_zone():
    d = doc()
    d["virtual_networks"][0]["dns_servers"] = ["10.0.0.53"]
    d["virtual_machines"].append({"name": "dns1", "subnet": "hub/default", "private_ip_address": "10.0.0.53",
                                  "dns_server": {"zones": [{"name": "corp.example", "records": [
                                      {"name": "www", "type": "A", "value": "10.0.0.9"}]}]}})
    own = resolve(d, "vm1", "www.corp.example")
    assert own.addresses == ["10.0.0.9"] and own.steps[-1].kind == "OwnZone"
    assert resolve(d, "vm1", "nope.corp.example").outcome == "NXDOMAIN"
    res = resolve(d, "vm1", ACCT)
    assert res.outcome == "Timeout" and res.steps[-1].kind == "NoAnswer" and "no forwarder" in res.steps[-1].text


def test_conditional_forwarders_go_before_the_forwarders():
    d = forwarder_lab(link_forwarder_vnet=False)
    d["virtual_machines"][-1]["dns_server"] = {"forwarders": ["8.8.8.8"],
                                               "conditional_forwarders": {"blob.core.windows.net": ["168.63.129.16"]}}
    d["private_dns_zones"][0]["virtual_network_links"] = [{"name": "link-fwd", "virtual_network": "fwd"}]
    res = resolve(d, "vm2")
    assert res.addresses == [pe_ip(d)] and "ConditionalForwarder" in kinds(res)
    other = resolve(d, "vm2", "sql9.database.windows.net")
    assert other.outcome == "NXDOMAIN" and any("public resolver" in s.text for s in other.steps)


def test_an_nsg_blocking_udp_53_to_the_dns_server_is_a_timeout_that_says_why():
    d = forwarder_lab(link_forwarder_vnet=True)
    d["network_security_groups"] = [{"name": "no-dns", "security_rules": [
        {"name": "deny-dns", "priority": 100, "direction": "Inbound", "access": "Deny", "protocol": "Udp",
         "source_address_prefix": "*", "destination_address_prefix": "*", "destination_port_range": "53"}]}]
    d["virtual_networks"][2]["subnets"][0]["network_security_group"] = "no-dns"
    res = resolve(d, "vm2")
    assert res.outcome == "Timeout" and res.server is None
    assert res.steps[-1].kind == "NoAnswer" and "NsgDenied" in res.steps[-1].text


def test_a_server_that_does_not_answer_is_skipped_for_the_next():
    d = forwarder_lab(link_forwarder_vnet=True)
    d["virtual_networks"][1]["dns_servers"] = ["10.1.0.200", "10.9.0.53"]  # nothing listens at the first
    res = resolve(d, "vm2")
    assert res.servers == ["10.1.0.200", "10.9.0.53"] and res.server == "10.9.0.53" and res.addresses == [pe_ip(d)]


# -- the servers a source asks ------------------------------------------------------------------------
def app_lab(**app):
    d = with_pe(doc())
    d["app_service_plans"] = [{"name": "plan1", "sku": "P1v3"}]
    d["web_apps"] = [{"name": "app1", "plan": "plan1", "vnet_integration": "hub/integration", **app}]
    return d


def test_dns_servers_follow_azures_precedence():
    d = app_lab(app_settings={"WEBSITE_DNS_SERVER": "10.0.0.53", "WEBSITE_DNS_ALT_SERVER": "168.63.129.16"},
                dns_servers=["10.0.0.54"])
    d["virtual_networks"][0]["dns_servers"] = ["10.0.0.55"]
    d["virtual_machines"][0]["dns_servers"] = ["10.0.0.56"]
    v = view(d)
    assert dns.dns_servers_for(v, "app1") == ["10.0.0.53", "168.63.129.16"]
    assert dns.dns_servers_for(v, "vm1") == ["10.0.0.56"]
    d["web_apps"][0]["app_settings"] = {}
    d["virtual_machines"][0].pop("dns_servers")
    v = view(d)
    assert dns.dns_servers_for(v, "app1") == ["10.0.0.54"] and dns.dns_servers_for(v, "vm1") == ["10.0.0.55"]
    d["web_apps"][0]["dns_servers"] = []
    d["virtual_networks"][0]["dns_servers"] = []  # empty lists count as unset
    v = view(d)
    assert dns.dns_servers_for(v, "app1") == ["168.63.129.16"] == dns.dns_servers_for(v, "vm1")


# -- section 7, user pains -----------------------------------------------------------------------------
def test_pain_1_the_app_resolves_public_when_the_wrong_vnet_is_linked():
    d = app_lab()
    d["private_dns_zones"][0]["virtual_network_links"] = [{"name": "link-spoke", "virtual_network": "spoke"}]
    res = resolve(d, "app1")
    assert res.addresses == [public_ip(d)] and res.steps[1].vnet == "hub"
    d["private_dns_zones"][0]["virtual_network_links"].append({"name": "link-hub", "virtual_network": "hub"})
    assert resolve(d, "app1").addresses == [pe_ip(d)]


def test_pain_1_and_4_website_dns_server_to_a_public_resolver_bypasses_the_zones():
    d = app_lab()
    assert resolve(d, "app1").addresses == [pe_ip(d)]  # pain 4: no setting needed with Azure DNS
    d["web_apps"][0]["app_settings"] = {"WEBSITE_DNS_SERVER": "8.8.8.8"}
    res = resolve(d, "app1")
    assert res.server == "8.8.8.8" and res.addresses == [public_ip(d)]
    assert "app setting WEBSITE_DNS_SERVER" in res.steps[0].text and "no private zone" in res.steps[1].text


def test_pain_2_another_teams_endpoint_missing_from_the_linked_zone():
    d = with_pe(doc(), policy="Default")
    d["private_endpoints"].append({"name": "pe-team", "subnet": "spoke/default", "target": "acct2",
                                   "group_id": "blob"})
    assert resolve(d, "vm1", "acct2.blob.core.windows.net").outcome == "NXDOMAIN"
    d["private_dns_zones"][0]["virtual_network_links"][0]["resolution_policy"] = "NxDomainRedirect"
    assert resolve(d, "vm1", "acct2.blob.core.windows.net").addresses == [public_ip(d, name="acct2")]


def test_pain_3_a_custom_dns_that_does_not_forward_to_azure_dns_resolves_public():
    d = forwarder_lab(link_forwarder_vnet=True)
    d["virtual_machines"][-1]["dns_server"] = {"forwarders": ["8.8.8.8"]}
    res = resolve(d, "vm2")
    assert res.addresses == [public_ip(d)] and "acct1.privatelink.blob.core.windows.net" in res.cnames
    d["virtual_machines"][-1]["dns_server"] = {"conditional_forwarders": {BLOB_ZONE: ["168.63.129.16"]},
                                               "forwarders": ["8.8.8.8"]}
    res = resolve(d, "vm2")  # forwarding privatelink.* only: the public name never reaches Azure DNS
    assert res.addresses == [public_ip(d)]


def test_pain_15_a_separate_scm_zone_breaks_kudu():
    d = app_lab()
    d["private_endpoints"].append({"name": "pe-app", "subnet": "hub/pe", "target": "app1", "group_id": "sites",
                                   "private_dns_zone_group": ["privatelink.azurewebsites.net"]})
    d["private_dns_zones"].append({"name": "privatelink.azurewebsites.net", "virtual_network_links": [
        {"name": "l", "virtual_network": "hub"}]})
    kudu = "app1.scm.azurewebsites.net"
    res = resolve(d, "vm1", kudu)
    assert res.addresses == [pe_ip(d, "pe-app")] and res.steps[-1].zone == "privatelink.azurewebsites.net"
    d["private_dns_zones"].append({"name": "scm.privatelink.azurewebsites.net", "virtual_network_links": [
        {"name": "l", "virtual_network": "hub"}]})
    res = resolve(d, "vm1", kudu)
    assert res.outcome == "NXDOMAIN" and res.steps[-1].zone == "scm.privatelink.azurewebsites.net"
    assert resolve(d, "vm1", "app1.azurewebsites.net").addresses == [pe_ip(d, "pe-app")]


# -- the verb and the CLI --------------------------------------------------------------------------------
def test_known_names_hold_what_the_lab_answers():
    names = dns.known_names(view(with_pe(doc())))
    assert {ACCT, "acct1.privatelink.blob.core.windows.net", "vm1.internal.cloudapp.net"} <= set(names)


def test_a_stopped_app_resolves_nothing():
    d = app_lab(state="Stopped")
    with pytest.raises(AzureError) as err:
        resolve(d, "app1")
    assert err.value.code == "WebAppStopped"


def test_cli_resolve_prints_like_nslookup_and_says_why(tmp_path):
    import yaml
    d = with_pe(doc())
    f = tmp_path / "lab.yaml"
    f.write_text(yaml.safe_dump(d))
    home = tmp_path / "lab"
    assert cli(home, "up", str(f)).exit_code == 0
    out = cli(home, "resolve", "vm1", ACCT)
    assert out.exit_code == 0, out.output
    assert f"{ACCT}\tcanonical name = acct1.privatelink.blob.core.windows.net." in out.output
    assert f"Address: {pe_ip(d)}" in out.output and "link link-hub" in out.output
    missing = cli(home, "resolve", "vm1", "acct9.blob.core.windows.net")
    assert missing.exit_code == 1 and "** server can't find acct9.blob.core.windows.net: NXDOMAIN" in missing.output
    as_json = cli(home, "resolve", "vm2", ACCT, "-o", "json")
    import json
    body = json.loads(as_json.output)
    assert body["outcome"] == "NoError" and body["addresses"] == [public_ip(d)] and body["steps"][0]["kind"] == "Servers"
    assert cli(home, "resolve", "nobody", ACCT).exit_code == 2


# -- check by name ------------------------------------------------------------------------------------
def test_check_by_name_resolves_first_and_traces_to_the_answer():
    from vnetlab.engine.trace import StepKind, Verdict, trace
    d = with_pe(doc())
    t = trace(view(d), "vm1", ACCT, 443)
    out = t.to_dict()
    assert out["flow"]["destination"] == ACCT and out["flow"]["destination_ip"] == pe_ip(d)
    assert out["resolution"]["addresses"] == [pe_ip(d)] and out["resolution"]["outcome"] == "NoError"
    kinds_ = [s.kind for s in t.steps]
    assert kinds_[0] == StepKind.RESOLUTION and StepKind.ROUTE in kinds_ and t.verdict != Verdict.NOT_RESOLVED
    by_ip = trace(view(d), "vm1", "vm2", 80)
    assert "resolution" not in by_ip.to_dict()  # a lab resource's name is not looked up in DNS


def test_check_by_name_that_does_not_resolve(tmp_path):
    import json

    import yaml
    d = forwarder_lab(link_forwarder_vnet=True)
    d["virtual_machines"][-1]["dns_server"] = {}  # forwards nowhere
    f = tmp_path / "lab.yaml"
    f.write_text(yaml.safe_dump(d))
    home = tmp_path / "lab"
    assert cli(home, "up", str(f)).exit_code == 0
    out = cli(home, "check", "vm2", ACCT, "--port", "443", "-o", "json")
    body = json.loads(out.output)
    assert out.exit_code == 1 and (body["verdict"], body["reason"]) == ("NotResolved", "NoDnsAnswer")
    assert body["flow"]["destination_ip"] is None and body["resolution"]["outcome"] == "Timeout"
    assert body["steps"][-1]["kind"] == "Resolution" and body["steps"][-1]["step"] == "NoAnswer"
    out = cli(home, "check", "vm1", "acct9.blob.core.windows.net", "--port", "443")
    assert out.exit_code == 1 and "NotResolved (NameNotFound" in out.output


def test_pain_1_end_to_end_the_public_answer_meets_the_closed_public_endpoint():
    from vnetlab.engine.trace import Verdict, trace
    d = app_lab()
    d["storage_accounts"][0]["public_network_access"] = "Disabled"
    d["private_dns_zones"][0]["virtual_network_links"] = [{"name": "link-spoke", "virtual_network": "spoke"}]
    t = trace(view(d), "app1", ACCT, 443).to_dict()
    assert t["resolution"]["addresses"] == [public_ip(d)] and t["verdict"] == Verdict.DENIED
    assert t["admission"]["code"] == "AuthorizationFailure"
    d["private_dns_zones"][0]["virtual_network_links"].append({"name": "link-hub", "virtual_network": "hub"})
    t = trace(view(d), "app1", ACCT, 443).to_dict()
    assert t["resolution"]["addresses"] == [pe_ip(d)] and t["verdict"] == Verdict.CONNECTED
