"""The VPN gateway on a real kernel (issue 10 section 3): the gateway a namespace in the hub's
GatewaySubnet, the on-premises site a router namespace behind it over a veth standing in for the
IPsec tunnel, its host a namespace of its own. Every probe equals the engine's verdict, and the
on-premises host sees the source the engine says. Expected values come from the engine."""

from __future__ import annotations

import pytest
from netns_support import NETNS_MARKS
from test_gateway import lab as vpn_lab
from test_netns_backend import lab  # noqa: F401  (the fixture: a lab that must leave nothing behind)

from vnetlab.backends import netns_backend as nb
from vnetlab.backends.netns import exec as nx
from vnetlab.model import Topology

pytestmark = NETNS_MARKS

FLOWS = (("Tcp", 80), ("Tcp", 8080), ("Icmp", None))


def agree(lab, src: str, dst: str) -> None:  # noqa: F811
    for proto, port in FLOWS:
        tr = lab.trace(src, dst, port, proto).to_dict()
        assert nb.probe(lab, tr)["verdict"] == tr["verdict"], (src, dst, proto, port, tr["reason"])


def seen_by_host(lab, src: str, dst: str) -> tuple[str, str]:  # noqa: F811
    """(the source address the destination's capture saw for a TCP SYN to port 80, the engine's)."""
    tr = lab.trace(src, dst, 80)
    assert tr.verdict == "Connected", tr.to_dict()
    cap = nx.capture(nb.namespace_of(lab, dst), "tcp dst port 80 and tcp[tcpflags] & tcp-syn != 0", 1,
                     iface="eth0")
    assert nb.probe(lab, tr.to_dict())["verdict"] == "Connected"
    line = cap.lines(timeout=5)[0]
    return line.split(" IP ", 1)[1].split(" > ", 1)[0].rsplit(".", 1)[0], tr.source_ip_seen


def test_vms_apps_and_the_on_premises_host_agree_with_the_engine_through_the_gateway(lab):  # noqa: F811
    lab.up(Topology.model_validate(vpn_lab()), "netns")
    for src, dst in (("hubvm", "onprem1"), ("spokevm", "onprem1"), ("spoke2vm", "onprem1"), ("app1", "onprem1"),
                     ("onprem1", "spokevm"), ("onprem1", "hubvm"), ("onprem1", "spoke2vm")):
        agree(lab, src, dst)
    # the on-premises host sees the integration address of the app, and the spoke VM's own address
    for src in ("app1", "spokevm"):
        seen, engine = seen_by_host(lab, src, "onprem1")
        assert seen == engine, (src, seen, engine)
    seen, engine = seen_by_host(lab, "onprem1", "spokevm")
    assert seen == engine == "192.168.1.10"


def test_a_udr_on_the_gateway_subnet_and_an_nsg_on_the_spoke_hold_on_the_kernel(lab):  # noqa: F811
    doc = vpn_lab(route_tables=[{"name": "rt-gw", "routes": [
        {"name": "spoke-via-nva", "address_prefix": "10.1.0.0/16", "next_hop_type": "VirtualAppliance",
         "next_hop_ip_address": "10.0.3.4"}]}],
        network_security_groups=[{"name": "nsg-spoke2", "security_rules": []},
                                 {"name": "nsg-hub", "security_rules": [
                                     {"name": "deny-onprem", "priority": 100, "direction": "Inbound", "access": "Deny",
                                      "protocol": "*", "source_address_prefix": "192.168.0.0/16"}]}])
    doc["virtual_networks"][0]["subnets"][3]["route_table"] = "rt-gw"
    doc["virtual_networks"][0]["subnets"][0]["network_security_group"] = "nsg-hub"
    lab.up(Topology.model_validate(doc), "netns")
    tr = lab.trace("onprem1", "spokevm", 80)
    assert "VirtualAppliance" in [s.kind for s in tr.steps]
    for src, dst in (("onprem1", "spokevm"), ("onprem1", "hubvm"), ("hubvm", "onprem1")):
        agree(lab, src, dst)
    assert lab.trace("onprem1", "hubvm", 80).reason == "NsgDenied"


def test_a_connection_with_another_key_carries_nothing_on_the_kernel(lab):  # noqa: F811
    doc = vpn_lab()
    doc["connections"][0]["shared_key"] = "other"
    lab.up(Topology.model_validate(doc), "netns")
    for src, dst in (("hubvm", "onprem1"), ("onprem1", "hubvm")):
        assert lab.trace(src, dst, 80).reason == "ConnectionNotConnected"
        agree(lab, src, dst)


def variant(seed: int) -> dict:
    """test_gateway's lab with its gateway settings drawn at random: transit offered or not, the spoke's
    propagation off or on, the connection's key right or wrong, an NSG denying the site on a subnet or
    not, the GatewaySubnet's UDR through the NVA or not."""
    import random
    rnd = random.Random(seed)
    doc = vpn_lab(route_tables=[{"name": "rt-spoke", "disable_bgp_route_propagation": rnd.random() < 0.3},
                                {"name": "rt-gw", "routes": [
                                    {"name": "spoke-via-nva", "address_prefix": "10.1.0.0/16",
                                     "next_hop_type": "VirtualAppliance", "next_hop_ip_address": "10.0.3.4"}]}],
                  network_security_groups=[{"name": "nsg-deny", "security_rules": [
                      {"name": "deny-onprem", "priority": 100, "direction": "Inbound", "access": "Deny",
                       "protocol": "Tcp", "source_address_prefix": "192.168.0.0/16",
                       "destination_port_range": "80"}]}])
    hub, spoke = doc["virtual_networks"][0], doc["virtual_networks"][1]
    hub["peerings"][0]["allow_gateway_transit"] = rnd.random() < 0.7
    spoke["subnets"][0]["route_table"] = "rt-spoke"
    if rnd.random() < 0.2:
        doc["connections"][0]["shared_key"] = "other"
    if rnd.random() < 0.5:
        hub["subnets"][3]["route_table"] = "rt-gw"
    if rnd.random() < 0.5:
        rnd.choice([hub["subnets"][0], spoke["subnets"][0]])["network_security_group"] = "nsg-deny"
    return doc


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_gateway_settings_engine_equals_kernel(lab, seed):  # noqa: F811
    lab.up(Topology.model_validate(variant(seed)), "netns")
    reasons = set()
    for src in ("hubvm", "spokevm", "spoke2vm", "app1", "onprem1"):
        for dst in ("onprem1", "hubvm", "spokevm"):
            if src == dst:
                continue
            for proto, port in FLOWS:
                tr = lab.trace(src, dst, port, proto).to_dict()
                reasons.add(tr["reason"])
                assert nb.probe(lab, tr)["verdict"] == tr["verdict"], (seed, src, dst, proto, port, tr["reason"])
    assert "Reachable" in reasons and len(reasons) > 2, reasons


def test_a_flow_to_the_site_through_the_hubs_nva_with_its_reply_straight_back_carries_data(lab):  # noqa: F811
    """The spoke sends the site's prefix through the hub's NVA; the GatewaySubnet has no UDR back, so
    the reply goes straight over the peering (asymmetric, as the engine walks it). The whole HTTP
    exchange must pass, not only the handshake: the on-premises host answers ``GET /ip`` with the
    source the engine says it sees."""
    doc = vpn_lab(route_tables=[{"name": "rt-spoke", "routes": [
        {"name": "site-via-nva", "address_prefix": "192.168.0.0/16", "next_hop_type": "VirtualAppliance",
         "next_hop_ip_address": "10.0.3.4"}]}])
    doc["virtual_networks"][1]["subnets"][0]["route_table"] = "rt-spoke"
    lab.up(Topology.model_validate(doc), "netns")
    tr = lab.trace("spokevm", "onprem1", 80)
    assert tr.verdict == "Connected" and "VirtualAppliance" in [s.kind for s in tr.steps]
    assert "VirtualAppliance" not in [s.kind for s in tr.return_path]
    got = nx.run_in(nb.namespace_of(lab, "spokevm"), ["curl", "-s", "--max-time", "5", "http://192.168.1.10/ip"],
                    timeout=20)
    assert (got.returncode, got.stdout.strip()) == (0, tr.source_ip_seen)
