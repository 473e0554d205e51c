"""Issue 9's ARM families on the wire, in-process: the shapes Azure answers, the refusals (Azure's codes,
nothing changed), and `az group export` of a group holding them deploying back to the same lab."""

from __future__ import annotations

import copy
import warnings

import pytest
from conftest import up_note
from test_az_paas import SAME, _resources

from vnetlab.api import create_app
from vnetlab.api.discovery import SUBSCRIPTION
from vnetlab.lab import Lab

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

RG = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-same"
NET = f"{RG}/providers/Microsoft.Network"
ZONE = "privatelink.blob.core.windows.net"


@pytest.fixture
def lab(tmp_path):
    home = up_note(tmp_path, copy.deepcopy(SAME))
    client = TestClient(create_app(home))
    client.params = {"api-version": "2024-06-01"}
    client.lab = Lab.open(home)
    return client


def test_zone_link_and_record_shapes(lab):
    zone = lab.get(f"{NET}/privateDnsZones/{ZONE}").json()
    assert zone["location"] == "global" and zone["type"] == "Microsoft.Network/privateDnsZones"
    # www, the endpoint's record its zone group writes, and the zone's SOA
    assert zone["properties"]["numberOfRecordSets"] == 3 and zone["properties"]["numberOfVirtualNetworkLinks"] == 1
    link = lab.get(f"{NET}/privateDnsZones/{ZONE}/virtualNetworkLinks/link-hub").json()
    assert link["properties"]["virtualNetworkLinkState"] == "Completed"
    assert link["properties"]["resolutionPolicy"] == "NxDomainRedirect"
    record = lab.get(f"{NET}/privateDnsZones/{ZONE}/A/WWW").json()
    assert (record["name"], record["properties"]["fqdn"]) == ("www", f"www.{ZONE}.")
    assert sorted(r["name"] for r in lab.get(f"{NET}/privateDnsZones/{ZONE}/ALL").json()["value"]) == [
        "acctsame", "www"]
    assert lab.get(f"{NET}/privateDnsZones/{ZONE}/CNAME").json()["value"] == []


def test_refusals_change_nothing(lab):
    before = lab.lab.topology()
    cases = [
        (f"{NET}/privateDnsZones/contoso.internal", {"location": "westeurope"}, 400,
         "LocationNotAvailableForResourceType"),
        (f"{NET}/privateDnsZones/{ZONE}/MX/mail", {"properties": {"ttl": 60}}, 400, "UnsupportedRecordType"),
        (f"{NET}/privateEndpoints/pe-same/privateDnsZoneGroups/other",
         {"properties": {"privateDnsZoneConfigs": []}}, 400, "InvalidResourceName"),
        (f"{NET}/privateDnsZones/{ZONE}/A/bad", {"properties": {"aRecords": [{"ipv4Address": "10.0.0.300"}]}}, 400,
         None),
    ]
    for path, body, status, code in cases:
        res = lab.put(path, json=body)
        assert res.status_code == status, (path, res.text)
        if code:
            assert res.json()["error"]["code"] == code
    assert lab.lab.topology() == before
    assert lab.get(f"{NET}/privateDnsZones/{ZONE}/A/nothere").status_code == 404
    assert lab.get(f"{NET}/privateEndpoints/pe-same/privateDnsZoneGroups/other").status_code == 404


def test_private_endpoint_nic_and_targets_show_the_connection(lab):
    pe = lab.get(f"{NET}/privateEndpoints/pe-same").json()["properties"]
    nic_id = pe["networkInterfaces"][0]["id"]
    nic = lab.get(nic_id).json()["properties"]
    ip = nic["ipConfigurations"][0]["properties"]["privateIPAddress"]
    assert nic["privateEndpoint"]["id"].endswith("/privateEndpoints/pe-same")
    assert pe["customDnsConfigs"] == [{"fqdn": "acctsame.blob.core.windows.net", "ipAddresses": [ip]}]
    acct = lab.get(f"{RG}/providers/Microsoft.Storage/storageAccounts/acctsame").json()["properties"]
    [conn] = acct["privateEndpointConnections"]
    assert conn["properties"]["privateEndpoint"]["id"].endswith("/privateEndpoints/pe-same")
    assert conn["properties"]["privateLinkServiceConnectionState"]["status"] == "Approved"
    # the zone group wrote the target's A record, and shows it
    record = lab.get(f"{NET}/privateDnsZones/{ZONE}/A/acctsame").json()["properties"]
    assert record["aRecords"] == [{"ipv4Address": ip}] and record["isAutoRegistered"] is False
    group = lab.get(f"{NET}/privateEndpoints/pe-same/privateDnsZoneGroups/default").json()["properties"]
    assert group["privateDnsZoneConfigs"][0]["properties"]["recordSets"][0]["fqdn"] == f"acctsame.{ZONE}"
    assert group["privateDnsZoneConfigs"][0]["properties"]["recordSets"][0]["ipAddresses"] == [ip]


def test_group_export_deploys_back_to_the_same_lab(lab):
    before = _resources(lab.lab.topology(), "rg-same")
    template = lab.post(f"{RG}/exportTemplate", json={"resources": ["*"]}).json()["template"]
    types = {r["type"] for r in template["resources"]}
    assert {"Microsoft.Network/privateDnsZones/virtualNetworkLinks", "Microsoft.Network/privateDnsZones/A",
            "Microsoft.Network/privateEndpoints/privateDnsZoneGroups", "Microsoft.Sql/servers/firewallRules",
            "Microsoft.Sql/servers/virtualNetworkRules"} <= types
    assert not any(r["type"] == "Microsoft.Network/networkInterfaces" for r in template["resources"])  # the PE's
    assert lab.delete(RG).status_code in (200, 202)
    assert lab.put(RG, json={"location": "westeurope"}).status_code in (200, 201)
    deployed = lab.put(f"{RG}/providers/Microsoft.Resources/deployments/back",
                       json={"properties": {"mode": "Incremental", "template": template}})
    assert deployed.status_code in (200, 201), deployed.text
    assert deployed.json()["properties"]["provisioningState"] == "Succeeded", deployed.text
    assert _resources(lab.lab.topology(), "rg-same") == before


def test_nic_dns_servers_through_arm(lab):
    """dnsSettings.dnsServers of a NIC is stored; appliedDnsServers shows what the NIC uses."""
    subnet = f"{NET}/virtualNetworks/hub/subnets/app"
    body = {"location": "westeurope", "properties": {
        "ipConfigurations": [{"name": "ipconfig1", "properties": {"subnet": {"id": subnet}}}],
        "dnsSettings": {"dnsServers": ["10.0.1.53"]}}}
    assert lab.put(f"{NET}/networkInterfaces/nic-dns", json=body).status_code == 201
    assert lab.lab.topology().find("network_interfaces", "nic-dns").dns_servers == ["10.0.1.53"]
    shown = lab.get(f"{NET}/networkInterfaces/nic-dns").json()["properties"]["dnsSettings"]
    assert shown == {"dnsServers": ["10.0.1.53"], "appliedDnsServers": ["10.0.1.53"]}
    bad = lab.put(f"{NET}/networkInterfaces/nic-dns", json={**body, "properties": {
        **body["properties"], "dnsSettings": {"dnsServers": ["dns.example"]}}})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "InvalidDnsServerAddress"
    assert lab.lab.topology().find("network_interfaces", "nic-dns").dns_servers == ["10.0.1.53"]


def test_target_owner_rejects_approves_and_deletes_the_connection(lab):
    """privateEndpointConnections of the target: the owner's decision is the endpoint's state."""
    acct = f"{RG}/providers/Microsoft.Storage/storageAccounts/acctsame"
    [conn] = lab.get(f"{acct}/privateEndpointConnections").json()["value"]
    state = conn["properties"]["privateLinkServiceConnectionState"]
    conn_url = f"{acct}/privateEndpointConnections/{conn['name']}"
    for status in ("Rejected", "Approved"):
        state["status"] = status
        answered = lab.put(conn_url, json={"properties": {"privateLinkServiceConnectionState": state}})
        assert answered.status_code == 200, answered.text
        assert answered.json()["properties"]["privateLinkServiceConnectionState"]["status"] == status
        assert lab.lab.topology().find("private_endpoints", "pe-same").connection_state == status
    pe = lab.get(f"{NET}/privateEndpoints/pe-same").json()["properties"]
    assert pe["privateLinkServiceConnections"][0]["properties"]["privateLinkServiceConnectionState"]["status"] == \
        "Approved"
    bad = lab.put(conn_url, json={"properties": {"privateLinkServiceConnectionState": {"status": "Maybe"}}})
    assert bad.status_code == 400 and lab.lab.topology().find("private_endpoints", "pe-same").approved
    assert lab.delete(conn_url).status_code == 200
    assert lab.lab.topology().find("private_endpoints", "pe-same").connection_state == "Disconnected"
    assert lab.get(f"{acct}/privateEndpointConnections/nothere").status_code == 404


def test_private_link_resources_name_group_ids_and_zones(lab):
    res = lab.get(f"{RG}/providers/Microsoft.Storage/storageAccounts/acctsame/privateLinkResources").json()
    by_group = {r["properties"]["groupId"]: r["properties"]["requiredZoneNames"] for r in res["value"]}
    assert by_group["blob"] == [ZONE] and by_group["file"] == ["privatelink.file.core.windows.net"]
    vault = lab.get(f"{RG}/providers/Microsoft.KeyVault/vaults/kvsame/privateLinkResources").json()["value"]
    assert [(r["name"], r["properties"]["requiredZoneNames"]) for r in vault] == [
        ("vault", ["privatelink.vaultcore.azure.net"])]
