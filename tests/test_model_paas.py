"""Issue 9's model: private DNS zones, private endpoints (with their read-only NIC), PaaS services and
their firewalls, DNS server settings; Azure's codes for what Azure refuses; round trips."""

import copy
from pathlib import Path

import pytest
import yaml
from conftest import cli

from vnetlab.lab import Lab, preview
from vnetlab.model import AzureError, Topology
from vnetlab.store import Store
from vnetlab.topology import export_doc, load, parse

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "private-endpoint.yaml"


def doc():
    return yaml.safe_load(EXAMPLE.read_text())


def addressed(d) -> Topology:
    """The lab ``up`` would make of ``d``: addressed and validated."""
    return preview(parse(d), None)


def refused(d) -> AzureError:
    with pytest.raises(AzureError) as err:
        addressed(d)
    return err.value


def pe(d, name="pe-blob"):
    return next(p for p in d["private_endpoints"] if p["name"] == name)


def subnet(d, ref):
    vnet_name, sn_name = ref.split("/")
    vnet = next(v for v in d["virtual_networks"] if v["name"] == vnet_name)
    return next(s for s in vnet["subnets"] if s["name"] == sn_name)


# -- the model ------------------------------------------------------------------------------------
def test_a_private_endpoint_gets_its_read_only_nic_with_a_dynamic_address():
    topo = addressed(doc())
    endpoint = topo.find("private_endpoints", "pe-blob")
    nic = topo.private_endpoint_nic(endpoint)
    assert nic.name.startswith("pe-blob.nic.") and len(nic.name) == len("pe-blob.nic.") + 36
    assert nic.private_endpoint == "pe-blob" and nic.subnet == "hub/pe"
    assert nic.private_ip_allocation_method == "Dynamic"
    assert topo.private_endpoint_ip(endpoint) == "10.0.2.4"  # the lowest free address, as any dynamic NIC
    assert topo.vm_of_nic(nic.name) is None


def test_a_static_endpoint_address_is_its_nics_and_a_custom_nic_name_is_kept():
    d = doc()
    pe(d).update(private_ip_address="10.0.2.5", custom_network_interface_name="pe-blob-nic")
    topo = addressed(d)
    nic = topo.find("network_interfaces", "pe-blob-nic")
    assert (nic.private_ip_address, nic.private_ip_allocation_method) == ("10.0.2.5", "Static")


def test_the_nic_name_is_the_same_for_the_same_endpoint():
    assert [n.name for n in addressed(doc()).network_interfaces] == [n.name for n in addressed(doc()).network_interfaces]


def test_the_endpoint_address_collides_as_any_nic_address_does():
    d = doc()
    pe(d)["private_ip_address"] = "10.0.2.4"
    d["virtual_machines"].append({"name": "vm9", "subnet": "hub/pe", "private_ip_address": "10.0.2.4"})
    assert refused(d).code == "PrivateIPAddressIsAllocated"


def test_the_target_by_arm_id_and_by_name():
    d = doc()
    topo = addressed(d)
    assert topo.private_link_target(topo.find("private_endpoints", "pe-blob"))[0] == "storage_accounts"
    pe(d)["target"] = topo.id_of("storage_accounts", topo.find("storage_accounts", "acct1"))
    topo = addressed(d)
    kind, account = topo.private_link_target(topo.find("private_endpoints", "pe-blob"))
    assert (kind, account.name) == ("storage_accounts", "acct1")
    assert [p.name for p in topo.private_endpoints_to("storage_accounts", "acct1")] == ["pe-blob"]


def test_dns_server_settings_of_vms_nics_and_apps():
    d = doc()
    d["virtual_machines"][0]["dns_servers"] = ["10.0.0.53"]
    topo = addressed(d)
    assert topo.find("network_interfaces", "vm1VMNic").dns_servers == ["10.0.0.53"]
    assert topo.find("virtual_machines", "dns1").dns_server.forwarders == ["168.63.129.16"]
    assert topo.find("virtual_machines", "dns1").dns_server.zones[0].records[0].values == ["10.0.0.9"]
    assert topo.find("web_apps", "app1").dns_servers == ["168.63.129.16"]
    assert topo.vnet("spoke").dns_servers == ["10.0.0.53"]


def test_records_take_one_value_and_are_lower_cased():
    d = doc()
    d["private_dns_zones"][0]["records"] = [{"name": "Acct1", "type": "a", "value": "10.0.2.9"},
                                            {"name": "www", "type": "CNAME", "value": "App.Contoso.com."}]
    zone = addressed(d).find("private_dns_zones", "privatelink.blob.core.windows.net")
    assert [(r.name, r.type, r.values) for r in zone.records] == [("acct1", "A", ["10.0.2.9"]),
                                                                  ("www", "CNAME", ["app.contoso.com"])]


def test_arm_shapes_of_rules_are_accepted():
    d = doc()
    d["storage_accounts"][0]["network_rule_set"] = {
        "default_action": "deny", "bypass": "Logging, Metrics", "ip_rules": [{"value": "203.0.113.7", "action": "Allow"}],
        "virtual_network_rules": [{"id": "/subscriptions/0/resourceGroups/rg1/providers/Microsoft.Network/"
                                          "virtualNetworks/hub/subnets/integration", "action": "Allow"}]}
    d["sql_servers"][0]["virtual_network_rules"] = [{"name": "r", "virtual_network_subnet_id": "hub/default"}]
    topo = addressed(d)
    rules = topo.find("storage_accounts", "acct1").network_rule_set
    assert (rules.default_action, rules.bypass, rules.ip_rules, rules.virtual_network_rules) == (
        "Deny", ["Logging", "Metrics"], ["203.0.113.7"], ["hub/integration"])
    assert topo.find("sql_servers", "sql1").virtual_network_rules[0].subnet == "hub/default"


# -- round trips -------------------------------------------------------------------------------
def test_export_round_trip():
    topo = addressed(doc())
    assert parse(export_doc(topo)) == topo
    assert parse(yaml.safe_load(yaml.safe_dump(export_doc(topo)))) == topo


def test_store_round_trip_and_the_nic_goes_with_its_endpoint(tmp_path):
    home = tmp_path / "lab"
    assert cli(home, "up", str(EXAMPLE)).exit_code == 0
    lab = Lab(Store.open(home))
    stored = lab.topology()
    assert stored == addressed(doc())
    nic = stored.private_endpoint_nic(stored.find("private_endpoints", "pe-blob")).name

    def delete_endpoint(t):
        t.private_endpoints = []
    after = lab.change(delete_endpoint, create=False)
    assert after.find("network_interfaces", nic) is None
    assert Lab(Store.open(home)).topology().find("network_interfaces", nic) is None


def test_the_schema_example_loads():
    assert load(EXAMPLE).find("private_endpoints", "pe-blob").group_id == "blob"


# -- Azure's refusals --------------------------------------------------------------------------
def _link(d, **link):
    d["private_dns_zones"][0]["virtual_network_links"].append(link)


REFUSALS = {
    "InvalidResourceReference": lambda d: pe(d).update(subnet="hub/nowhere"),
    "MissingParameterOnPrivateLinkServiceConnection": lambda d: pe(d).pop("group_id"),
    "InvalidValuesForRequestParameters": lambda d: pe(d).update(group_id="sqlServer"),
    "PrivateEndpointCannotBeCreatedInSubnetThatHasDelegations": lambda d: pe(d).update(subnet="hub/integration"),
    "NetworkAclsValidationFailure": lambda d: d["storage_accounts"][0]["network_rule_set"].update(
        virtual_network_rules=["hub/default"]),
    "VirtualNetworkRuleBadRequest": lambda d: d["sql_servers"][0].update(
        virtual_network_rules=[{"name": "r", "subnet": "hub/pe"}]),
    "Conflict": lambda d: d["private_dns_zones"].append(
        {"name": "other.internal", "virtual_network_links": [
            {"name": "reg", "virtual_network": "hub", "registration_enabled": True}]}),
    "BadRequest": lambda d: _link(d, name="link-hub-2", virtual_network="hub"),
    "AccountNameInvalid": lambda d: d["storage_accounts"][0].update(name="Acct_1"),
    "VaultNameNotValid": lambda d: d["key_vaults"][0].update(name="1kv"),
    "InvalidServerName": lambda d: d["sql_servers"][0].update(name="-sql"),
    "UnsupportedRecordType": lambda d: d["private_dns_zones"][0].update(
        records=[{"name": "mx", "type": "MX", "value": "mail.example"}]),
    "DuplicateResourceName": lambda d: _link(d, name="link-hub", virtual_network="spoke"),
}


@pytest.mark.parametrize("code", REFUSALS)
def test_refused_with_azures_code(code):
    d = doc()
    REFUSALS[code](d)
    assert refused(d).code == code


def test_texts_of_the_refusals_are_azures():
    d = doc()
    d["storage_accounts"][0]["network_rule_set"]["virtual_network_rules"] = ["hub/default"]
    assert "do not have ServiceEndpoints for Microsoft.Storage resources configured" in refused(d).message
    d = doc()
    pe(d)["group_id"] = "vault"
    assert refused(d).message.startswith("Call to Microsoft.Storage/storageAccounts failed. Error message: Values "
                                         "for request parameters are invalid: GroupId: vault.")
    d = doc()
    REFUSALS["Conflict"](d)
    assert "can only be linked to 1 Private DNS zone(s) with auto-registration enabled; conflicting Private DNS " \
           "zone is 'corp.internal'" in refused(d).message


def test_a_sql_rule_may_ignore_the_missing_endpoint():
    d = doc()
    d["sql_servers"][0]["virtual_network_rules"] = [{"name": "r", "subnet": "hub/pe",
                                                     "ignore_missing_vnet_service_endpoint": True}]
    assert addressed(d).find("sql_servers", "sql1").virtual_network_rules[0].ignore_missing_vnet_service_endpoint


@pytest.mark.parametrize("name,ok", [("blob.core.windows.net", False), ("windows.net", False), ("contoso", False),
                                     ("privatelink.file.core.windows.net", True), ("corp.example", True),
                                     ("privatelink.vaultcore.azure.net", True), ("azure-api.net", False)])
def test_zone_names(name, ok):
    d = doc()
    d["private_dns_zones"].append({"name": name})
    if ok:
        assert addressed(d).find("private_dns_zones", name) is not None
    else:
        assert refused(d).code == "BadRequest"


def test_ip_rules_take_public_addresses_only():
    d = doc()
    d["key_vaults"][0]["network_acls"]["ip_rules"] = ["10.1.2.3"]
    assert refused(d).code == "NetworkAclsValidationFailure"
    d["key_vaults"][0]["network_acls"]["ip_rules"] = ["203.0.113.7/32"]
    assert refused(d).code == "NetworkAclsValidationFailure"


def test_a_zone_group_names_existing_zones():
    d = doc()
    pe(d)["private_dns_zone_group"] = ["privatelink.file.core.windows.net"]
    assert refused(d).code == "InvalidResourceReference"


def test_sql_firewall_rules_cannot_change_while_public_access_is_disabled(tmp_path):
    d = doc()
    d["sql_servers"][0]["public_network_access"] = "Disabled"
    lab_file = tmp_path / "lab.yaml"
    lab_file.write_text(yaml.safe_dump(d))
    home = tmp_path / "lab"
    assert cli(home, "up", str(lab_file)).exit_code == 0
    changed = copy.deepcopy(d)
    changed["sql_servers"][0]["firewall_rules"].append(
        {"name": "home", "start_ip_address": "198.51.100.9", "end_ip_address": "198.51.100.9"})
    lab_file.write_text(yaml.safe_dump(changed))
    before = Store.open(home).load()
    result = cli(home, "up", str(lab_file))
    assert result.exit_code == 2 and "(42101)" in result.output
    assert Store.open(home).load() == before
