"""Plan: the engine's compiled view of a lab -> the kernel state that realizes it (pure).

``plan(topology, lab_id)`` builds a :class:`DesiredState` from ``Network(topology)`` only:
effective routes (``SubnetView.routes``/``.route_for``), compiled NSG rules (``CompiledNsg``),
sandbox tables (``Network.sandbox``), integration and public outbound addresses. It never
decides an Azure question itself; it places the engine's answers into namespaces.

Units: :mod:`.layout` (namespaces, links, addresses, neighbours, where endpoints live),
:mod:`.routing` (the fabrics' tables and policy rules), :mod:`.nft` (NSGs, forwarded traffic,
SNAT, TTL), :mod:`.processes` (the services' specs); :mod:`.apply` and :mod:`.reconcile`
make the kernel match the result.

Layout (every namespace ``vl<lab id>-...``)::

  VM NIC ns  eth0 ip/len noprefixroute, default + subnet via .1 onlink (every neighbour is
             the gateway, as Azure's SDN answers every ARP with its own MAC)
      |  veth  (fabric side ``n<hash>``: a routed L3 port, not a bridge port)
  fabric ns (one per VNet)  bridge ``b<hash>`` per subnet holding the gateway .1/len;
      policy routing ``ip rule iif <port> lookup <table of the port's subnet>``;
      tables = the subnet's Active effective routes; nft table ``ip vlfab``:
      TTL-invisible forwarding, NSGs (forward hook, ``ct state established`` first, one
      chain per NSG x direction, ports chained NIC->subnet outbound and subnet->NIC
      inbound), forwarded-traffic checks on peering links, SNAT to the public address by
      ingress port when leaving to the internet
      |                   |                  |                         |
   peer links ``p..``   appliance links    ``inet`` link            app ports ``w<hash>``
   (other fabrics)      ``a..`` (to an     internet ns (hosts        = the sandbox's VNet
                        NVA in a peered    behind it, private        interface (VNet
                        VNet's fabric)     dst dropped)              integration)
  sandbox ns (one per web app instance): exactly the engine's sandbox interfaces, MTU and
  routes; when integrated, its VNet interface leads to the plan instance ns (one per plan
  x integration subnet x instance), which holds the instance's integration address for
  every app of the plan behind it, SNATs each app's traffic to it (a conntrack zone per
  app) and sends it to the fabric on the app's own port ``w<hash>``; replies return on the
  first app's port and reach the right sandbox by conntrack mark; eth0 is a veth to the
  worker ns (``se``), which SNATs to an internal address and forwards to the App Service
  outbound ns (SNAT to the app's public address) -> internet ns.

The platform hop of a web app (the one hop the note's ``ttl=63`` counts) is the fabric for
the VNet path: no +1 for what comes from an app port, one more -1 for what leaves on one.
New connections to an integration address get a TCP reset from the fabric (``i_<port>``);
the reset leaves by the integration subnet's routes (``ip rule from <addr> iif lo``).

NVAs: a route to an NVA of the same VNet goes ``via <nva> dev <its port>``; to an NVA of a
peered VNet over an appliance link (one veth per source VNet x NVA) whose far end is
policy-routed to the NVA's port. What an NVA forwards to the internet is SNATed to its
public address by the fabric of the NVA's VNet, in a conntrack zone of its own (the flow
crossed the fabric once already on its way to the NVA); the replies go back through the
NVA (conntrack mark -> ``fwmark`` rule -> the NVA's table).

Why routed NIC ports instead of bridge ports: traffic between two NICs of one subnet must
cross the NSGs. Bridged frames skip the inet forward hook unless br_netfilter is loaded,
which is host-global. With each NIC as its own L3 port the forward hook sees every flow
with ``iifname``/``oifname`` naming the NIC, which is what NIC-level NSGs, "NVA without IP
forwarding" and SNAT-by-NIC need. The subnet bridge keeps the gateway address.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ...model import Topology
from . import dns, nft, paas, routing, vpn
from .layout import Layout, Names
from .state import DesiredState

LAB_ID_LEN = 12   # hex digits: 48 bits, no collision between homes in practice; names stay < 64 chars

__all__ = ["LAB_ID_LEN", "Names", "lab_id_for", "plan", "plan_with_names"]


def lab_id_for(home) -> str:
    return hashlib.sha256(str(Path(home).resolve()).encode()).hexdigest()[:LAB_ID_LEN]


def plan_with_names(topology: Topology, lab_id: str, tls_dir: str | None = None,
                    services: bool = True) -> tuple[DesiredState, Names]:
    """The kernel state realizing ``topology`` (pure: no I/O), and where each endpoint lives.
    ``tls_dir``: where the PaaS processes find their certificates (the backend issues them);
    ``services=False`` leaves out the DNS and PaaS processes' tables (for where things live only)."""
    lay = Layout(topology, lab_id)
    lay.outer()
    nics: dict[str, list] = {}
    for nic in topology.network_interfaces:
        nics.setdefault(nic.subnet.split("/")[0].lower(), []).append(nic)
    for vnet in topology.virtual_networks:
        lay.fabric(vnet, nics.get(vnet.name.lower(), []))
        for nic in nics.get(vnet.name.lower(), []):
            if nic.private_endpoint and nic.private_ip_address:
                paas.private_endpoint(lay, lay.fabric_of[vnet.name.lower()], vnet, nic)
    lay.peerings()
    lay.apps()
    lay.plan_instance_links()
    routing.appliance_links(lay)
    lay.internet_hosts()
    vpn.build(lay)
    routing.internet_routes(lay)
    for sns, iface, gw in lay.integrated:
        dns.sandbox_dns_route(lay, sns, iface, gw)
    paas.public_addresses(lay)
    if services:
        names = dns.known_names(lay)
        dns.azure_dns(lay, names)
        dns.custom_dns(lay, names)
        dns.resolv_confs(lay)
        paas.processes(lay, tls_dir)
    for vnet in topology.virtual_networks:
        routing.fabric_routes(lay, vnet)
        nft.fabric_table(lay, vnet)
    paas.service_endpoint_returns(lay)
    paas.frontends(lay)
    for pin in lay.plan_instances.values():
        lay.nft.append(nft.plan_instance_table(pin))
    nft.outer_tables(lay)
    return lay.state(), lay.names


def plan(topology: Topology, lab_id: str, tls_dir: str | None = None) -> DesiredState:
    """The kernel state realizing ``topology`` (pure: no I/O)."""
    return plan_with_names(topology, lab_id, tls_dir)[0]
