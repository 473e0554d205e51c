"""The matrix groups endpoints and skips traces that a route already drops; every cell must still
equal the verdict of a full trace between the two endpoints."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from generate import generate  # noqa: E402

from vnetlab.engine.matrix import matrix  # noqa: E402
from vnetlab.engine.network import Network  # noqa: E402
from vnetlab.engine.trace import trace  # noqa: E402


def test_matrix_cells_equal_full_traces():
    net = Network(generate(vnets=4, subnets=4, vms=24, apps=6, rules=12, seed=3))
    result = matrix(net, ["22", "80", "icmp"])
    assert result["classes"] < result["endpoints"] or result["endpoints"] < 10
    eps = {ep.name: ep for ep in net.endpoints()}
    verdicts = set()
    for key, cell in result["cells"].items():
        src, dst = key.split("->")
        for label, verdict in cell.items():
            proto, port = ("Icmp", None) if label == "icmp" else ("Tcp", int(label))
            assert trace(net, src, str(eps[dst].ip), port, proto).verdict == verdict, (key, label)
            verdicts.add(verdict)
    assert {"Connected", "TimedOut", "Refused"} <= verdicts
