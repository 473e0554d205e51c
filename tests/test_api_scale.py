"""The ARM endpoint on a lab that takes time to read: list operations run in worker threads, not
on the event loop, and a new version of the lab is parsed and compiled once, off the event loop,
then shared by every request until the store's version moves."""

from __future__ import annotations

import asyncio
import copy
import gc
import ssl

import httpx
import pytest

import vnetlab.api.arm as arm
import vnetlab.api.groups as groups_api
import vnetlab.api.network as network_api
import vnetlab.api.resource as resource_api
import vnetlab.lab as lab_module
from conftest import NOTE, up_note
from starlette.testclient import TestClient
from vnetlab.api import ServerThread, create_app, ensure_tls
from vnetlab.api.discovery import SUBSCRIPTION
from vnetlab.lab import Lab

SUB = f"/subscriptions/{SUBSCRIPTION}"
NET = f"{SUB}/resourceGroups/rg1/providers/Microsoft.Network"
NIC = f"{NET}/networkInterfaces/rg1vm1VMNic"
LISTS = [f"{NET}/virtualNetworks", f"{SUB}/providers/Microsoft.Network/virtualNetworks",
         f"{NET}/virtualNetworks/vnet1/subnets", f"{SUB}/resourcegroups"]


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@pytest.fixture
def served(tmp_path):
    home = up_note(tmp_path)
    with ServerThread(create_app(home), ensure_tls(home)) as url:
        ca = ssl.create_default_context(cafile=str(ensure_tls(home).ca))
        with httpx.Client(base_url=url, verify=ca, timeout=30, params={"api-version": "2024-07-01"}) as client:
            yield home, client


def test_list_operations_run_off_the_event_loop(served, monkeypatch):
    _, client = served
    seen: list[bool] = []

    def recording(items):
        seen.append(_on_event_loop())
        return real(items)
    real = resource_api.list_response
    monkeypatch.setattr(resource_api, "list_response", recording)
    monkeypatch.setattr(groups_api, "list_response", recording)
    for path in LISTS:
        assert client.get(path).status_code == 200, path
    assert seen == [False] * len(LISTS)


def test_a_new_version_is_parsed_off_the_event_loop(served, monkeypatch):
    home, client = served
    seen: list[bool] = []
    real = Lab.topology

    def recording(self):
        seen.append(_on_event_loop())
        return real(self)
    monkeypatch.setattr(Lab, "topology", recording)
    Lab.open(home).set_route_all("app1", True)  # the CLI's change: the server's copy is stale
    assert client.get(f"{NET}/virtualNetworks/vnet1").status_code == 200
    assert seen == [False]


def test_one_parse_and_one_compiled_lab_per_store_version(served, monkeypatch):
    home, client = served
    built, parsed = [], []
    real_topology = Lab.topology

    class CountingNetwork(lab_module.LabView):
        def __init__(self, topo):
            built.append(1)
            super().__init__(topo)

    def counting_topology(self):
        parsed.append(1)
        return real_topology(self)
    monkeypatch.setattr(lab_module, "LabView", CountingNetwork)
    monkeypatch.setattr(Lab, "topology", counting_topology)
    Lab.open(home).set_route_all("app1", True)
    for _ in range(3):
        assert client.post(f"{NIC}/effectiveRouteTable").status_code == 200
        assert client.get(f"{NET}/virtualNetworks/vnet1").status_code == 200
    assert (len(parsed), len(built)) == (1, 1)
    Lab.open(home).set_route_all("app1", False)
    for _ in range(2):
        assert client.post(f"{NIC}/effectiveRouteTable").status_code == 200
    assert (len(parsed), len(built)) == (2, 2)


def _nsg_lab(tmp_path):
    """Three NSGs: one on two subnets (named in other cases), one on a subnet and a NIC, one unused."""
    doc = copy.deepcopy(NOTE)
    rule = {"name": "deny-ssh", "priority": 100, "direction": "Inbound", "access": "Deny", "protocol": "Tcp",
            "destination_port_range": "22", "description": "no SSH: é"}
    doc["network_security_groups"] = [{"name": n, "security_rules": [rule]} for n in ("Shared", "nic-nsg", "idle")]
    doc["virtual_networks"].append({"name": "vnet2", "address_space": ["10.1.0.0/24"], "subnets": [
        {"name": "a", "address_prefix": "10.1.0.0/26", "network_security_group": "SHARED"},
        {"name": "b", "address_prefix": "10.1.0.64/26", "network_security_group": "nic-nsg"}]})
    doc["virtual_networks"][0]["subnets"][0]["network_security_group"] = "shared"
    doc["virtual_machines"][0]["network_security_group"] = "NIC-nsg"
    return up_note(tmp_path, doc)


def test_a_list_of_nsgs_gives_each_the_subnets_and_nics_its_own_get_gives(tmp_path):
    home = _nsg_lab(tmp_path)
    topo = Lab.open(home).topology()
    client = TestClient(create_app(home))
    listed = {}
    for path in (f"{NET}/networkSecurityGroups", f"{SUB}/providers/Microsoft.Network/networkSecurityGroups"):
        r = client.get(path, params={"api-version": "2024-07-01"})
        assert r.status_code == 200 and "é".encode() in r.content   # UTF-8, not \u escapes
        listed[path] = {item["name"]: item for item in r.json()["value"]}
    assert listed[f"{NET}/networkSecurityGroups"] == listed[f"{SUB}/providers/Microsoft.Network/networkSecurityGroups"]
    items = listed[f"{NET}/networkSecurityGroups"]
    assert sorted(items) == sorted(n.name for n in topo.network_security_groups)
    for nsg in topo.network_security_groups:
        one = client.get(f"{NET}/networkSecurityGroups/{nsg.name}", params={"api-version": "2024-07-01"})
        assert one.status_code == 200 and one.json() == items[nsg.name]   # the same JSON, ETag included
        assert one.headers["etag"] == items[nsg.name]["etag"]
        # what the model says uses it, matched case-insensitively as Azure matches names
        subnets = [f"{SUB}/resourceGroups/rg1/providers/Microsoft.Network/virtualNetworks/{v.name}/subnets/{s.name}"
                   for v in topo.virtual_networks for s in v.subnets
                   if (s.network_security_group or "").lower() == nsg.name.lower()]
        nics = [n.name for n in topo.network_interfaces if (n.network_security_group or "").lower() == nsg.name.lower()]
        props = items[nsg.name]["properties"]
        assert [s["id"] for s in props.get("subnets", [])] == subnets
        assert [n["id"].rsplit("/", 1)[1] for n in props.get("networkInterfaces", [])] == nics
    assert [len(items[n]["properties"].get("subnets", [])) for n in ("Shared", "nic-nsg", "idle")] == [2, 1, 0]
    assert [len(items[n]["properties"].get("networkInterfaces", [])) for n in ("Shared", "nic-nsg", "idle")] == [0, 1, 0]


def _subnet_users_lab(tmp_path, attr: str):
    """Three route tables or NAT gateways (``attr``: the subnet's field naming them): one on two subnets
    (named in other cases; of one VNet, as a NAT gateway must), one on a subnet of another VNet, one unused."""
    doc = copy.deepcopy(NOTE)
    coll = {"route_table": "route_tables", "nat_gateway": "nat_gateways"}[attr]
    doc[coll] = [{"name": n} for n in ("Shared", "one", "idle")]
    if attr == "nat_gateway":
        doc["public_ip_addresses"] = [{"name": f"pip-{n}"} for n in ("Shared", "one", "idle")]
        for item in doc[coll]:
            item["public_ip_addresses"] = [f"pip-{item['name']}"]
    doc["virtual_networks"].append({"name": "vnet2", "address_space": ["10.1.0.0/24"], "subnets": [
        {"name": "a", "address_prefix": "10.1.0.0/26", attr: "SHARED"},
        {"name": "b", "address_prefix": "10.1.0.64/26", attr: "shared"}]})
    doc["virtual_networks"][0]["subnets"][0][attr] = "ONE"
    return up_note(tmp_path, doc), coll


@pytest.mark.parametrize("attr, kind", [("route_table", "routeTables"), ("nat_gateway", "natGateways")])
def test_a_list_of_route_tables_or_nat_gateways_gives_each_the_subnets_its_own_get_gives(tmp_path, attr, kind):
    home, coll = _subnet_users_lab(tmp_path, attr)
    topo = Lab.open(home).topology()
    client = TestClient(create_app(home))
    r = client.get(f"{NET}/{kind}", params={"api-version": "2024-07-01"})
    assert r.status_code == 200
    items = {item["name"]: item for item in r.json()["value"]}
    assert sorted(items) == sorted(x.name for x in getattr(topo, coll))
    for x in getattr(topo, coll):
        one = client.get(f"{NET}/{kind}/{x.name}", params={"api-version": "2024-07-01"})
        assert one.status_code == 200 and one.json() == items[x.name]
        subnets = [f"{SUB}/resourceGroups/rg1/providers/Microsoft.Network/virtualNetworks/{v.name}/subnets/{s.name}"
                   for v in topo.virtual_networks for s in v.subnets if (getattr(s, attr) or "").lower() == x.name.lower()]
        assert [s["id"] for s in items[x.name]["properties"].get("subnets", [])] == subnets
    assert [len(items[n]["properties"].get("subnets", [])) for n in ("Shared", "one", "idle")] == [2, 1, 0]


def test_the_collector_is_paused_while_a_list_is_built_and_restored_after(tmp_path, monkeypatch):
    home = _nsg_lab(tmp_path)
    client = TestClient(create_app(home))
    during: list[bool] = []
    real = network_api.nsg_wire

    def recording(*args, **kwargs):
        during.append(gc.isenabled())
        return real(*args, **kwargs)
    monkeypatch.setattr(network_api, "nsg_wire", recording)
    for enabled in (True, False):
        (gc.enable if enabled else gc.disable)()
        try:
            during.clear()
            assert client.get(f"{NET}/networkSecurityGroups", params={"api-version": "2024-07-01"}).status_code == 200
            assert during == [False] * 3 and gc.isenabled() is enabled
        finally:
            gc.enable()


def test_nested_and_overlapping_pauses_turn_the_collector_back_on_once_the_last_ends():
    assert gc.isenabled()
    first, second = arm.gc_paused(), arm.gc_paused()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert not gc.isenabled()       # the second still runs
    second.__exit__(None, None, None)
    assert gc.isenabled()
