"""The real Azure SDK for Python (azure-mgmt-privatedns, -storage, -sql, -keyvault, -network) builds
issue 9's resources over TLS with its model classes, and the lab stores what it asked for."""

from __future__ import annotations

import pytest

pytest.importorskip("azure.mgmt.privatedns")
pytest.importorskip("azure.mgmt.storage")
pytest.importorskip("azure.mgmt.sql")
pytest.importorskip("azure.mgmt.keyvault")

from azure.core.exceptions import HttpResponseError  # noqa: E402
from azure.mgmt.keyvault import KeyVaultManagementClient  # noqa: E402
from azure.mgmt.keyvault import models as K  # noqa: E402
from azure.mgmt.network import NetworkManagementClient  # noqa: E402
from azure.mgmt.network import models as N  # noqa: E402
from azure.mgmt.privatedns import PrivateDnsManagementClient  # noqa: E402
from azure.mgmt.privatedns import models as P  # noqa: E402
from azure.mgmt.resource.resources import ResourceManagementClient  # noqa: E402
from azure.mgmt.resource.resources import models as R  # noqa: E402
from azure.mgmt.sql import SqlManagementClient  # noqa: E402
from azure.mgmt.sql import models as S  # noqa: E402
from azure.mgmt.storage import StorageManagementClient  # noqa: E402
from azure.mgmt.storage import models as ST  # noqa: E402
from test_api_sdk import FakeCred  # noqa: E402

from vnetlab.api import ServerThread, create_app, ensure_tls  # noqa: E402
from vnetlab.api.discovery import SUBSCRIPTION, TENANT  # noqa: E402
from vnetlab.lab import Lab  # noqa: E402

LOC = "westeurope"
ZONE = "privatelink.blob.core.windows.net"


class Clients:
    def __init__(self, url: str, ca: str, home):
        kw = dict(base_url=url, connection_verify=ca, polling_interval=0)
        self.res = ResourceManagementClient(FakeCred(), SUBSCRIPTION, **kw)
        self.net = NetworkManagementClient(FakeCred(), SUBSCRIPTION, **kw)
        self.dns = PrivateDnsManagementClient(FakeCred(), SUBSCRIPTION, **kw)
        self.storage = StorageManagementClient(FakeCred(), SUBSCRIPTION, **kw)
        self.sql = SqlManagementClient(FakeCred(), SUBSCRIPTION, **kw)
        self.kv = KeyVaultManagementClient(FakeCred(), SUBSCRIPTION, **kw)
        self.lab = Lab.open(home)


@pytest.fixture
def sdk(tmp_path):
    home = tmp_path / "lab"
    tls = ensure_tls(tmp_path / "tls")
    with ServerThread(create_app(home), tls) as url:
        clients = Clients(url, str(tls.ca), home)
        clients.res.resource_groups.create_or_update("rg1", R.ResourceGroup(location=LOC))
        vnet = clients.net.virtual_networks.begin_create_or_update("rg1", "hub", N.VirtualNetwork(
            location=LOC, address_space=N.AddressSpace(address_prefixes=["10.0.0.0/16"]), subnets=[
                N.Subnet(name="app", address_prefix="10.0.1.0/24", service_endpoints=[
                    N.ServiceEndpointPropertiesFormat(service=s) for s in
                    ("Microsoft.Storage", "Microsoft.Sql", "Microsoft.KeyVault")]),
                N.Subnet(name="pe", address_prefix="10.0.2.0/24")])).result()
        clients.app_subnet, clients.pe_subnet = (s.id for s in vnet.subnets)
        clients.vnet = vnet
        yield clients


def test_private_dns_zone_link_and_a_record(sdk):
    zone = sdk.dns.private_zones.begin_create_or_update("rg1", ZONE, P.PrivateZone(location="global")).result()
    assert zone.name == ZONE and zone.location == "global" and zone.number_of_record_sets == 1
    link = sdk.dns.virtual_network_links.begin_create_or_update("rg1", ZONE, "link-hub", P.VirtualNetworkLink(
        location="global", virtual_network=P.SubResource(id=sdk.vnet.id), registration_enabled=False,
        resolution_policy="NxDomainRedirect")).result()
    assert link.virtual_network_link_state == "Completed" and link.resolution_policy == "NxDomainRedirect"
    record = sdk.dns.record_sets.create_or_update("rg1", ZONE, "A", "Acct1", P.RecordSet(
        ttl=300, a_records=[P.ARecord(ipv4_address="10.0.2.5")]))
    assert record.name == "acct1" and record.fqdn == f"acct1.{ZONE}." and record.ttl == 300
    stored = sdk.lab.topology().find("private_dns_zones", ZONE)
    assert [(r.name, r.values, r.ttl) for r in stored.records] == [("acct1", ["10.0.2.5"], 300)]
    assert stored.virtual_network_links[0].resolution_policy == "NxDomainRedirect"
    assert [r.name for r in sdk.dns.record_sets.list_by_type("rg1", ZONE, "A")] == ["acct1"]
    sdk.dns.record_sets.delete("rg1", ZONE, "A", "acct1")
    assert sdk.lab.topology().find("private_dns_zones", ZONE).records == []


def test_storage_account_private_endpoint_and_zone_group(sdk):
    acct = sdk.storage.storage_accounts.begin_create("rg1", "acct1", ST.StorageAccountCreateParameters(
        location=LOC, sku=ST.Sku(name="Standard_LRS"), kind="StorageV2")).result()
    assert acct.primary_endpoints.blob == "https://acct1.blob.core.windows.net/"
    sdk.storage.storage_accounts.update("rg1", "acct1", ST.StorageAccountUpdateParameters(
        public_network_access="Disabled", network_rule_set=ST.NetworkRuleSet(
            default_action="Deny", virtual_network_rules=[ST.VirtualNetworkRule(
                virtual_network_resource_id=sdk.app_subnet)], ip_rules=[ST.IPRule(ip_address_or_range="203.0.113.7")])))
    stored = sdk.lab.topology().find("storage_accounts", "acct1")
    assert stored.public_network_access == "Disabled"
    assert (stored.network_rule_set.default_action, stored.network_rule_set.virtual_network_rules,
            stored.network_rule_set.ip_rules) == ("Deny", ["hub/app"], ["203.0.113.7"])
    sdk.dns.private_zones.begin_create_or_update("rg1", ZONE, P.PrivateZone(location="global")).result()
    pe = sdk.net.private_endpoints.begin_create_or_update("rg1", "pe-blob", N.PrivateEndpoint(
        location=LOC, subnet=N.Subnet(id=sdk.pe_subnet), private_link_service_connections=[
            N.PrivateLinkServiceConnection(name="c1", private_link_service_id=acct.id, group_ids=["blob"])],
        ip_configurations=[N.PrivateEndpointIPConfiguration(name="ip", group_id="blob", member_name="blob",
                                                            private_ip_address="10.0.2.10")])).result()
    assert pe.custom_dns_configs[0].fqdn == "acct1.blob.core.windows.net"
    assert pe.custom_dns_configs[0].ip_addresses == ["10.0.2.10"]
    group = sdk.net.private_dns_zone_groups.begin_create_or_update("rg1", "pe-blob", "default", N.PrivateDnsZoneGroup(
        private_dns_zone_configs=[N.PrivateDnsZoneConfig(name="blob", private_dns_zone_id=(
            f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg1/providers/Microsoft.Network/privateDnsZones/{ZONE}"))]
    )).result()
    assert group.private_dns_zone_configs[0].private_dns_zone_id.endswith(ZONE)
    topo = sdk.lab.topology()
    stored_pe = topo.find("private_endpoints", "pe-blob")
    assert (stored_pe.target, stored_pe.private_ip_address, stored_pe.private_dns_zone_group) == (
        "acct1", "10.0.2.10", [ZONE])
    [nic] = [n for n in topo.network_interfaces if n.private_endpoint == "pe-blob"]
    assert nic.private_ip_address == "10.0.2.10"
    assert pe.network_interfaces[0].id == topo.id_of("network_interfaces", nic)
    assert sdk.net.network_interfaces.get("rg1", nic.name).private_endpoint.id == pe.id


def test_sql_server_rules_and_42101(sdk):
    server = sdk.sql.servers.begin_create_or_update("rg1", "sql1", S.Server(
        location=LOC, administrator_login="sqladmin", administrator_login_password="Passw0rd!Passw0rd")).result()
    assert server.fully_qualified_domain_name == "sql1.database.windows.net"
    sdk.sql.firewall_rules.create_or_update("rg1", "sql1", "office", S.FirewallRule(
        start_ip_address="198.51.100.1", end_ip_address="198.51.100.1"))
    sdk.sql.virtual_network_rules.begin_create_or_update("rg1", "sql1", "app", S.VirtualNetworkRule(
        virtual_network_subnet_id=sdk.app_subnet)).result()
    sdk.sql.servers.begin_update("rg1", "sql1", S.ServerUpdate(public_network_access="Disabled")).result()
    with pytest.raises(HttpResponseError) as refused:
        sdk.sql.firewall_rules.create_or_update("rg1", "sql1", "home", S.FirewallRule(
            start_ip_address="198.51.100.2", end_ip_address="198.51.100.2"))
    assert "public network interface for the server is disabled" in str(refused.value)
    stored = sdk.lab.topology().find("sql_servers", "sql1")
    assert stored.public_network_access == "Disabled" and [r.name for r in stored.firewall_rules] == ["office"]
    assert [(r.name, r.subnet) for r in stored.virtual_network_rules] == [("app", "hub/app")]


def test_key_vault_network_acls(sdk):
    vault = sdk.kv.vaults.begin_create_or_update("rg1", "kv1", K.VaultCreateOrUpdateParameters(
        location=LOC, properties=K.VaultProperties(
            tenant_id=TENANT, sku=K.Sku(family="A", name="standard"), enable_rbac_authorization=True,
            network_acls=K.NetworkRuleSet(default_action="Deny", bypass="AzureServices",
                                          ip_rules=[K.IPRule(value="203.0.113.0/24")],
                                          virtual_network_rules=[K.VirtualNetworkRule(id=sdk.app_subnet)])))).result()
    assert vault.properties.vault_uri == "https://kv1.vault.azure.net/"
    acls = sdk.lab.topology().find("key_vaults", "kv1").network_acls
    assert (acls.default_action, acls.ip_rules, acls.virtual_network_rules) == ("Deny", ["203.0.113.0/24"], ["hub/app"])
