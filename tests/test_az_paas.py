"""The az commands people type for private DNS, private endpoints, storage, SQL and Key Vault (issue 9
section 4), unmodified, against the endpoint: each asserts the lab stored afterwards. The last test
builds a lab with az and the same lab from a topology file, and requires the two to be equal.
Without azure-cli these tests skip (see tests/test_az_cli.py)."""

from __future__ import annotations


import pytest
import yaml
from conftest import cli
from test_az_cli import logged_in_az

from vnetlab.api.discovery import SUBSCRIPTION
from vnetlab.engine.dns import dns_servers_for
from vnetlab.lab import Lab

pytestmark = pytest.mark.az

LOC = "westeurope"
BLOB_ZONE = "privatelink.blob.core.windows.net"


def rg_id(rg: str) -> str:
    return f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{rg}"


def subnet_id(rg: str, vnet: str, subnet: str) -> str:
    return f"{rg_id(rg)}/providers/Microsoft.Network/virtualNetworks/{vnet}/subnets/{subnet}"


@pytest.fixture(scope="module")
def az(tmp_path_factory):
    with logged_in_az(tmp_path_factory.mktemp("azpaas")) as run:
        yield run


def hub(az, rg: str) -> None:
    """A group with VNet hub: subnet app (10.0.1.0/24) and subnet pe (10.0.2.0/24)."""
    az.script(f"""
        group create -n {rg} -l {LOC}
        network vnet create -g {rg} -n hub --address-prefixes 10.0.0.0/16 --subnet-name app --subnet-prefixes 10.0.1.0/24
        network vnet subnet create -g {rg} --vnet-name hub -n pe --address-prefixes 10.0.2.0/24
    """)


# -- subnets ------------------------------------------------------------------------------------------

def test_subnet_update_service_endpoints_and_private_endpoint_network_policies(az):
    hub(az, "rg-se")
    subnet = az.show("network", "vnet", "subnet", "update", "-g", "rg-se", "--vnet-name", "hub", "-n", "app",
                     "--service-endpoints", "Microsoft.Storage", "Microsoft.Sql")
    assert [e["service"] for e in subnet["serviceEndpoints"]] == ["Microsoft.Storage", "Microsoft.Sql"]
    assert subnet["serviceEndpoints"][0]["locations"] == [LOC]
    az("network", "vnet", "subnet", "update", "-g", "rg-se", "--vnet-name", "hub", "-n", "pe",
       "--private-endpoint-network-policies", "Enabled")
    vnet = az.lab.topology().vnet("hub")
    assert vnet.subnet("app").service_endpoints == ["Microsoft.Storage", "Microsoft.Sql"]
    assert vnet.subnet("pe").private_endpoint_network_policies == "Enabled"
    az("network", "vnet", "subnet", "update", "-g", "rg-se", "--vnet-name", "hub", "-n", "app",
       "--service-endpoints", "null")
    assert az.lab.topology().vnet("hub").subnet("app").service_endpoints == []
    az("group", "delete", "-n", "rg-se", "--yes")


# -- private DNS zones --------------------------------------------------------------------------------

def test_private_dns_zone_link_and_record_sets(az):
    hub(az, "rg-dns")
    zone = az.show("network", "private-dns", "zone", "create", "-g", "rg-dns", "-n", "Contoso.Internal")
    assert zone["name"] == "contoso.internal" and zone["location"] == "global"
    link = az.show("network", "private-dns", "link", "vnet", "create", "-g", "rg-dns", "-z", "contoso.internal",
                   "-n", "link-hub", "-v", "hub", "-e", "true")
    assert link["virtualNetworkLinkState"] == "Completed" and link["registrationEnabled"] is True
    assert link["virtualNetwork"]["id"].endswith("/virtualNetworks/hub")
    record = az.show("network", "private-dns", "record-set", "a", "add-record", "-g", "rg-dns", "-z",
                     "contoso.internal", "-n", "WWW", "-a", "10.0.1.9")
    assert record["name"] == "www" and record["fqdn"] == "www.contoso.internal."
    assert record["aRecords"] == [{"ipv4Address": "10.0.1.9"}]
    az("network", "private-dns", "record-set", "a", "add-record", "-g", "rg-dns", "-z", "contoso.internal",
       "-n", "www", "-a", "10.0.1.10")
    az("network", "private-dns", "record-set", "cname", "set-record", "-g", "rg-dns", "-z", "contoso.internal",
       "-n", "api", "-c", "www.contoso.internal")
    stored = az.lab.topology().find("private_dns_zones", "contoso.internal")
    assert [(r.name, r.type, r.values) for r in stored.records] == [
        ("www", "A", ["10.0.1.9", "10.0.1.10"]), ("api", "CNAME", ["www.contoso.internal"])]
    assert [(k.name, k.virtual_network, k.registration_enabled) for k in stored.virtual_network_links] == [
        ("link-hub", "hub", True)]
    shown = az.show("network", "private-dns", "zone", "show", "-g", "rg-dns", "-n", "contoso.internal")
    assert shown["numberOfVirtualNetworkLinks"] == 1 and shown["numberOfVirtualNetworkLinksWithRegistration"] == 1
    assert shown["numberOfRecordSets"] >= 3  # the two written and the zone's SOA
    listed = az.show("network", "private-dns", "record-set", "list", "-g", "rg-dns", "-z", "contoso.internal")
    assert {("www", "Microsoft.Network/privateDnsZones/A"), ("api", "Microsoft.Network/privateDnsZones/CNAME")} <= {
        (r["name"], r["type"]) for r in listed}
    # Azure refuses a second link of the same VNet; nothing changes
    again = az("network", "private-dns", "link", "vnet", "create", "-g", "rg-dns", "-z", "contoso.internal",
               "-n", "link-2", "-v", "hub", "-e", "false", check=False)
    assert again.returncode != 0 and "cannot be linked to multiple zones" in again.stderr
    assert len(az.lab.topology().find("private_dns_zones", "contoso.internal").virtual_network_links) == 1
    az("network", "private-dns", "record-set", "a", "remove-record", "-g", "rg-dns", "-z", "contoso.internal",
       "-n", "www", "-a", "10.0.1.10")
    assert az.lab.topology().find("private_dns_zones", "contoso.internal").record("www")[0].values == ["10.0.1.9"]
    az("group", "delete", "-n", "rg-dns", "--yes")
    assert az.lab.topology().find("private_dns_zones", "contoso.internal") is None


def test_reserved_zone_name_is_refused(az):
    az("group", "create", "-n", "rg-res", "-l", LOC)
    refused = az("network", "private-dns", "zone", "create", "-g", "rg-res", "-n", "core.windows.net", check=False)
    assert refused.returncode != 0 and "reserved Azure" in refused.stderr
    assert az.lab.topology().find("private_dns_zones", "core.windows.net") is None
    az("group", "delete", "-n", "rg-res", "--yes")


# -- private endpoints ----------------------------------------------------------------------------------

def test_private_endpoint_create_its_nic_and_dns_zone_group(az):
    hub(az, "rg-pe")
    acct = az.show("storage", "account", "create", "-g", "rg-pe", "-n", "acctpe", "-l", LOC, "--sku", "Standard_LRS")
    assert acct["primaryEndpoints"]["blob"] == "https://acctpe.blob.core.windows.net/"
    pe = az.show("network", "private-endpoint", "create", "-g", "rg-pe", "-n", "pe-blob", "--vnet-name", "hub",
                 "--subnet", "pe", "--private-connection-resource-id", acct["id"], "--group-id", "blob",
                 "--connection-name", "conn1")
    topo = az.lab.topology()
    stored = topo.find("private_endpoints", "pe-blob")
    assert (stored.subnet, stored.target, stored.group_id, stored.connection_state) == (
        "hub/pe", "acctpe", "blob", "Approved")
    [nic] = [n for n in topo.network_interfaces if n.private_endpoint == "pe-blob"]
    assert nic.subnet == "hub/pe" and nic.private_ip_address == "10.0.2.4"  # the first free address
    conn = pe["privateLinkServiceConnections"][0]
    assert conn["privateLinkServiceId"] == acct["id"] and conn["groupIds"] == ["blob"]
    assert conn["privateLinkServiceConnectionState"]["status"] == "Approved"
    assert pe["customDnsConfigs"] == [{"fqdn": "acctpe.blob.core.windows.net", "ipAddresses": ["10.0.2.4"]}]
    # the endpoint's NIC is a network interface like any other, owned by the endpoint
    shown_nic = az.show("network", "nic", "show", "--ids", pe["networkInterfaces"][0]["id"])
    assert shown_nic["privateEndpoint"]["id"] == pe["id"]
    assert shown_nic["ipConfigurations"][0]["privateIPAddress"] == "10.0.2.4"
    subnet = az.show("network", "vnet", "subnet", "show", "-g", "rg-pe", "--vnet-name", "hub", "-n", "pe")
    assert [p["id"] for p in subnet["privateEndpoints"]] == [pe["id"]]
    # the target shows the connection
    assert az.show("storage", "account", "show", "-g", "rg-pe", "-n", "acctpe")[
        "privateEndpointConnections"][0]["privateEndpoint"]["id"] == pe["id"]
    az.script(f"""
        network private-dns zone create -g rg-pe -n {BLOB_ZONE}
        network private-dns link vnet create -g rg-pe -z {BLOB_ZONE} -n link-hub -v hub -e false
        network private-endpoint dns-zone-group create -g rg-pe --endpoint-name pe-blob -n default --private-dns-zone {BLOB_ZONE} --zone-name blob
    """)
    assert az.lab.topology().find("private_endpoints", "pe-blob").private_dns_zone_group == [BLOB_ZONE]
    # the zone group wrote the account's A record: the zone answers the endpoint's address
    written = az.show("network", "private-dns", "record-set", "a", "show", "-g", "rg-pe", "-z", BLOB_ZONE,
                      "-n", "acctpe")
    assert written["aRecords"] == [{"ipv4Address": "10.0.2.4"}] and written["fqdn"] == f"acctpe.{BLOB_ZONE}."
    group = az.show("network", "private-endpoint", "dns-zone-group", "show", "-g", "rg-pe", "--endpoint-name",
                    "pe-blob", "-n", "default")
    assert group["privateDnsZoneConfigs"][0]["privateDnsZoneId"].endswith(f"/privateDnsZones/{BLOB_ZONE}")
    # deleting the endpoint takes its NIC and its record with it
    az("network", "private-endpoint", "delete", "-g", "rg-pe", "-n", "pe-blob")
    after = az.lab.topology()
    assert after.find("private_endpoints", "pe-blob") is None
    assert not any(n.private_endpoint for n in after.network_interfaces)
    gone = az("network", "private-dns", "record-set", "a", "show", "-g", "rg-pe", "-z", BLOB_ZONE, "-n", "acctpe",
              check=False)
    assert gone.returncode == 3 and "NotFound" in gone.stderr
    az("group", "delete", "-n", "rg-pe", "--yes")


def test_manual_private_endpoint_is_pending_and_a_bad_group_id_is_refused(az):
    hub(az, "rg-man")
    vault = az.show("keyvault", "create", "-g", "rg-man", "-n", "kvman", "-l", LOC)
    pe = az.show("network", "private-endpoint", "create", "-g", "rg-man", "-n", "pe-kv", "--vnet-name", "hub",
                 "--subnet", "pe", "--private-connection-resource-id", vault["id"], "--group-id", "vault",
                 "--connection-name", "c1", "--manual-request", "true")
    assert pe["manualPrivateLinkServiceConnections"][0]["privateLinkServiceConnectionState"]["status"] == "Pending"
    assert az.lab.topology().find("private_endpoints", "pe-kv").connection_state == "Pending"
    # the vault's owner approves it (az waits 10 s before it looks again)
    [conn] = az.show("network", "private-endpoint-connection", "list", "--id", vault["id"])
    az("network", "private-endpoint-connection", "approve", "--id", conn["id"], "--description", "ok")
    assert az.lab.topology().find("private_endpoints", "pe-kv").connection_state == "Approved"
    groups = az.show("network", "private-link-resource", "list", "--id", vault["id"])
    assert [g["properties"]["groupId"] for g in groups] == ["vault"]
    bad = az("network", "private-endpoint", "create", "-g", "rg-man", "-n", "pe-bad", "--vnet-name", "hub",
             "--subnet", "pe", "--private-connection-resource-id", vault["id"], "--group-id", "blob",
             "--connection-name", "c2", check=False)
    assert bad.returncode != 0 and "InvalidValuesForRequestParameters" in bad.stderr
    assert az.lab.topology().find("private_endpoints", "pe-bad") is None
    az("group", "delete", "-n", "rg-man", "--yes")


# -- storage ------------------------------------------------------------------------------------------

def test_storage_account_deny_public_access_and_network_rules(az):
    hub(az, "rg-st")
    az("storage", "account", "create", "-g", "rg-st", "-n", "acctst", "-l", LOC, "--sku", "Standard_LRS")
    # a VNet rule needs the Microsoft.Storage service endpoint on the subnet: refused, nothing changes
    refused = az("storage", "account", "network-rule", "add", "-g", "rg-st", "--account-name", "acctst",
                 "--subnet", subnet_id("rg-st", "hub", "app"), check=False)
    assert refused.returncode != 0 and "SubnetsHaveNoServiceEndpointsConfigured" in refused.stderr
    assert az.lab.topology().find("storage_accounts", "acctst").network_rule_set.virtual_network_rules == []
    az.script("""
        network vnet subnet update -g rg-st --vnet-name hub -n app --service-endpoints Microsoft.Storage
        storage account network-rule add -g rg-st --account-name acctst --subnet app --vnet-name hub
        storage account network-rule add -g rg-st --account-name acctst --ip-address 203.0.113.7
        storage account update -g rg-st -n acctst --default-action Deny --public-network-access Disabled --bypass Logging Metrics
    """)
    acct = az.lab.topology().find("storage_accounts", "acctst")
    assert acct.public_network_access == "Disabled"
    rules = acct.network_rule_set
    assert (rules.default_action, rules.bypass, rules.virtual_network_rules, rules.ip_rules) == (
        "Deny", ["Logging", "Metrics"], ["hub/app"], ["203.0.113.7"])
    shown = az.show("storage", "account", "show", "-g", "rg-st", "-n", "acctst")
    assert shown["networkRuleSet"]["defaultAction"] == "Deny" and shown["publicNetworkAccess"] == "Disabled"
    assert shown["networkRuleSet"]["virtualNetworkRules"][0]["virtualNetworkResourceId"] == subnet_id(
        "rg-st", "hub", "app")
    listed = az.show("storage", "account", "network-rule", "list", "-g", "rg-st", "--account-name", "acctst")
    assert [r["ipAddressOrRange"] for r in listed["ipRules"]] == ["203.0.113.7"]
    az("storage", "account", "network-rule", "remove", "-g", "rg-st", "--account-name", "acctst",
       "--ip-address", "203.0.113.7")
    assert az.lab.topology().find("storage_accounts", "acctst").network_rule_set.ip_rules == []
    az("group", "delete", "-n", "rg-st", "--yes")


# -- SQL ----------------------------------------------------------------------------------------------

def test_sql_server_vnet_rule_and_firewall_rule_refused_while_public_access_is_disabled(az):
    hub(az, "rg-sql")
    server = az.show("sql", "server", "create", "-g", "rg-sql", "-n", "sqlpaas", "-l", LOC, "-u", "sqladmin",
                     "-p", "Passw0rd!Passw0rd")
    assert server["fullyQualifiedDomainName"] == "sqlpaas.database.windows.net"
    missing = az("sql", "server", "vnet-rule", "create", "-g", "rg-sql", "-s", "sqlpaas", "-n", "app",
                 "--vnet-name", "hub", "--subnet", "app", check=False)
    assert missing.returncode != 0 and "Microsoft.Sql service endpoint" in missing.stderr
    az.script("""
        sql server vnet-rule create -g rg-sql -s sqlpaas -n app --vnet-name hub --subnet app --ignore-missing-endpoint true
        sql server firewall-rule create -g rg-sql -s sqlpaas -n office --start-ip-address 198.51.100.1 --end-ip-address 198.51.100.1
        sql server update -g rg-sql -n sqlpaas --set publicNetworkAccess=Disabled
    """)
    stored = az.lab.topology().find("sql_servers", "sqlpaas")
    assert stored.public_network_access == "Disabled"
    assert [(r.name, r.start_ip_address, r.end_ip_address) for r in stored.firewall_rules] == [
        ("office", "198.51.100.1", "198.51.100.1")]
    assert [(r.name, r.subnet, r.ignore_missing_vnet_service_endpoint) for r in stored.virtual_network_rules] == [
        ("app", "hub/app", True)]
    # SQL error 42101: no firewall rule changes while public network access is disabled
    refused = az("sql", "server", "firewall-rule", "create", "-g", "rg-sql", "-s", "sqlpaas", "-n", "home",
                 "--start-ip-address", "198.51.100.2", "--end-ip-address", "198.51.100.2", check=False)
    assert refused.returncode != 0
    assert "Unable to create or modify firewall rules when public network interface for the server is disabled" \
        in refused.stderr
    assert [r.name for r in az.lab.topology().find("sql_servers", "sqlpaas").firewall_rules] == ["office"]
    listed = az.show("sql", "server", "firewall-rule", "list", "-g", "rg-sql", "-s", "sqlpaas")
    assert [r["name"] for r in listed] == ["office"]
    az("group", "delete", "-n", "rg-sql", "--yes")


# -- Key Vault ------------------------------------------------------------------------------------------

def test_keyvault_create_network_rule_add_and_deny(az):
    hub(az, "rg-kv")
    vault = az.show("keyvault", "create", "-g", "rg-kv", "-n", "kvpaas", "-l", LOC)  # RBAC: no Graph look-up
    assert vault["properties"]["vaultUri"] == "https://kvpaas.vault.azure.net/"
    az.script(f"""
        network vnet subnet update -g rg-kv --vnet-name hub -n app --service-endpoints Microsoft.KeyVault
        keyvault network-rule add -g rg-kv -n kvpaas --subnet {subnet_id("rg-kv", "hub", "app")}
        keyvault network-rule add -g rg-kv -n kvpaas --ip-address 203.0.113.0/24
        keyvault update -g rg-kv -n kvpaas --default-action Deny --bypass None --public-network-access Enabled
    """)
    acls = az.lab.topology().find("key_vaults", "kvpaas").network_acls
    assert (acls.default_action, acls.bypass, acls.virtual_network_rules, acls.ip_rules) == (
        "Deny", "None", ["hub/app"], ["203.0.113.0/24"])
    az("keyvault", "update", "-g", "rg-kv", "-n", "kvpaas", "--public-network-access", "Disabled")
    assert az.lab.topology().find("key_vaults", "kvpaas").public_network_access == "Disabled"
    az("group", "delete", "-n", "rg-kv", "--yes")


# -- web apps' DNS --------------------------------------------------------------------------------------

def test_webapp_dns_server_app_setting_and_dns_configuration(az):
    az.script("""
        group create -n rg-web -l westeurope
        appservice plan create -g rg-web -n plan-dns --sku P1V3 --is-linux
        webapp create -g rg-web -p plan-dns -n app-dns --container-image-name nginx:latest
        webapp config appsettings set -g rg-web -n app-dns --settings WEBSITE_DNS_SERVER=10.0.0.53 WEBSITE_DNS_ALT_SERVER=168.63.129.16
    """)
    app = az.lab.topology().find("web_apps", "app-dns")
    assert app.app_settings["WEBSITE_DNS_SERVER"] == "10.0.0.53"
    assert app.app_settings["WEBSITE_DNS_ALT_SERVER"] == "168.63.129.16"
    assert dns_servers_for(az.lab.network(), "app-dns") == ["10.0.0.53", "168.63.129.16"]  # the app asks these
    site = az.lab.topology().id_of("web_apps", app)
    az("resource", "update", "--ids", site, "--set", "properties.dnsConfiguration.dnsServers=['10.0.0.4']")
    assert az.lab.topology().find("web_apps", "app-dns").dns_servers == ["10.0.0.4"]
    az("webapp", "config", "appsettings", "delete", "-g", "rg-web", "-n", "app-dns", "--setting-names",
       "WEBSITE_DNS_SERVER", "WEBSITE_DNS_ALT_SERVER")
    assert dns_servers_for(az.lab.network(), "app-dns") == ["10.0.0.4"]  # dnsConfiguration, below the setting
    assert az.show("webapp", "show", "-g", "rg-web", "-n", "app-dns")["dnsConfiguration"]["dnsServers"] == [
        "10.0.0.4"]
    az("group", "delete", "-n", "rg-web", "--yes")


# -- az and a topology file make the same lab --------------------------------------------------------------

SAME = {
    "name": "same", "location": LOC, "resource_group": "rg-same",
    "virtual_networks": [{"name": "hub", "address_space": ["10.0.0.0/16"], "subnets": [
        {"name": "app", "address_prefix": "10.0.1.0/24",
         "service_endpoints": ["Microsoft.Storage", "Microsoft.Sql", "Microsoft.KeyVault"]},
        {"name": "pe", "address_prefix": "10.0.2.0/24"}]}],
    "private_dns_zones": [{"name": BLOB_ZONE, "records": [{"name": "www", "type": "A", "values": ["10.0.2.9"]}],
                           "virtual_network_links": [{"name": "link-hub", "virtual_network": "hub",
                                                      "resolution_policy": "NxDomainRedirect"}]}],
    "private_endpoints": [{"name": "pe-same", "subnet": "hub/pe", "target": "acctsame", "group_id": "blob",
                           "private_dns_zone_group": [BLOB_ZONE]}],
    "storage_accounts": [{"name": "acctsame", "public_network_access": "Disabled",
                          "network_rule_set": {"default_action": "Deny", "virtual_network_rules": ["hub/app"]}}],
    "sql_servers": [{"name": "sqlsame", "firewall_rules": [{"name": "office", "start_ip_address": "198.51.100.1",
                                                           "end_ip_address": "198.51.100.1"}],
                     "virtual_network_rules": [{"name": "app", "subnet": "hub/app"}]}],
    "key_vaults": [{"name": "kvsame", "network_acls": {"default_action": "Deny",
                                                       "virtual_network_rules": ["hub/app"]}}],
}
KINDS9 = ("virtual_networks", "network_interfaces", "private_dns_zones", "private_endpoints", "storage_accounts",
          "sql_servers", "key_vaults")


def _resources(topo, rg: str) -> dict:
    """The group's resources of issue 9's kinds, with their group and location resolved (a file may
    leave them to the lab's defaults; az names them)."""
    out = {}
    for kind in KINDS9:
        items = []
        for r in getattr(topo, kind):
            if topo.rg_of(r).lower() == rg:
                items.append({**r.model_dump(exclude={"resource_group", "location"}), "group": topo.rg_of(r),
                              "region": topo.location_of(r) if kind != "private_dns_zones" else "global"})
        out[kind] = sorted(items, key=lambda d: d["name"])
    return out


def test_az_and_a_topology_file_make_the_same_lab(az, tmp_path):
    sub = subnet_id("rg-same", "hub", "app")
    az.script(f"""
        group create -n rg-same -l {LOC}
        network vnet create -g rg-same -n hub --address-prefixes 10.0.0.0/16 --subnet-name app --subnet-prefixes 10.0.1.0/24
        network vnet subnet create -g rg-same --vnet-name hub -n pe --address-prefixes 10.0.2.0/24
        network vnet subnet update -g rg-same --vnet-name hub -n app --service-endpoints Microsoft.Storage Microsoft.Sql Microsoft.KeyVault
        storage account create -g rg-same -n acctsame -l {LOC} --sku Standard_LRS
        storage account network-rule add -g rg-same --account-name acctsame --subnet {sub}
        storage account update -g rg-same -n acctsame --default-action Deny --public-network-access Disabled
        network private-dns zone create -g rg-same -n {BLOB_ZONE}
        network private-dns link vnet create -g rg-same -z {BLOB_ZONE} -n link-hub -v hub -e false --resolution-policy NxDomainRedirect
        network private-dns record-set a add-record -g rg-same -z {BLOB_ZONE} -n www -a 10.0.2.9
        network private-endpoint create -g rg-same -n pe-same --vnet-name hub --subnet pe --private-connection-resource-id {rg_id("rg-same")}/providers/Microsoft.Storage/storageAccounts/acctsame --group-id blob --connection-name c1
        network private-endpoint dns-zone-group create -g rg-same --endpoint-name pe-same -n default --private-dns-zone {BLOB_ZONE} --zone-name blob
        sql server create -g rg-same -n sqlsame -l {LOC} -u sqladmin -p Passw0rd!Passw0rd
        sql server firewall-rule create -g rg-same -s sqlsame -n office --start-ip-address 198.51.100.1 --end-ip-address 198.51.100.1
        sql server vnet-rule create -g rg-same -s sqlsame -n app --vnet-name hub --subnet app
        keyvault create -g rg-same -n kvsame -l {LOC}
        keyvault network-rule add -g rg-same -n kvsame --subnet {sub}
        keyvault update -g rg-same -n kvsame --default-action Deny
    """)
    made_by_az = _resources(az.lab.topology(), "rg-same")
    f = tmp_path / "same.yaml"
    f.write_text(yaml.safe_dump(SAME))
    assert cli(tmp_path / "lab", "up", str(f)).exit_code == 0
    from_file = _resources(Lab.open(tmp_path / "lab").topology(), "rg-same")
    assert made_by_az == from_file
    az("group", "delete", "-n", "rg-same", "--yes")
