"""Outbound on the real kernel (issue 10 §1): the source an internet host sees (its ``GET /ip``
echoes it) is the engine's ``source_ip_seen`` for VMs behind a NAT gateway, with an instance
public IP, with default outbound access, and for integrated apps with and without Route All; a
VM of a private subnet has no internet path; ICMP does not cross a NAT gateway."""

from __future__ import annotations

import time

import pytest

from vnetlab.backends import netns_backend as nb
from vnetlab.backends.netns import exec as nx
from vnetlab.model import Topology

from netns_support import NETNS_MARKS, emulated  # noqa: E402

pytestmark = NETNS_MARKS

VMS = ["vm-nat", "vm-pip", "vm-default", "vm-private"]
APPS = ["app-direct", "app-all"]


def outbound_lab() -> dict:
    """A NAT gateway on a VM subnet and on the integration subnet; a VM there with a public IP too
    (the NAT gateway wins); a VM with a public IP in a private subnet; one with neither in an open
    subnet and one in a private subnet; two apps of one plan, Route All off and on."""
    return {
        "name": "egress", "location": "westeurope", "resource_group": "rg1",
        "public_ip_addresses": [{"name": "pip-nat"}, {"name": "pip-both"}, {"name": "pip-vm"}],
        "nat_gateways": [{"name": "natgw", "public_ip_addresses": ["pip-nat"]}],
        "virtual_networks": [{"name": "vnet1", "address_space": ["10.0.0.0/16"], "subnets": [
            {"name": "nat", "address_prefix": "10.0.0.0/24", "nat_gateway": "natgw"},
            {"name": "open", "address_prefix": "10.0.1.0/24"},
            {"name": "private", "address_prefix": "10.0.2.0/24", "default_outbound_access": False},
            {"name": "integration", "address_prefix": "10.0.3.0/26", "nat_gateway": "natgw",
             "delegations": ["Microsoft.Web/serverFarms"]}]}],
        "virtual_machines": [
            {"name": "vm-nat", "subnet": "vnet1/nat", "public_ip_address": "pip-both"},
            {"name": "vm-pip", "subnet": "vnet1/private", "public_ip_address": "pip-vm"},
            {"name": "vm-default", "subnet": "vnet1/open"},
            {"name": "vm-private", "subnet": "vnet1/private"}],
        "app_service_plans": [{"name": "plan1", "sku": "P1v3", "os": "linux", "instances": 1}],
        "web_apps": [{"name": "app-direct", "plan": "plan1", "vnet_integration": "vnet1/integration"},
                     {"name": "app-all", "plan": "plan1", "vnet_integration": "vnet1/integration",
                      "vnet_route_all_enabled": True}],
    }


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The outbound lab, up once for the module: its tests only trace and probe it."""
    with emulated(tmp_path_factory.mktemp("outbound") / "home", Topology.model_validate(outbound_lab())) as lab:
        yield lab


def seen_at_ip(lab, source: str, host_ip: str, timeout: float = 3.0) -> str | None:
    """What the internet host's ``GET /ip`` answers a request from ``source``'s namespace (None: no
    answer). The first try may meet a responder still starting: a refused connection is retried."""
    ns = nb.namespace_of(lab, source)
    deadline = time.monotonic() + 10
    while True:
        done = nx.run_in(ns, ["curl", "-s", "--max-time", str(timeout), f"http://{host_ip}/ip"], timeout=timeout + 5)
        if done.returncode != 7 or time.monotonic() > deadline:  # 7: connection refused
            return done.stdout.strip() if done.returncode == 0 else None
        time.sleep(0.2)


def test_the_internet_sees_the_source_the_engine_says(lab):
    topo = lab.topology()
    host = topo.internet_hosts[0]
    traces = {name: lab.trace(name, host.name, 80) for name in VMS + APPS}
    # the engine's answers differ from each other: the comparison below tells the cases apart
    pips = {p.name: p.ip_address for p in topo.public_ip_addresses}
    assert traces["vm-nat"].source_ip_seen == traces["app-all"].source_ip_seen == pips["pip-nat"]
    assert traces["vm-pip"].source_ip_seen == pips["pip-vm"]
    assert traces["app-direct"].source_ip_seen not in pips.values()
    assert traces["vm-private"].verdict != "Connected"
    for name in VMS + APPS:
        want = traces[name].source_ip_seen if traces[name].verdict == "Connected" else None
        assert seen_at_ip(lab, name, host.ip) == want, name


def test_icmp_and_private_subnets_as_the_engine_says(lab):
    host = lab.topology().internet_hosts[0]
    reasons = set()
    for source in VMS + APPS:
        for port, proto in ((None, "Icmp"), (443, "Tcp")):
            tr = lab.trace(source, host.name, port, proto).to_dict()
            reasons.add(tr["reason"])
            assert nb.probe(lab, tr, timeout=1.5)["verdict"] == tr["verdict"], (source, proto, tr["reason"])
    assert {"NoOutboundAccess", "NatGatewayNoIcmp"} <= reasons  # the lab holds both refusals
