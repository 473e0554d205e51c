"""`vnetlab graph`: the lab as DOT / Mermaid / SVG, with a trace drawn over it."""

import copy
from ipaddress import IPv4Address
import re
import shutil

import pytest

from conftest import NOTE, build, cli, up_note
from vnetlab import graph
from vnetlab.engine.network import LabView
from vnetlab.engine.trace import trace

DENY_80 = {"name": "nsg1", "security_rules": [
    {"name": "deny-http", "priority": 100, "direction": "Inbound", "access": "Deny", "protocol": "Tcp",
     "source_address_prefix": "*", "source_port_range": "*", "destination_address_prefix": "*",
     "destination_port_range": "80"}]}


def denied_doc() -> dict:
    doc = copy.deepcopy(NOTE)
    doc["network_security_groups"] = [DENY_80]
    doc["virtual_networks"][0]["subnets"][0]["network_security_group"] = "nsg1"
    return doc


def dot_nodes(dot: str) -> dict[str, str]:
    """DOT node id -> its label (with '\\n' line breaks)."""
    return {m.group(1): m.group(2) for m in re.finditer(r'^\s*(\w+) \[label="((?:[^"\\]|\\.)*)"', dot, re.M)}


def hops(label: str) -> list[int]:
    m = re.search(r"trace step ([\d, ]+)", label)
    return [int(n) for n in m.group(1).split(",")] if m else []


def test_dot_of_the_note_holds_vnets_subnets_delegation_and_integration():
    net = LabView(build())
    dot = graph.to_dot(graph.picture(net))
    nodes = dot_nodes(dot)
    assert 'label="VNet vnet1  10.0.0.0/24"' in dot
    assert 'label="subnet default  10.0.0.0/26"' in dot and 'label="subnet integration  10.0.0.128/26"' in dot
    assert "delegated to Microsoft.Web/serverFarms" in nodes["subnet_vnet1_integration"]
    assert "delegated" not in nodes["subnet_vnet1_default"]
    assert "VM rg1vm1" in nodes["vm_rg1vm1"] and "10.0.0.4" in nodes["vm_rg1vm1"]
    ip = net.integration[("plan1", "vnet1/integration")][0]
    assert re.search(rf'app_app1 -> subnet_vnet1_integration \[label="VNet integration {ip}"', dot)
    assert str(ip) == "10.0.0.190"


def test_mermaid_of_the_note_has_subgraphs_and_the_integration_edge():
    text = graph.to_mermaid(graph.picture(LabView(build())))
    assert text.splitlines()[3] == "flowchart LR"
    assert 'subgraph cluster_vnet_vnet1["VNet vnet1  10.0.0.0/24"]' in text
    assert 'subgraph cluster_subnet_vnet1_integration["subnet integration  10.0.0.128/26"]' in text
    assert "delegated to Microsoft.Web/serverFarms" in text
    assert 'app_app1 -->|"VNet integration 10.0.0.190"| subnet_vnet1_integration' in text
    assert text.count("subgraph") == text.count("\n  end") + text.count("\n    end")


def test_trace_app1_to_rg1vm1_marks_each_hop_connected_and_the_source_seen(tmp_path):
    home = up_note(tmp_path)
    result = cli(home, "graph", "--trace", "app1", "rg1vm1", "--port", "80")
    assert result.exit_code == 0, result.output
    dot = result.output
    traced = trace(build(), "app1", "rg1vm1", 80).to_dict()
    nodes = dot_nodes(dot)
    numbered = sorted(n for label in nodes.values() for n in hops(label))
    assert numbered == list(range(1, len(traced["steps"]) + len(traced["return_path"]) + 1))
    assert hops(nodes["app_app1"])[0] == 1                      # from the app
    assert "decided: " in nodes["vm_rg1vm1"] and "Deliver Answered" in nodes["vm_rg1vm1"].replace("\\n", " ")
    assert "Connected" in dot and "source seen 10.0.0.190" in dot
    for i, step in enumerate(traced["steps"], 1):  # the legend lists every step in order
        assert f"{i}. {step['kind']} {step['action']}" in nodes["trace_steps"]
    assert re.search(r'subnet_vnet1_integration -> vm_rg1vm1 \[label="4\. Deliver"', dot)


def test_a_denied_flow_marks_the_nsg_rule_that_decided(tmp_path):
    home = up_note(tmp_path, denied_doc())
    dot = cli(home, "graph", "--trace", "app1", "rg1vm1", "--port", "80").output
    nodes = dot_nodes(dot)
    decided = [label for label in nodes.values() if "decided: " in label]
    assert len(decided) == 1
    assert "NetworkSecurityGroup Denied: nsg1 on subnet vnet1/default Inbound: rule deny-http (priority 100) Deny" \
        in nodes["subnet_vnet1_default"].replace("\\n", " ")
    assert "TimedOut (NsgDenied" in dot
    assert "decided" not in nodes["vm_rg1vm1"] and not hops(nodes["vm_rg1vm1"])   # the packet never got there
    mermaid = cli(home, "graph", "-o", "mermaid", "--trace", "app1", "rg1vm1", "--port", "80").output
    assert "class subnet_vnet1_default decided" in mermaid


def test_a_subnet_of_50_endpoints_collapses_into_one_node_with_a_count():
    doc = copy.deepcopy(NOTE)
    doc["virtual_networks"][0]["address_space"] = ["10.0.0.0/16"]
    doc["virtual_networks"][0]["subnets"] += [{"name": "big", "address_prefix": "10.0.1.0/24"},
                                              {"name": "small", "address_prefix": "10.0.2.0/24"}]
    doc["virtual_machines"] += [{"name": f"big{i}", "subnet": "vnet1/big"} for i in range(graph.COLLAPSE_AT)]
    doc["virtual_machines"] += [{"name": f"small{i}", "subnet": "vnet1/small"} for i in range(graph.COLLAPSE_AT - 1)]
    doc["virtual_machines"].append({"name": "nva", "subnet": "vnet1/big", "enable_ip_forwarding": True})
    topo = build(doc)
    dot = graph.to_dot(graph.picture(LabView(topo)))
    nodes = dot_nodes(dot)
    assert not any(n.startswith("vm_big") for n in nodes)
    collapsed = [label for label in nodes.values() if "endpoints (VMs and NICs)" in label]
    assert collapsed == [f"{graph.COLLAPSE_AT} endpoints (VMs and NICs)\\n10.0.1.4 ... 10.0.1.53"]
    assert "nva_nva" in nodes                                        # an NVA stays in sight
    assert sum(n.startswith("vm_small") for n in nodes) == graph.COLLAPSE_AT - 1
    pic = graph.picture(LabView(topo), trace(topo, "app1", "big7", 80).to_dict())
    assert pic.keys[("vm", "big7")] in {e.dst for e in pic.edges if e.kind == "trace"}


def test_peering_state_is_shown():
    doc = copy.deepcopy(NOTE)
    doc["virtual_networks"].append({"name": "hub", "address_space": ["10.1.0.0/24"],
                                    "subnets": [{"name": "s", "address_prefix": "10.1.0.0/26"}]})
    doc["virtual_networks"][0]["peerings"] = [{"name": "to-hub", "remote_virtual_network": "hub"}]
    dot = graph.to_dot(graph.picture(LabView(build(doc))))
    assert 'label="peering to-hub: Initiated"' in dot and "lhead=cluster_vnet_hub" in dot
    doc["virtual_networks"][1]["peerings"] = [{"name": "to-vnet1", "remote_virtual_network": "vnet1"}]
    dot = graph.to_dot(graph.picture(LabView(build(doc))))
    assert dot.count("peering to-") == 1 and 'label="peering to-hub: Connected"' in dot


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed (apt-get install graphviz)")
def test_svg_through_real_dot(tmp_path):
    home = up_note(tmp_path)
    out = tmp_path / "lab.svg"
    result = cli(home, "graph", "--trace", "app1", "rg1vm1", "--port", "80", "--output", str(out))
    assert result.exit_code == 0, result.output
    svg = out.read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert "VNet vnet1" in svg and "10.0.0.190" in svg and "Connected" in svg


def test_svg_without_graphviz_says_so(tmp_path, monkeypatch):
    home = up_note(tmp_path)
    monkeypatch.setattr(graph.shutil, "which", lambda _name: None)
    result = cli(home, "graph", "-o", "svg")
    assert result.exit_code == 2
    assert "GraphvizNotFound" in result.output


def test_a_route_to_an_appliance_is_drawn_to_the_nic_the_engine_finds_and_not_to_a_namesake_address():
    from pathlib import Path

    import yaml
    topo = build(yaml.safe_load((Path(__file__).resolve().parents[1] / "examples/issue-example.yaml").read_text()))
    net = LabView(topo)
    pic = graph.picture(net)
    route_edges = [e for e in pic.edges if e.kind == "route"]
    nva = net.appliance_at(net.subnet_view("vnet1/default"), IPv4Address("10.1.0.4"))[0]
    assert nva is not None and [e.dst for e in route_edges] == [pic.keys[("nic", nva.name.lower())]]
    # the same address in a VNet that is not peered holds no appliance for vnet1's route
    doc = topo.model_dump(exclude_defaults=True)
    for vnet in doc["virtual_networks"]:
        vnet["peerings"] = []
    unpeered = LabView(build(doc))
    assert [e for e in graph.picture(unpeered).edges if e.kind == "route"] == []


def pe_lab() -> LabView:
    from pathlib import Path

    import yaml
    doc = yaml.safe_load((Path(__file__).parent.parent / "examples" / "private-endpoint.yaml").read_text())
    return LabView(build(doc))


def test_private_endpoints_paas_services_and_dns_zones_are_drawn_from_the_engine():
    from vnetlab.engine.dns import zone_records
    from vnetlab.engine.paas import public_addresses
    net = pe_lab()
    topo = net.topo
    dot = graph.to_dot(graph.picture(net))
    nodes = dot_nodes(dot)
    for (_kind, name), ip in public_addresses(topo).items():
        assert str(ip) in nodes[f"paas_{name}"]
    for pe in topo.private_endpoints:
        label = nodes[f"pe_{pe.name.replace('-', '_')}"]
        assert str(topo.private_endpoint_ip(pe)) in label and "Approved" in label
        assert re.search(rf'pe_{pe.name.replace("-", "_")} -> paas_{pe.target} \[label="private link {pe.group_id}', dot)
    for zone in topo.private_dns_zones:
        zid = "zone_" + re.sub(r"\W", "_", zone.name)
        assert f"{len(zone_records(topo, zone))} record sets" in nodes[zid]
        for link in zone.virtual_network_links:
            assert re.search(rf'{zid} -> \w+ \[label="link {link.name}.*lhead=cluster_vnet_{link.virtual_network}', dot)


def test_a_trace_to_a_paas_service_ends_at_its_node_with_the_admission():
    net = pe_lab()
    t = trace(net, "spokevm", "sql1.database.windows.net", port=1433).to_dict()
    nodes = dot_nodes(graph.to_dot(graph.picture(net, t)))
    admission = next(i for i, s in enumerate(t["steps"], 1) if s["kind"] == "Admission")
    assert admission in hops(nodes["paas_sql1"])


def test_a_nat_gateway_is_drawn_with_its_addresses_from_the_subnets_it_serves():
    from test_outbound import lab, subnet

    from vnetlab.engine.outbound import nat_gateway_addresses
    doc = lab()
    subnet(doc, "vms")["nat_gateway"] = "natgw"
    subnet(doc, "nva")["default_outbound_access"] = False
    net = LabView(build(doc))
    dot = graph.to_dot(graph.picture(net))
    nodes = dot_nodes(dot)
    addresses = nat_gateway_addresses(net.topo, net.topo.nat_gateways[0])
    assert addresses and all(str(ip) in nodes["nat_natgw"] for ip in addresses)
    assert re.search(r'subnet_hub_vms -> nat_natgw \[label="outbound via NAT gateway"', dot)
    assert "subnet_hub_nva -> nat_natgw" not in dot
    assert "private subnet" in nodes["subnet_hub_nva"] and "private subnet" not in nodes["subnet_hub_vms"]
    assert "nat_natgw" in graph.to_mermaid(graph.picture(net))


def test_the_vpn_gateway_and_the_on_premises_site_are_drawn_and_a_trace_from_the_site_crosses_them():
    from test_gateway import lab as vpn_lab
    net = LabView(build(vpn_lab()))
    tr = trace(net, "onprem1", "spokevm", 80).to_dict()
    dot = graph.to_dot(graph.picture(net, tr))
    nodes = dot_nodes(dot)
    assert "VPN gateway gw1" in nodes["gw_gw1"] and "onprem1 192.168.1.10" in nodes["site_office"]
    assert re.search(r'gw_gw1 -> site_office \[label="IPsec hub-to-office: Connected"', dot)
    assert hops(nodes["gw_gw1"]) == [1] and 1 not in hops(nodes["site_office"])  # the trace starts at the site
    assert re.search(r'site_office -> gw_gw1 \[label="1\. VirtualNetworkGateway"', dot)
    assert "gw_gw1" in graph.to_mermaid(graph.picture(net))
