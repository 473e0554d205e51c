"""Outbound on the real kernel (issue 10 §1): the source an internet host sees (its ``GET /ip``
echoes it) is the engine's ``source_ip_seen`` for VMs behind a NAT gateway, with an instance
public IP, with default outbound access, and for integrated apps with and without Route All; a
VM of a private subnet has no internet path; ICMP does not cross a NAT gateway. Inbound: internet
hosts reach VMs at their public IPs (DNAT, NSGs with the internet source) and get a reset from a NAT
gateway's address, as the engine says; a flow through a NAT gateway carries its idle timeout."""

from __future__ import annotations

import subprocess
import sys
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


# -- inbound from the internet to public IPs, and the NAT gateway's idle timeout --------------------------
def inbound_lab() -> dict:
    """A VM with a public IP behind an NSG (HTTP from the Internet tag, SSH from the office only); a VM
    behind a NAT gateway only; one behind the NAT gateway with a public IP too; an appliance (IP
    forwarding) with a public IP; two internet hosts."""
    def rule(name, priority, port, source):
        return {"name": name, "priority": priority, "direction": "Inbound", "access": "Allow", "protocol": "Tcp",
                "source_address_prefix": source, "source_port_range": "*", "destination_address_prefix": "*",
                "destination_port_range": port}
    served = [{"port": 22}, {"port": 80}]
    return {
        "name": "inbound-ip", "location": "westeurope", "resource_group": "rg1",
        "public_ip_addresses": [{"name": "pip-web"}, {"name": "pip-nat"}, {"name": "pip-both"}, {"name": "pip-nva"}],
        "nat_gateways": [{"name": "natgw", "public_ip_addresses": ["pip-nat"], "idle_timeout_in_minutes": 10}],
        "network_security_groups": [{"name": "nsg-web", "security_rules": [
            rule("web", 100, "80", "Internet"), rule("office-ssh", 110, "22", "203.0.113.10/32")]}],
        "virtual_networks": [{"name": "vnet1", "address_space": ["10.0.0.0/16"], "subnets": [
            {"name": "web", "address_prefix": "10.0.0.0/24", "network_security_group": "nsg-web"},
            {"name": "nat", "address_prefix": "10.0.1.0/24", "nat_gateway": "natgw"},
            {"name": "nva", "address_prefix": "10.0.2.0/24"}]}],
        "virtual_machines": [
            {"name": "vm-web", "subnet": "vnet1/web", "public_ip_address": "pip-web", "services": served},
            {"name": "vm-nat", "subnet": "vnet1/nat", "services": served},
            {"name": "vm-both", "subnet": "vnet1/nat", "public_ip_address": "pip-both", "services": served},
            {"name": "nva", "subnet": "vnet1/nva", "public_ip_address": "pip-nva", "enable_ip_forwarding": True,
             "services": served}],
        "internet_hosts": [{"name": "office", "ip": "203.0.113.10"}, {"name": "home", "ip": "203.0.113.77"}],
    }


@pytest.fixture(scope="module")
def inbound(tmp_path_factory):
    """The inbound lab, up once for the module: its tests only trace and probe it."""
    with emulated(tmp_path_factory.mktemp("inbound-ip") / "home", Topology.model_validate(inbound_lab())) as lab:
        yield lab


def test_the_internet_reaches_public_ips_as_the_engine_says_and_the_vm_sees_the_internet_source(inbound):
    lab = inbound
    topo = lab.topology()
    pips = {p.name: p.ip_address for p in topo.public_ip_addresses}
    reasons = set()
    for who in ("office", "home"):
        for name in pips:
            for port, proto in ((80, "Tcp"), (22, "Tcp"), (None, "Icmp")):
                tr = lab.trace(who, pips[name], port, proto).to_dict()
                reasons.add(tr["reason"])
                assert nb.probe(lab, tr, timeout=1.5)["verdict"] == tr["verdict"], (who, name, proto, port, tr["reason"])
    assert {"Reachable", "NsgDenied", "NatGatewayInboundRefused", "NatGatewayInboundNotAnswered"} <= reasons
    for who in ("office", "home"):   # the VM sees the internet source; the reply comes from the public IP
        for name in ("pip-web", "pip-both", "pip-nva"):
            want = lab.trace(who, pips[name], 80)
            assert want.verdict == "Connected" and want.source_ip_seen == topo.internet_hosts[0 if who == "office"
                                                                                              else 1].ip
            assert seen_at_ip(lab, who, pips[name]) == want.source_ip_seen, (who, name)
    # outbound from vm-both still leaves by the NAT gateway
    assert seen_at_ip(lab, "vm-both", "203.0.113.10") == lab.trace("vm-both", "office", 80).source_ip_seen \
        == pips["pip-nat"]


def conntrack_timeouts(ns: str, src: str, dst: str, dport: int) -> list[int]:
    """The seconds left on each conntrack entry of TCP src -> dst:dport (ESTABLISHED) in ``ns``."""
    out = []
    for line in nx.run_in(ns, ["cat", "/proc/net/nf_conntrack"], timeout=10).stdout.splitlines():
        f = line.split()
        if "tcp" in f and "ESTABLISHED" in f and f"src={src}" in f and f"dst={dst}" in f and f"dport={dport}" in f:
            out.append(int(f[4]))
    return out


HOLD = "import socket, sys, time\ns = socket.create_connection((sys.argv[1], 80))\nprint('open', flush=True)\n" \
       "time.sleep(30)\n"


def test_a_nat_gateway_flow_gets_the_gateways_idle_timeout_in_conntrack(inbound):
    lab = inbound
    topo = lab.topology()
    office = topo.internet_hosts[0].ip
    fabric = nb.namespace_of(lab, "vnet1")
    idle = topo.find("nat_gateways", "natgw").idle_timeout_in_minutes * 60
    snat = [s for s in lab.trace("vm-nat", "office", 80).steps if s.kind == "SNAT"][-1]
    assert snat.detail.idle_timeout_in_minutes * 60 == idle
    seen = {}
    for vm in ("vm-nat", "vm-web"):   # through the NAT gateway; through an instance public IP only
        ip = topo.find("network_interfaces", f"{vm}VMNic").private_ip_address
        hold = subprocess.Popen(["ip", "netns", "exec", nb.namespace_of(lab, vm), sys.executable, "-c", HOLD, office],
                                stdout=subprocess.PIPE, text=True)
        try:
            assert hold.stdout.readline().strip() == "open"
            seen[vm] = conntrack_timeouts(fabric, ip, office, 80)
        finally:
            hold.kill()
            hold.wait()
    assert len(seen["vm-nat"]) == 1 and idle - 30 < seen["vm-nat"][0] <= idle, seen
    assert len(seen["vm-web"]) == 1 and seen["vm-web"][0] > idle   # the kernel's own (5 days): no NAT gateway
