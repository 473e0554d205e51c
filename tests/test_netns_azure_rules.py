"""The kernel agrees with the engine on the Azure rules of issue 8 §1/§3: spoke-to-spoke through a
hub NVA under the default NSG rules (VirtualNetwork includes UDR prefixes), and an NVA whose guest
does not forward."""

from __future__ import annotations

import copy

from netns_support import NETNS_MARKS
from test_scenarios import _hub_and_spokes_doc

from vnetlab.backends import netns_backend as nb
from vnetlab.lab import Lab
from vnetlab.model import Topology

pytestmark = NETNS_MARKS


def _both(lab: Lab, src: str, dst: str) -> tuple[str, str, str]:
    tr = lab.trace(src, str(lab.network().endpoint(dst).ip), 80).to_dict()
    return tr["verdict"], tr["reason"], nb.probe(lab, tr)["verdict"]


def test_spoke_to_spoke_through_the_nva_and_a_guest_that_does_not_forward(tmp_path):
    lab = Lab.open(tmp_path / "home")
    try:
        lab.up(Topology.model_validate(_hub_and_spokes_doc()), backend="netns")
        assert _both(lab, "vm1", "vm2") == ("Connected", "Reachable", "Connected")
        assert _both(lab, "vm2", "vm1") == ("Connected", "Reachable", "Connected")
        doc = copy.deepcopy(_hub_and_spokes_doc())
        doc["virtual_machines"][0]["guest_ip_forwarding"] = False
        lab.up(Topology.model_validate(doc))
        assert _both(lab, "vm1", "vm2") == ("TimedOut", "GuestNotForwarding", "TimedOut")
    finally:
        lab.down()
