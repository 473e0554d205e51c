"""The ARM endpoint on a lab that takes time to read: list operations run in worker threads, not
on the event loop, and a new version of the lab is parsed and compiled once, off the event loop,
then shared by every request until the store's version moves."""

from __future__ import annotations

import asyncio
import ssl

import httpx
import pytest

import vnetlab.api.groups as groups_api
import vnetlab.api.resource as resource_api
import vnetlab.lab as lab_module
from conftest import up_note
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
