"""A NIC's secondary IP configurations on a real kernel (issue 8 §3): the addresses are on the VM's
interface, the fabric routes them, the VM's services answer on them and see which address was
reached, NSG rules on a secondary address act as the engine says, and the VM's own flows leave
from its primary address."""

from __future__ import annotations

import copy

from netns_support import NETNS_MARKS, wait_listening

from vnetlab.backends import netns_backend as nb
from vnetlab.backends.netns import exec as nx
from vnetlab.lab import Lab
from vnetlab.model import Topology

pytestmark = NETNS_MARKS

NSG = {"name": "nsg-web", "security_rules": [
    {"name": "web-on-secondary", "priority": 100, "direction": "Inbound", "access": "Allow", "protocol": "Tcp",
     "source_address_prefix": "*", "destination_address_prefix": "10.0.0.5", "destination_port_range": "80"},
    {"name": "deny-web", "priority": 200, "direction": "Inbound", "access": "Deny", "protocol": "Tcp",
     "source_address_prefix": "*", "destination_address_prefix": "*", "destination_port_range": "80"}]}

LAB = {
    "name": "ipconfigs",
    "virtual_networks": [{"name": "vnet1", "address_space": ["10.0.0.0/24"], "subnets": [
        {"name": "default", "address_prefix": "10.0.0.0/26"}, {"name": "clients", "address_prefix": "10.0.0.64/26"}]}],
    "network_security_groups": [NSG],
    "virtual_machines": [
        {"name": "web", "subnet": "vnet1/default", "network_security_group": "nsg-web", "services": [{"port": 80}],
         "ip_configurations": [{"name": "ipconfig1", "private_ip_address": "10.0.0.4", "primary": True},
                               {"name": "site2", "private_ip_address": "10.0.0.5"}]},
        {"name": "client", "subnet": "vnet1/clients", "private_ip_address": "10.0.0.70", "services": [{"port": 8080}]}],
}


def _both(lab: Lab, src: str, dst: str, port: int | None, protocol: str = "Tcp") -> tuple[str, str]:
    tr = lab.trace(src, dst, port, protocol).to_dict()
    return tr["verdict"], nb.probe(lab, tr)["verdict"]


def test_secondary_address_is_routed_answered_and_filtered_on_the_kernel(tmp_path):
    lab = Lab.open(tmp_path / "home")
    try:
        lab.up(Topology.model_validate(copy.deepcopy(LAB)), backend="netns")
        web, client = nb.namespace_of(lab, "web"), nb.namespace_of(lab, "client")
        wait_listening(web, 80)
        shown = nx.run_in(web, ["ip", "-4", "-o", "addr", "show", "dev", "eth0"]).stdout
        assert "10.0.0.4/26" in shown and "10.0.0.5/32" in shown
        # across subnets, through the fabric: the secondary answers ping and the service
        assert _both(lab, "client", "10.0.0.5", None, "Icmp") == ("Connected", "Connected")
        assert nx.run_in(client, ["ping", "-c", "1", "-W", "2", "10.0.0.5"]).returncode == 0
        assert _both(lab, "client", "10.0.0.5", 80) == ("Connected", "Connected")
        page = nx.run_in(client, ["curl", "-sS", "-m", "5", "http://10.0.0.5/"])
        assert page.returncode == 0 and "hello from web" in page.stdout
        log = "".join(text for _service, _path, text in nb.logs(lab, "web"))
        assert "10.0.0.70 -> 10.0.0.5:80" in log  # the service saw the secondary address reached
        # the NIC's NSG allows 80 to the secondary address only: the primary is denied, as the engine says
        assert _both(lab, "client", "10.0.0.4", 80) == ("TimedOut", "TimedOut")
        # the VM's own flows leave from the primary address
        assert "src 10.0.0.4" in nx.run_in(web, ["ip", "route", "get", "10.0.0.70"]).stdout
        assert _both(lab, "web", "client", 8080) == ("Connected", "Connected")
        nx.run_in(web, ["curl", "-sS", "-m", "5", "http://10.0.0.70:8080/"])
        log = "".join(text for _service, _path, text in nb.logs(lab, "client"))
        assert "10.0.0.4 -> 10.0.0.70:8080" in log
        # a secondary configuration removed: the address is gone from the kernel and nothing answers
        doc = copy.deepcopy(LAB)
        doc["virtual_machines"][0]["ip_configurations"].pop()
        lab.up(Topology.model_validate(doc))
        assert "10.0.0.5" not in nx.run_in(web, ["ip", "-4", "-o", "addr", "show", "dev", "eth0"]).stdout
        assert _both(lab, "client", "10.0.0.5", None, "Icmp") == ("TimedOut", "TimedOut")
    finally:
        lab.down()
