"""ARM wire details at the REST level: the status codes each client accepts, the endpoints az
needs on the way, ETags on resources, read-only fields, and one lab shared with the CLI."""

from __future__ import annotations

import json
import ssl
import threading
import xml.etree.ElementTree as ET

import httpx
import pytest

from vnetlab.api import ServerThread, create_app, ensure_tls
from vnetlab.api.discovery import SUBSCRIPTION
from vnetlab.lab import Lab
from vnetlab.model import AzureError, Topology

SUB = f"/subscriptions/{SUBSCRIPTION}"
RG = f"{SUB}/resourceGroups/rg1"
NET = f"{RG}/providers/Microsoft.Network"
WEB = f"{RG}/providers/Microsoft.Web"
VNET = {"location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/24"]}, "subnets": [
    {"name": "default", "properties": {"addressPrefix": "10.0.0.0/26"}},
    {"name": "integration", "properties": {"addressPrefix": "10.0.0.128/26", "delegations": [
        {"name": "0", "properties": {"serviceName": "Microsoft.Web/serverFarms"}}]}}]}}
PLAN = {"location": "westeurope", "sku": {"name": "P1V3", "tier": "PREMIUMV3", "capacity": 1},
        "properties": {"perSiteScaling": False, "reserved": True}}


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """The endpoint's certificates: shared by the module's servers, they hold no lab state."""
    return ensure_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def ca(tls):
    return ssl.create_default_context(cafile=str(tls.ca))


@pytest.fixture
def lab_home(tmp_path):
    return tmp_path / "lab"


@pytest.fixture
def http(lab_home, tls, ca):
    """An endpoint on a lab of this test's own with the note's VNet, plan and (not integrated) app."""
    with ServerThread(create_app(lab_home), tls) as url:
        with httpx.Client(base_url=url, verify=ca, timeout=30,
                          params={"api-version": "2024-07-01"}) as client:
            assert client.put(RG, json={"location": "westeurope"}).status_code == 201  # a new lab has no group
            assert client.put(f"{NET}/virtualNetworks/vnet1", json=VNET).status_code == 201
            assert client.put(f"{WEB}/serverfarms/plan1", json=PLAN).status_code == 200
            site = {"location": "westeurope", "kind": "app,linux,container",
                    "properties": {"serverFarmId": f"{WEB}/serverfarms/plan1",
                                   "siteConfig": {"linuxFxVersion": "DOCKER|nginx:latest"}}}
            assert client.put(f"{WEB}/sites/app1", json=site).status_code == 200
            yield client


def err(resp) -> str:
    return resp.json()["error"]["code"]


# -- status codes -------------------------------------------------------------------------------

def test_network_put_is_201_then_200_and_delete_of_nothing_is_204(http):
    url = f"{NET}/networkSecurityGroups/nsg-codes"
    assert http.put(url, json={"location": "westeurope"}).status_code == 201
    assert http.put(url, json={"location": "westeurope"}).status_code == 200
    assert http.delete(url).status_code == 200
    assert http.delete(url).status_code == 204


def test_web_put_is_never_201(http):
    assert http.put(f"{WEB}/serverfarms/plan-codes", json=PLAN).status_code == 200
    assert http.delete(f"{WEB}/serverfarms/plan-codes").status_code == 200


def test_swift_put_and_delete_are_200(http):
    url = f"{WEB}/sites/app1/networkConfig/virtualNetwork"
    body = {"properties": {"subnetResourceId": f"{NET}/virtualNetworks/vnet1/subnets/integration",
                           "swiftSupported": True}}
    put = http.put(url, json=body)
    assert put.status_code == 200 and put.json()["type"] == "Microsoft.Web/sites/networkConfig"
    assert http.get(url).json()["properties"]["subnetResourceId"].endswith("/subnets/integration")
    assert http.delete(url).status_code == 200
    assert http.get(url).status_code == 404


def test_paths_are_case_insensitive_for_resources(http):
    low = http.get(f"{SUB.lower()}/resourcegroups/RG1/providers/microsoft.network/VIRTUALNETWORKS/VNET1")
    assert low.status_code == 200 and low.json()["name"] == "vnet1"
    assert low.json()["id"] == f"{NET}/virtualNetworks/vnet1"


def test_head_on_a_resource(http):
    assert http.head(f"{NET}/virtualNetworks/vnet1").status_code == 200
    assert http.head(f"{NET}/virtualNetworks/nope").status_code == 404


# -- what az needs on the way ----------------------------------------------------------------------

def test_publish_xml_is_xml(http):
    resp = http.post(f"{WEB}/sites/app1/publishxml", json={"format": "WebDeploy"})
    assert resp.headers["content-type"].startswith("application/xml")
    profiles = ET.fromstring(resp.text).findall("publishProfile")
    assert {p.get("publishMethod") for p in profiles} >= {"MSDeploy", "FTP"}
    assert all(p.get("userName") and p.get("userPWD") for p in profiles)


def test_app_settings_slot_config_and_config_web(http):
    settings = http.post(f"{WEB}/sites/app1/config/appsettings/list").json()
    assert settings["properties"] == {}
    put = http.put(f"{WEB}/sites/app1/config/appsettings", json={"properties": {"WEBSITE_DNS_SERVER": "168.63.129.16"}})
    assert put.json()["properties"] == {"WEBSITE_DNS_SERVER": "168.63.129.16"}
    names = http.get(f"{WEB}/sites/app1/config/slotConfigNames").json()["properties"]
    assert names["appSettingNames"] == [] and names["connectionStringNames"] == []
    web = http.get(f"{WEB}/sites/app1/config/web").json()
    assert web["properties"]["linuxFxVersion"] == "DOCKER|nginx:latest"
    assert web["properties"]["vnetRouteAllEnabled"] is False
    # the CLI PATCHes the whole siteConfig back with one member changed
    patched = dict(web["properties"], vnetRouteAllEnabled=True)
    resp = http.patch(f"{WEB}/sites/app1/config/web", json={"location": "West Europe", "properties": patched})
    assert resp.status_code == 200 and resp.json()["properties"]["vnetRouteAllEnabled"] is True
    assert http.get(f"{WEB}/sites/app1").json()["properties"]["vnetRouteAllEnabled"] is True
    http.patch(f"{WEB}/sites/app1/config/web", json={"properties": {"vnetRouteAllEnabled": False}})


def test_site_body_carries_what_the_cli_reads(http):
    props = http.get(f"{WEB}/sites/app1").json()["properties"]
    assert props["sku"] == "PremiumV3" and props["state"] == "Running"
    assert props["defaultHostName"] == "app1.azurewebsites.net"
    assert props["enabledHostNames"] and props["hostNameSslStates"]


def test_site_outbound_addresses_are_the_source_the_internet_sees(http, lab_home):
    """outboundIpAddresses / possibleOutboundIpAddresses: the address the trace says an internet host
    sees (an allow-list of them lets the app in); a NAT gateway never shows there (issue 10 §1)."""
    props = http.get(f"{WEB}/sites/app1").json()["properties"]
    lab = Lab.open(lab_home)
    seen = lab.trace("app1", lab.topology().internet_hosts[0].name, 443).source_ip_seen
    assert props["outboundIpAddresses"].split(",") == [seen]
    assert seen in props["possibleOutboundIpAddresses"].split(",")


def test_check_name_availability_knows_the_sites(http):
    url = f"{SUB}/providers/Microsoft.Web/checknameavailability"
    taken = http.post(url, json={"name": "APP1", "type": "Site"}).json()
    assert taken["nameAvailable"] is False and taken["reason"] == "AlreadyExists"
    assert http.post(url, json={"name": "app9", "type": "Site"}).json()["nameAvailable"] is True


def test_virtual_network_connections_are_a_bare_array(http):
    assert http.get(f"{WEB}/sites/app1/virtualNetworkConnections").json() == []
    site = http.get(f"{WEB}/sites/app1").json()
    site["properties"].update(virtualNetworkSubnetId=f"{NET}/virtualNetworks/vnet1/subnets/integration",
                              outboundVnetRouting={"applicationTraffic": True})
    assert http.put(f"{WEB}/sites/app1", json=site).status_code == 200  # read-only fields and all, as az does
    conns = http.get(f"{WEB}/sites/app1/virtualNetworkConnections").json()
    assert isinstance(conns, list) and conns[0]["properties"]["isSwift"] is True
    assert conns[0]["name"].endswith("_integration")
    one = http.get(f"{WEB}/sites/app1/virtualNetworkConnections/{conns[0]['name']}").json()
    assert one["properties"]["vnetResourceId"].endswith("/subnets/integration")
    plan_conns = http.get(f"{WEB}/serverfarms/plan1/virtualNetworkConnections").json()
    assert isinstance(plan_conns, list) and len(plan_conns) == 1


def test_plan_integration_usage(http):
    site = http.get(f"{WEB}/sites/app1").json()
    site["properties"]["virtualNetworkSubnetId"] = f"{NET}/virtualNetworks/vnet1/subnets/integration"
    http.put(f"{WEB}/sites/app1", json=site)
    usage = http.get(f"{WEB}/serverfarms/plan1/virtualNetworkIntegrations").json()["value"][0]
    # a /26 has 64 - 5 = 59 usable addresses; one plan instance takes one
    assert usage["subnetIpAllocation"] == {"subnetIpAddressesAvailable": 58, "subnetIpAddressesUsed": 1}
    assert usage["resourceAllocation"]["connectedSitesId"] == [f"{WEB}/sites/app1"]


# -- read-only fields, ETags, PATCH ------------------------------------------------------------------

def test_a_get_body_put_back_changes_nothing(http):
    got = http.get(f"{NET}/virtualNetworks/vnet1").json()
    again = http.put(f"{NET}/virtualNetworks/vnet1", json=got)
    assert again.status_code == 200
    assert again.json()["etag"] == got["etag"]


def test_etags_on_resources(http):
    url = f"{NET}/routeTables/rt-etag"
    first = http.put(url, json={"location": "westeurope"})
    etag = first.headers["etag"]
    assert first.json()["etag"] == etag == http.get(url).headers["etag"]
    assert http.get(url, headers={"If-None-Match": etag}).status_code == 304
    stale = http.put(url, json={"location": "westeurope", "tags": {"a": "1"}}, headers={"If-Match": 'W/"old"'})
    assert stale.status_code == 412 and err(stale) == "PreconditionFailed"
    assert http.put(url, json={"location": "westeurope"}, headers={"If-None-Match": "*"}).status_code == 412
    ok = http.put(url, json={"location": "westeurope", "tags": {"a": "1"}}, headers={"If-Match": etag})
    assert ok.status_code == 200 and ok.headers["etag"] != etag
    route = http.put(f"{url}/routes/r1", json={"properties": {"addressPrefix": "10.9.0.0/16", "nextHopType": "None"}})
    assert route.status_code == 201 and route.headers["etag"]
    assert http.get(url).headers["etag"] != ok.headers["etag"]  # a child changes its parent's version
    assert http.delete(f"{url}/routes/r1", headers={"If-Match": 'W/"old"'}).status_code == 412
    assert http.delete(url, headers={"If-Match": "*"}).status_code == 200


def test_patch_tags(http):
    url = f"{NET}/networkSecurityGroups/nsg-patch"
    http.put(url, json={"location": "westeurope", "properties": {"securityRules": [
        {"name": "r", "properties": {"priority": 200, "direction": "Inbound", "access": "Allow", "protocol": "*"}}]}})
    patched = http.patch(url, json={"tags": {"env": "lab"}}).json()
    assert patched["tags"] == {"env": "lab"} and patched["properties"]["securityRules"][0]["name"] == "r"
    assert err(http.patch(f"{NET}/networkSecurityGroups/nope", json={"tags": {}})) == "ResourceNotFound"


def test_no_update_is_lost_under_concurrent_if_match_writers(http, ca):
    url = f"{NET}/routeTables/counter"
    http.put(url, json={"location": "westeurope", "tags": {"n": "0"}})

    def writer():
        with httpx.Client(base_url=str(http.base_url), verify=ca, params={"api-version": "1"}) as c:
            for _ in range(3):
                while True:
                    cur = c.get(url).json()
                    body = {"location": cur["location"], "tags": {"n": str(int(cur["tags"]["n"]) + 1)}}
                    if c.put(url, json=body, headers={"If-Match": cur["etag"]}).status_code == 200:
                        break

    threads = [threading.Thread(target=writer) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert http.get(url).json()["tags"]["n"] == "30"


# -- one lab ---------------------------------------------------------------------------------------

def test_the_api_and_the_cli_share_the_lab(http, lab_home):
    http.put(f"{NET}/virtualNetworks/vnet1/subnets/shared", json={"properties": {"addressPrefix": "10.0.0.64/28"}})
    lab = Lab.open(lab_home)
    assert lab.topology().vnet("vnet1").subnet("shared").address_prefix == "10.0.0.64/28"

    def cli_change(topo):
        topo.vnet("vnet1").subnets = [s for s in topo.vnet("vnet1").subnets if s.name != "shared"]

    lab.change(cli_change)
    assert http.get(f"{NET}/virtualNetworks/vnet1/subnets/shared").status_code == 404


def test_errors_never_500(http):
    cases = [("PUT", f"{NET}/virtualNetworks/v2", {"location": "westeurope", "properties": {"addressSpace": 5}}),
             ("PUT", f"{NET}/virtualNetworks/v2", {"location": "westeurope", "properties": {"subnets": "x"}}),
             ("PUT", f"{NET}/virtualNetworks/vnet1/subnets/s", {"properties": {"delegations": [5]}}),
             ("PUT", f"{NET}/networkInterfaces/n", {"location": "westeurope", "properties": {}}),
             ("PUT", f"{NET}/networkInterfaces/n", {"location": "westeurope", "properties": {"ipConfigurations": [
                 {"name": "c", "properties": {"subnet": {"id": f"{NET}/virtualNetworks/vnet1"}}}]}}),
             ("PUT", f"{WEB}/sites/s2", {"location": "westeurope", "properties": {}}),
             ("PUT", f"{WEB}/sites/s2", {"location": "westeurope", "properties": {"serverFarmId": "x"}}),
             ("PUT", f"{WEB}/serverfarms/p2", {"location": "westeurope", "sku": {"name": "Z9"}}),
             ("PUT", f"{WEB}/sites/app1/networkConfig/virtualNetwork", {"properties": {}}),
             ("POST", f"{NET}/networkWatchers/nw/ipFlowVerify", {"targetResourceId": "x"}),
             ("POST", f"{NET}/networkWatchers/nw/connectivityCheck", {"source": {}, "destination": {}}),
             ("PUT", f"{RG}/providers/Microsoft.Compute/virtualMachines/vm9", {"location": "westeurope"})]
    for method, url, body in cases:
        resp = http.request(method, url, content=json.dumps(body))
        assert 400 <= resp.status_code < 500, (url, resp.status_code, resp.text)
        assert resp.json()["error"]["code"]


# -- resource groups: exactly those declared or created (issue 8 §4) -------------------------------

def test_no_phantom_group_network_watcher_rg_and_group_delete(tmp_path):
    with ServerThread(create_app(tmp_path), ensure_tls(tmp_path)) as url, \
            httpx.Client(base_url=url, verify=ssl.create_default_context(cafile=str(ensure_tls(tmp_path).ca)),
                         params={"api-version": "2024-11-01"}) as http:
        def groups() -> list[str]:
            return [g["name"] for g in http.get(f"{SUB}/resourcegroups").json()["value"]]

        assert groups() == []                       # a new lab has no group
        assert http.put(f"{SUB}/resourcegroups/rg-hub", json={"location": "westeurope"}).status_code == 201
        assert groups() == ["rg-hub"]
        hub = f"{SUB}/resourceGroups/rg-hub/providers/Microsoft.Network/virtualNetworks/hub"
        assert http.put(hub, json={"location": "westeurope",
                                   "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}}}
                        ).status_code == 201
        assert groups() == ["NetworkWatcherRG", "rg-hub"]   # Azure enables Network Watcher with the first VNet
        listed = http.get(f"{SUB}/resourcegroups/NetworkWatcherRG/resources").json()["value"]
        assert [r["name"] for r in listed] == ["NetworkWatcher_westeurope"]
        assert http.delete(f"{SUB}/resourcegroups/rg-hub").status_code == 200
        assert groups() == [] and Lab.open(tmp_path).topology().virtual_networks == []
        assert http.get(hub).json()["error"]["code"] == "ResourceGroupNotFound"


def test_lab_delete_group_takes_its_resources_and_only_them(tmp_path):
    lab = Lab.open(tmp_path)
    lab.up(Topology.model_validate({
        "name": "two", "resource_groups": [{"name": "rg-a"}, {"name": "rg-b"}],
        "virtual_networks": [{"name": "va", "resource_group": "rg-a", "address_space": ["10.1.0.0/16"],
                              "subnets": [{"name": "s", "address_prefix": "10.1.0.0/24"}]},
                             {"name": "vb", "resource_group": "rg-b", "address_space": ["10.2.0.0/16"],
                              "subnets": [{"name": "s", "address_prefix": "10.2.0.0/24"}]}],
        "network_security_groups": [{"name": "nsg-a", "resource_group": "rg-a"}]}))
    after = lab.delete_group("RG-A")
    assert [g.name for g in after.resource_groups] == ["rg-b"]
    assert [v.name for v in after.virtual_networks] == ["vb"] and after.network_security_groups == []
    with pytest.raises(AzureError) as missing:
        lab.delete_group("rg-a")
    assert missing.value.code == "ResourceGroupNotFound" and lab.topology() == after


def test_peering_life_cycle_over_arm(http):
    """Deleting one side leaves the other Disconnected; creating the deleted side again fails
    with RemotePeeringIsDisconnected; deleting the remote VNet keeps the peering, Disconnected."""
    other = {"location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": ["10.77.0.0/24"]}}}
    assert http.put(f"{NET}/virtualNetworks/vnetpeer", json=other).status_code == 201
    there = f"{NET}/virtualNetworks/vnet1/virtualNetworkPeerings/to-peer"
    back = f"{NET}/virtualNetworks/vnetpeer/virtualNetworkPeerings/to-vnet1"
    body = lambda target: {"properties": {"remoteVirtualNetwork": {"id": f"{NET}/virtualNetworks/{target}"},  # noqa: E731
                                          "allowVirtualNetworkAccess": True}}
    assert http.put(there, json=body("vnetpeer")).status_code in (200, 201)
    assert http.put(back, json=body("vnet1")).status_code in (200, 201)
    assert http.get(there).json()["properties"]["peeringState"] == "Connected"
    assert http.delete(back).status_code in (200, 202, 204)
    assert http.get(there).json()["properties"]["peeringState"] == "Disconnected"
    refused = http.put(back, json=body("vnet1"))
    assert (refused.status_code, err(refused)) == (400, "RemotePeeringIsDisconnected")
    assert http.delete(f"{NET}/virtualNetworks/vnetpeer").status_code in (200, 202, 204)
    assert http.get(there).json()["properties"]["peeringState"] == "Disconnected"
    assert http.delete(there).status_code in (200, 202, 204)


def test_a_subnet_keeps_several_address_prefixes_over_arm(http):
    vnet = {"location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": ["10.88.0.0/24", "10.89.0.0/24"]}}}
    assert http.put(f"{NET}/virtualNetworks/vnetmulti", json=vnet).status_code == 201
    url = f"{NET}/virtualNetworks/vnetmulti/subnets/two"
    body = {"properties": {"addressPrefixes": ["10.88.0.0/26", "10.89.0.0/26"]}}
    assert http.put(url, json=body).status_code in (200, 201)
    assert http.get(url).json()["properties"]["addressPrefixes"] == ["10.88.0.0/26", "10.89.0.0/26"]
    assert http.delete(f"{NET}/virtualNetworks/vnetmulti").status_code in (200, 202, 204)
