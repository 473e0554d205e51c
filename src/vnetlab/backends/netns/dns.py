"""Names in the emulation: Azure DNS (168.63.129.16) in every VNet, custom DNS servers in the VMs
that are one, and each host's resolv.conf. Every answer is the engine's (``engine.dns``); this
module only places them.

- 168.63.129.16 is an address of each VNet's fabric (on ``lo``), so a query from any host of the
  VNet reaches it whatever the routes say (UDRs do not apply to it, as in Azure), and a DNS
  process there answers each name the lab knows with ``engine.dns.azure_dns_answer(view, VNET,
  name)``: the linked zones of that VNet, then the public chain. Names the lab does not know get
  NXDOMAIN. Its replies go back by the fabric's delivery table (``iif lo from 168.63.129.16``).
- The internet namespace holds 168.63.129.16 too, answering as Azure DNS outside any VNet (the
  public chain): what a web app without VNet integration asks through its ``eth0``.
- An integrated web app's queries to 168.63.129.16 go through its VNet interface (a policy rule in
  its sandbox: ``route -n`` still shows the engine's table), so they reach the integration VNet's
  resolver, as Azure resolves an integrated app's names with the VNet's DNS settings.
- A VM with ``dns_server:`` runs a DNS server on its own address (UDP/TCP 53) answering each
  name with ``engine.dns.custom_dns_answer``, except that what the engine says it forwards it
  really forwards from the VM, so the query reaches Azure DNS from the forwarder's VNet.
- The public resolvers the lab's DNS settings name (8.8.8.8...) are addresses of the internet
  namespace, answered as Azure DNS outside any VNet (the engine's public resolver).
- ``/etc/netns/NS/resolv.conf`` of each VM and web app sandbox lists
  ``engine.dns.dns_servers_for`` (Azure's precedence), so ``nslookup``, ``dig`` and ``getent``
  under ``vnetlab exec`` ask what ``vnetlab resolve`` asks.
"""

from __future__ import annotations

import json
from ipaddress import IPv4Address

from ...engine import dns as edns
from .layout import DELIVER_TABLE, Layout
from .processes import responder_argv
from .state import Address, Process, Rule

AZURE_DNS = "168.63.129.16"   # https://learn.microsoft.com/azure/virtual-network/what-is-ip-address-168-63-129-16
PRIO_DNS_REPLY = 50           # fabric: the resolver's replies, before the links' rules
SANDBOX_DNS_TABLE, PRIO_SANDBOX_DNS = 53, 100
MAX_NAMESERVERS = 3           # glibc reads at most three (MAXNS)
NXDOMAIN = {"outcome": "NXDOMAIN", "cnames": [], "addresses": []}
UNKNOWN_NAME = "name.unknown.invalid"   # a name nobody holds (RFC 2606): the table's default
UNKNOWN_LABEL = "name-unknown-to-the-lab"   # a host name no zone holds
# Azure-provided names; Azure's DHCP gives VMs a search suffix under it
# https://learn.microsoft.com/azure/virtual-network/virtual-networks-name-resolution-for-vms-and-role-instances
INTERNAL_SUFFIX = "internal.cloudapp.net"


def entry(answer) -> dict:
    """The engine's answer as an entry of a DNS process's table."""
    def get(key):
        return answer.get(key) if isinstance(answer, dict) else getattr(answer, key, None)
    return {"outcome": get("outcome") or "NXDOMAIN", "cnames": [str(c) for c in get("cnames") or []],
            "addresses": [str(a) for a in get("addresses") or []]}


def known_names(lay: Layout) -> list[str]:
    """Every name the lab can answer (the engine's list: zones' records, PaaS and web app names
    with their aliases, VMs' default names, custom DNS servers' records), plus each VM's name
    alone (a query for ``vm1`` the engine completes with ``internal.cloudapp.net``)."""
    names = set(edns.known_names(lay.net))
    names.update(n[: -len(INTERNAL_SUFFIX) - 1] for n in list(names) if n.endswith("." + INTERNAL_SUFFIX))
    return sorted(names)


def compact(table: dict[str, dict]) -> dict[str, dict]:
    """The table without the plain NXDOMAIN entries (the process's default), except for names that
    are an alias in some chain (the process would otherwise answer them with the rest of it)."""
    aliases = {c.lower() for e in table.values() for c in e.get("cnames", [])}
    return {n: e for n, e in table.items() if e != NXDOMAIN or n in aliases}


def dns_process(ns: str, resource: str, spec: dict) -> Process:
    return Process(ns=ns, name="dns", argv=responder_argv("--dns", json.dumps(spec, sort_keys=True)),
                   kind="responder", tcp=[53], udp=[53], resource=resource)


def azure_dns(lay: Layout, names: list[str]) -> None:
    """168.63.129.16 in every fabric (answering for its VNet) and in the internet namespace (with
    the public resolvers the lab's DNS settings name, e.g. 8.8.8.8: the public answers)."""
    made: dict[int, tuple[object, dict]] = {}

    def entries(answer) -> dict:  # the engine shares one answer between resolvers where it is the same
        if id(answer) not in made:
            made[id(answer)] = (answer, entry(answer))
        return made[id(answer)][1]

    for vnet in lay.topo.virtual_networks:
        fab = lay.fabric_of[vnet.name.lower()]
        lay.addresses.append(Address(ns=fab, dev="lo", cidr=f"{AZURE_DNS}/32"))
        lay.rules.append(Rule(ns=fab, priority=PRIO_DNS_REPLY, iif="lo", from_=f"{AZURE_DNS}/32",
                              table=DELIVER_TABLE))
        table = compact({n: entries(a) for n, a in edns.azure_dns_answers(lay.net, vnet.name, names).items()})
        lay.procs.append(dns_process(fab, f"dns-{vnet.name}", {"bind": AZURE_DNS, "names": table}))
    public = [AZURE_DNS] + public_resolvers(lay)
    for ip in public:
        lay.addresses.append(Address(ns=lay.inet, dev="lo", cidr=f"{ip}/32"))
    table = compact({n: entries(a) for n, a in edns.azure_dns_answers(lay.net, None, names).items()})
    lay.procs.append(dns_process(lay.inet, "dns-public", {"bind": public, "names": table}))


def public_resolvers(lay: Layout) -> list[str]:
    """The DNS servers outside the lab that its VMs and apps are told to ask (what the engine
    calls a public resolver: an address neither private nor in a VNet)."""
    out: set[str] = set()
    for server in {server for source in _sources(lay) for server in edns.dns_servers_for(lay.net, source)}:
        ip = IPv4Address(server)
        if str(ip) != AZURE_DNS and not ip.is_private and lay.topo.vnet_of_ip(ip) is None:
            out.add(str(ip))
    return sorted(out, key=lambda a: int(IPv4Address(a)))


def _sources(lay: Layout) -> list[str]:
    return [vm.name for vm in lay.topo.virtual_machines] + [app.name for app in lay.topo.web_apps]


def custom_dns(lay: Layout, names: list[str]) -> None:
    """A real DNS server in each VM that is one: the engine's answers for what it holds itself;
    what the engine says it forwards (conditional forwarders, forwarders) it really forwards, from
    the VM, so the query reaches the next server as the engine's did."""
    for vm in lay.topo.virtual_machines:
        config = getattr(vm, "dns_server", None)
        ns = lay.names.endpoints.get(vm.name.lower())
        if config is None or ns is None or not vm.running:  # a stopped VM's server runs no more
            continue
        table = {n: _custom_entry(lay, vm, n) for n in names}
        # names nobody listed: a conditional forwarder's zone goes to its servers, an own zone
        # answers as the engine does for a name it lacks, the rest goes to the forwarders
        zones = {z.name: _custom_entry(lay, vm, f"{UNKNOWN_LABEL}.{z.name}") for z in config.zones}
        zones.update({z: {"forward": list(servers)} for z, servers in config.conditional_forwarders.items()})
        default = _custom_entry(lay, vm, UNKNOWN_NAME)
        lay.procs.append(dns_process(ns, vm.name, {"bind": "0.0.0.0", "names": table, "zones": zones,
                                                   "default": default}))


def _custom_entry(lay: Layout, vm, name: str) -> dict:
    """The DNS VM's entry for ``name``: forward where the engine's answer says the VM forwarded it
    (to the servers its configuration names for that step), else the engine's answer."""
    answer = edns.custom_dns_answer(lay.net, vm.name, name)
    own = [s for s in answer.steps if s.server == vm.name]
    last = own[-1] if own else None
    if last is not None and last.kind == "ConditionalForwarder":
        return {"forward": list(vm.dns_server.conditional_forwarders[last.zone])}
    if last is not None and last.kind == "Forwarder":
        return {"forward": list(vm.dns_server.forwarders)}
    return entry(answer)


def resolv_conf(servers: list[str]) -> str:
    """The text names no host: the hosts with the same DNS servers share one file (``kernel.resolv_dir``)."""
    lines = ["# vnetlab: this host's DNS servers (Azure's precedence: app setting or dnsConfiguration,",
             "# NIC, VNet, else Azure DNS 168.63.129.16)"]
    lines += [f"nameserver {s}" for s in servers[:MAX_NAMESERVERS]]
    lines.append(f"search {INTERNAL_SUFFIX}")
    lines.append("options timeout:2 attempts:1")
    return "\n".join(lines) + "\n"


def resolv_confs(lay: Layout) -> None:
    """Each VM's and web app sandbox's resolv.conf: the engine's DNS servers for it."""
    sources = [(vm.name, vm.name.lower()) for vm in lay.topo.virtual_machines]
    for app in lay.topo.web_apps:
        plan = lay.topo.find("app_service_plans", app.plan)
        for inst in range(plan.instances if plan else 1):
            sources.append((app.name, f"{app.name.lower()}#{inst}"))
    for name, key in sources:
        ns = lay.names.endpoints.get(key)
        if ns is None or ns not in lay.ns:
            continue
        servers = [str(s) for s in edns.dns_servers_for(lay.net, name)]
        lay.ns[ns] = lay.ns[ns].model_copy(update={"resolv_conf": resolv_conf(servers)})


def sandbox_dns_route(lay: Layout, sns: str, vnet_iface: str, gateway: str) -> None:
    """An integrated app reaches 168.63.129.16 through its VNet interface (a policy rule: the
    sandbox's main table stays the engine's)."""
    lay.route(sns, "default", via=gateway, dev=vnet_iface, table=SANDBOX_DNS_TABLE)
    lay.rules.append(Rule(ns=sns, priority=PRIO_SANDBOX_DNS, to=f"{AZURE_DNS}/32", table=SANDBOX_DNS_TABLE))
