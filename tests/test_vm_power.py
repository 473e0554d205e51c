"""A VM's power state (az vm stop / deallocate / start): a stopped or deallocated VM answers,
sends and forwards nothing; a deallocated one loses its registration link's record until it starts."""

from __future__ import annotations

import copy

import pytest
from conftest import build

from vnetlab.engine import dns
from vnetlab.engine.matrix import matrix
from vnetlab.engine.network import LabView
from vnetlab.engine.trace import trace
from vnetlab.model import AzureError

LAB = {
    "name": "power", "location": "westeurope",
    "virtual_networks": [{"name": "hub", "address_space": ["10.0.0.0/16"], "subnets": [
        {"name": "default", "address_prefix": "10.0.0.0/24"},
        {"name": "nva", "address_prefix": "10.0.1.0/24"},
        {"name": "spoke", "address_prefix": "10.0.2.0/24", "route_table": "via-nva"}]}],
    "route_tables": [{"name": "via-nva", "routes": [{"name": "default-net", "address_prefix": "10.0.0.0/24",
                                                      "next_hop_type": "VirtualAppliance",
                                                      "next_hop_ip_address": "10.0.1.4"}]}],
    "virtual_machines": [
        {"name": "vm1", "subnet": "hub/default", "services": [{"port": 80}]},
        {"name": "vm2", "subnet": "hub/default", "services": [{"port": 80}]},
        {"name": "nva1", "subnet": "hub/nva", "private_ip_address": "10.0.1.4", "enable_ip_forwarding": True},
        {"name": "vm3", "subnet": "hub/spoke"}],
    "private_dns_zones": [{"name": "corp.internal", "virtual_network_links": [
        {"name": "reg", "virtual_network": "hub", "registration_enabled": True}]}],
}


def lab(**power) -> dict:
    d = copy.deepcopy(LAB)
    for vm in d["virtual_machines"]:
        if vm["name"] in power:
            vm["power_state"] = power[vm["name"]]
    return d


def registered(topo) -> set[str]:
    return {r.name for r in dns.zone_records(topo, topo.find("private_dns_zones", "corp.internal"))
            if r.is_auto_registered}


def test_a_deallocated_vms_registration_record_is_removed_until_it_starts():
    """"removed on deallocate" (the reference, 1.6); a stopped VM stays allocated and keeps it."""
    assert registered(build(lab())) == {"vm1", "vm2", "nva1", "vm3"}
    topo = build(lab(vm2="deallocated"))
    assert registered(topo) == {"vm1", "nva1", "vm3"}
    res = dns.resolve(LabView(topo), "vm1", "vm2.corp.internal")
    assert res.outcome == "NXDOMAIN" and "VM vm2 is deallocated" in res.steps[-1].text
    assert registered(build(lab(vm2="stopped"))) == {"vm1", "vm2", "nva1", "vm3"}
    topo.find("virtual_machines", "vm2").start()
    assert registered(topo) == {"vm1", "vm2", "nva1", "vm3"}


@pytest.mark.parametrize("state", ["stopped", "deallocated"])
def test_a_trace_to_a_vm_that_does_not_run_times_out_saying_why(state):
    t = trace(build(lab(vm2=state)), "vm1", "vm2", 80)
    assert (t.verdict, t.reason) == ("TimedOut", "VmNotRunning")
    assert f"VM vm2 is {state}" in t.steps[-1].detail.why
    assert trace(build(lab()), "vm1", "vm2", 80).verdict == "Connected"


def test_a_trace_from_a_deallocated_vm_is_refused_with_a_clear_error():
    with pytest.raises(AzureError) as err:
        trace(build(lab(vm1="deallocated")), "vm1", "vm2", 80)
    assert (err.value.code, err.value.status) == ("VmNotRunning", 409)
    assert "deallocated" in err.value.message and "az vm start" in err.value.message


def test_a_deallocated_appliance_forwards_nothing():
    assert trace(build(lab()), "vm3", "vm1", 80).verdict == "Connected"
    t = trace(build(lab(nva1="deallocated")), "vm3", "vm1", 80)
    assert (t.verdict, t.reason) == ("TimedOut", "VmNotRunning")


def test_the_matrix_leaves_a_vm_that_does_not_run_out():
    out = matrix(LabView(build(lab(vm2="deallocated"))), ["80"])
    assert "vm2" not in {m for c in out["classes"] for m in c["members"]}


def test_power_state_reads_arms_codes():
    topo = build(lab(vm2="PowerState/deallocated"))
    assert topo.find("virtual_machines", "vm2").power_state == "deallocated"


def test_az_vm_deallocate_and_start_through_arm(tmp_path):
    """``POST .../virtualMachines/vm2/deallocate`` (what ``az vm deallocate`` sends), the instance
    view's power state, the zone's record sets; then ``start``."""
    import httpx
    from vnetlab.api import ServerThread, create_app, ensure_tls
    from vnetlab.lab import Lab
    import ssl
    topo = Lab.open(tmp_path / "lab").up(build(lab()), "sim")
    tls = ensure_tls(tmp_path / "tls")
    vm = topo.id_of("virtual_machines", topo.find("virtual_machines", "vm2"))
    records = topo.id_of("private_dns_zones", topo.find("private_dns_zones", "corp.internal")) + "/A"
    with ServerThread(create_app(tmp_path / "lab"), tls) as url, \
            httpx.Client(base_url=url, verify=ssl.create_default_context(cafile=str(tls.ca)), timeout=30) as http:

        def power() -> str:
            view = http.get(f"{vm}/instanceView", params={"api-version": "2024-07-01"}).json()
            return next(s["code"] for s in view["statuses"] if s["code"].startswith("PowerState/"))

        def names() -> set[str]:
            return {r["name"] for r in http.get(records, params={"api-version": "2024-06-01"}).json()["value"]}

        assert power() == "PowerState/running" and "vm2" in names()
        assert http.post(f"{vm}/deallocate", params={"api-version": "2024-07-01"}).status_code == 200
        assert power() == "PowerState/deallocated" and "vm2" not in names()
        assert http.post(f"{vm}/start", params={"api-version": "2024-07-01"}).status_code == 200
        assert power() == "PowerState/running" and "vm2" in names()
        assert http.post(f"{vm}/powerOff", params={"api-version": "2024-07-01"}).status_code == 200
        assert power() == "PowerState/stopped" and "vm2" in names()
