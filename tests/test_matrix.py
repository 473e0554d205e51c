"""The matrix groups endpoints and skips traces that a route already drops; every cell must still
equal the verdict of a full trace between the two endpoints. One shape at any size: classes with
members, class-to-class cells that differ from the default, and per-pair cells with --expand."""

import json
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from conftest import cli  # noqa: E402
from generate import generate, generate_doc  # noqa: E402

from vnetlab.engine.matrix import endpoint_classes, matrix  # noqa: E402
from vnetlab.engine.network import LabView  # noqa: E402
from vnetlab.engine.trace import trace  # noqa: E402

SHAPE = {"ports", "endpoints", "traces", "classes", "default", "cells"}


def _verdict(net, eps, src, dst, label):
    proto, port = ("Icmp", None) if label == "icmp" else ("Tcp", int(label))
    return trace(net, src, str(eps[dst].ip), port, proto).verdict


def _pair_verdicts(result) -> dict[tuple[str, str], dict]:
    """Every pair of distinct endpoints with its verdicts, read from the class cells and the default."""
    classes = result["classes"]
    by_class = {(c["source"], c["destination"]): c["verdicts"] for c in result["cells"]}
    out = {}
    for i, a in enumerate(classes):
        for j, b in enumerate(classes):
            for s in a["members"]:
                for d in b["members"]:
                    if s != d:
                        out[(s, d)] = by_class.get((i, j), result["default"])
    return out


def test_expanded_pairs_equal_full_traces():
    net = LabView(generate(vnets=4, subnets=4, vms=24, apps=6, rules=12, seed=3))
    result = matrix(net, ["22", "80", "icmp"], expand=True)
    assert len(result["classes"]) < result["endpoints"]
    eps = {ep.name: ep for ep in net.endpoints()}
    assert len(result["pairs"]) == len(eps) * (len(eps) - 1)
    verdicts = set()
    for pair in result["pairs"]:
        for label, verdict in pair["verdicts"].items():
            assert _verdict(net, eps, pair["source"], pair["destination"], label) == verdict, (pair, label)
            verdicts.add(verdict)
    assert {"Connected", "TimedOut", "Refused"} <= verdicts


def test_class_cells_and_default_say_what_the_pairs_say():
    net = LabView(generate(vnets=4, subnets=4, vms=24, apps=6, rules=12, seed=3))
    result = matrix(net, ["22", "80", "icmp"], expand=True)
    assert set(result) == SHAPE | {"pairs"}
    assert _pair_verdicts(result) == {(p["source"], p["destination"]): p["verdicts"] for p in result["pairs"]}
    assert all(c["verdicts"] != result["default"] for c in result["cells"])
    members = [m for c in result["classes"] for m in c["members"]]
    assert sorted(members) == sorted(ep.name for ep in net.endpoints())


def test_same_shape_small_and_large():
    small = matrix(LabView(generate(vnets=1, subnets=2, vms=2, apps=1, rules=2, seed=1)), ["80"])
    large = matrix(LabView(generate(vnets=12, subnets=5, vms=420, apps=6, rules=4, seed=2)), ["80"])
    assert large["endpoints"] > 400
    assert set(small) == set(large) == SHAPE
    for result in (small, large):
        assert result["ports"] == ["80"] and set(result["default"]) == {"80"}
        assert sum(len(c["members"]) for c in result["classes"]) == result["endpoints"]
        assert all(0 <= c["source"] < len(result["classes"]) for c in result["cells"])


def _lab_home(tmp_path, **shape):
    f = tmp_path / "lab.yaml"
    f.write_text(yaml.safe_dump(generate_doc(**shape)))
    home = tmp_path / "lab"
    assert cli(home, "up", str(f)).exit_code == 0
    return home


def test_cli_table_above_400_endpoints_groups_by_class(tmp_path):
    home = _lab_home(tmp_path, vnets=12, subnets=5, vms=420, apps=6, rules=4, seed=2)
    res = cli(home, "matrix", "--ports", "80")
    assert res.exit_code == 0, res.output
    assert "426 endpoints in" in res.output and "pair" in res.output
    as_json = json.loads(cli(home, "matrix", "--ports", "80", "-o", "json").output)
    assert as_json["endpoints"] == 426
    assert f"426 endpoints in {len(as_json['classes'])} classes" in res.output


def test_cli_json_is_compact_and_expand_adds_pairs(tmp_path):
    home = _lab_home(tmp_path, vnets=2, subnets=3, vms=6, apps=2, rules=3, seed=4)
    out = cli(home, "matrix", "--ports", "80,22", "-o", "json").output
    assert "\n" not in out.strip() and ", " not in out
    plain, expanded = json.loads(out), json.loads(cli(home, "matrix", "--ports", "80,22", "-o", "json",
                                                        "--expand").output)
    assert set(expanded) == set(plain) | {"pairs"} and len(expanded["pairs"]) == 8 * 7
    assert _pair_verdicts(plain) == {(p["source"], p["destination"]): p["verdicts"] for p in expanded["pairs"]}
    table = cli(home, "matrix", "--ports", "80,22", "--expand")
    assert table.exit_code == 0 and "between endpoints" in table.output
    grouped = cli(home, "matrix", "--ports", "80,22").output
    default = " ".join(f"{p}:{ {'Connected': 'ok', 'Refused': 'ref', 'TimedOut': 'x'}[v]}" for p, v in
                       plain["default"].items())
    assert f"pair of endpoints: {default}" in grouped
    assert all(f"#{c['source']} {plain['classes'][c['source']]['members'][0]}" in grouped for c in plain["cells"])


def _assert_pairs_equal_traces(net, ports):
    result = matrix(net, ports, expand=True)
    eps = {ep.name: ep for ep in net.endpoints()}
    assert len(result["pairs"]) == len(eps) * (len(eps) - 1)
    for pair in result["pairs"]:
        for label, verdict in pair["verdicts"].items():
            assert _verdict(net, eps, pair["source"], pair["destination"], label) == verdict, (pair, label)
    return result


def test_per_subnet_nsgs_naming_hosts_answer_as_full_traces():
    """The large lab's shape (an NSG per subnet naming hosts of its VNet, chained peerings), small and
    with several seeds: a destination traced once for the sources whose NSGs do not name it still
    answers, for each pair, what the pair's own trace says; fewer traces than class pairs."""
    from generate_large import generate_doc as large_doc
    from vnetlab.lab import allocate_dynamic_addresses
    from vnetlab.model import Topology
    for seed in (1, 2):
        topo = Topology.model_validate(large_doc(vnets=2, subnets=20, rules=150, vms=70, apps=4, seed=seed))
        allocate_dynamic_addresses(topo, None)
        net = LabView(topo)
        assert any(c.named_elsewhere for c in endpoint_classes(net, net.endpoints()))
        result = _assert_pairs_equal_traces(net, ["80", "22"])
        assert result["traces"] < len(result["classes"]) ** 2 * 2


def test_a_lab_with_an_appliance_answers_as_full_traces():
    """Routes through an appliance: its NSGs see other endpoints' flows (the issue's example lab)."""
    from vnetlab.topology import load
    from vnetlab.lab import allocate_dynamic_addresses
    topo = load(Path(__file__).resolve().parents[1] / "examples" / "issue-example.yaml")
    allocate_dynamic_addresses(topo, None)
    _assert_pairs_equal_traces(LabView(topo), ["80", "22", "443", "icmp"])


def test_rules_on_other_ports_tell_no_endpoints_apart():
    """Classes answer alike in the flows asked: a rule that cannot match one of them (another port or
    protocol) splits no class; with ports the hosts' rules name, the classes split again and every pair
    still answers as its own trace."""
    from generate_large import generate_doc as large_doc
    from vnetlab.engine.matrix import parse_flows
    from vnetlab.lab import allocate_dynamic_addresses
    from vnetlab.model import Topology
    topo = Topology.model_validate(large_doc(vnets=2, subnets=20, rules=150, vms=70, apps=4, seed=1))
    allocate_dynamic_addresses(topo, None)
    net = LabView(topo)
    eps = net.endpoints()
    hosts = {nic.private_ip_address for nic in topo.network_interfaces}
    named_ports = sorted({r.destination_port_range for nsg in topo.network_security_groups for r in nsg.security_rules
                          if r.destination_address_prefix in hosts and r.protocol in ("Tcp", "*")})
    every_flow, port_80 = endpoint_classes(net, eps), endpoint_classes(net, eps, parse_flows(["80"]))
    with_named = endpoint_classes(net, eps, parse_flows(["80", *named_ports[:3]]))
    assert len(port_80) < len(with_named) <= len(every_flow)
    assert len(port_80) == len({(ep.kind, ep.subnet_ref) if ep.kind == "vm" else ep.name for ep in eps})
    _assert_pairs_equal_traces(net, ["80", *named_ports[:3]])
    _assert_pairs_equal_traces(net, ["80", "icmp"])


def test_the_lab_read_for_the_asked_flows_gives_the_whole_labs_matrix(tmp_path):
    """``Lab.matrix`` reads only the NSGs with a rule for the asked flows; its answer is the matrix of
    the whole lab, for ports no rule names, ports rules name, ICMP and UDP, and with an appliance."""
    from generate_large import generate_doc as large_doc
    from vnetlab.lab import Lab
    from vnetlab.topology import load, parse
    example = load(Path(__file__).resolve().parents[1] / "examples" / "issue-example.yaml")
    for k, desired in enumerate([parse(large_doc(vnets=3, subnets=6, rules=60, vms=30, apps=4, seed=5)), example]):
        Lab.open(tmp_path / str(k)).up(desired, backend="sim")
        whole = Lab.open(tmp_path / str(k)).topology()
        named = sorted({r.destination_port_range for nsg in whole.network_security_groups
                        for r in nsg.security_rules if r.protocol in ("Tcp", "*") and (r.destination_port_range or "").isdigit()})
        for ports in (["80"], ["80", *named[:2]], ["22", "icmp", "udp/53"]):
            lab = Lab.open(tmp_path / str(k))  # nothing compiled yet: the lab is read for the flows
            assert lab.matrix(ports, expand=True) == matrix(LabView(whole), ports, expand=True), (k, ports)


def test_a_view_read_for_some_flows_refuses_to_evaluate_another():
    from vnetlab.engine.matrix import parse_flows
    topo = generate(vnets=1, subnets=2, vms=2, apps=0, rules=2, seed=1)
    net = LabView(topo, parse_flows(["80", "icmp"]))
    nsg = topo.network_security_groups[0]
    assert net.rules_matching(nsg, "Tcp", 80) is not None and net.rules_matching(nsg, "Icmp", None) is not None
    with pytest.raises(RuntimeError, match="not for"):
        net.rules_matching(nsg, "Tcp", 22)


def test_a_trace_on_the_lab_read_for_its_flow_is_the_whole_labs_trace(tmp_path):
    """``Lab.trace`` in a one-shot command reads the lab for its one flow: the trace, explanation
    included (the NSG rule that decided), is the whole lab's, from VMs and apps, to VMs, apps and names."""
    from generate_large import generate_doc as large_doc
    from vnetlab.lab import Lab
    from vnetlab.topology import load, parse
    example = load(Path(__file__).resolve().parents[1] / "examples" / "issue-example.yaml")
    decided_by_rules = 0
    for k, desired in enumerate([parse(large_doc(vnets=3, subnets=6, rules=60, vms=30, apps=4, seed=5)), example]):
        Lab.open(tmp_path / str(k)).up(desired, backend="sim")
        whole = LabView(Lab.open(tmp_path / str(k)).topology())
        eps = whole.endpoints()
        ports = sorted({int(r.destination_port_range) for nsg in whole.topo.network_security_groups
                        for r in nsg.security_rules if (r.destination_port_range or "").isdigit()})[:6]
        by_ip = {str(ep.ip): ep for ep in eps}
        named = [(by_ip[r.destination_address_prefix], int(r.destination_port_range), r.protocol)
                 for nsg in whole.topo.network_security_groups for r in nsg.security_rules
                 if r.destination_address_prefix in by_ip and (r.destination_port_range or "").isdigit()][:8]
        flows = [(dst, port, "Tcp" if protocol == "*" else protocol) for dst, port, protocol in named] + \
            [(dst, port, protocol) for dst in eps[1:: max(1, len(eps) // 5)]
             for port, protocol in [(p, "Tcp") for p in ports[:3] + [80, 22]] + [(53, "Udp"), (None, "Icmp")]]
        for src in eps[:: max(1, len(eps) // 6)]:
            for dst, port, protocol in flows:
                expected = trace(whole, src.name, str(dst.ip), port, protocol).to_dict()
                got = Lab.open(tmp_path / str(k)).trace(src.name, str(dst.ip), port, protocol).to_dict()
                assert got == expected, (k, src.name, dst.name, port, protocol)
                decided_by_rules += any(s.get("default_rule") is False for s in expected["steps"])
    assert decided_by_rules  # some flows were decided by a user rule, not only by the defaults
