"""nft tables: the fabrics' NSGs, forwarded-traffic checks, SNAT and TTL handling, and the
tables of the plan instances, the App Service outbound and internet namespaces.

A fabric's table ``ip vlfab``: ``ct state established,related accept`` first; each NSG
direction is a chain of its rules in priority order (allow = ``return``, deny = ``drop``),
reached through ``iifname``/``oifname`` verdict maps per port (NIC -> subnet outbound,
subnet -> NIC inbound); forwarded traffic from peerings is checked before anything else
(stateless); SNAT to the public address by ingress port when leaving to the internet, with the
NAT gateway's TCP idle timeout (a ``ct timeout`` object) on what leaves through one; DNAT of each
instance-level public IP to its NIC's address when it comes from the internet (the only new flows
the internet opens into a fabric). The internet namespace resets TCP to a NAT gateway's addresses.
"""

from __future__ import annotations

import ipaddress
import re
from ipaddress import IPv4Address, IPv4Network

from ...engine.network import integration_inbound_refused
from ...engine.security import FULL_PORTS, PRIVATE_RANGES
from ...model import VirtualNetwork
from .dns import AZURE_DNS
from .layout import Layout, PlanInstance, Port, port_name, short_hash
from .paas import nsg_applies
from .routing import NVA_MARK_BASE, nva_return
from .state import NftTable, ttl_decrement_body, ttl_preserve_body

PROTOCOLS = ("Tcp", "Udp", "Icmp")
# how a reset or an unreachable is sent for each protocol, when the engine says "refused"
REJECT = {"Tcp": "meta l4proto tcp reject with tcp reset", "Udp": "meta l4proto udp reject",
          "Icmp": "meta l4proto icmp reject"}


def cidrs(nets) -> list[str]:
    """(network, mask) pairs -> collapsed CIDR strings (nft interval sets refuse overlaps)."""
    objs = [IPv4Network((n, str(IPv4Address(m)))) for n, m in nets]
    return [str(x) for x in ipaddress.collapse_addresses(objs)]


def port_list(ranges) -> str:
    merged: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return ", ".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in merged)


def _space(vnet: VirtualNetwork) -> str:
    return ", ".join(cidrs([(str(n.network_address), str(n.netmask)) for n in vnet.networks]))


# -- NSGs --------------------------------------------------------------------------------------
def _addr_alts(s, field_: str) -> list[str]:
    """Alternatives (OR) for one side of a rule: each is an nft match (AND within)."""
    if s.any:
        return [""]
    alts = []
    if s.nets:
        alts.append(f"ip {field_} {{ {', '.join(cidrs(s.nets))} }}")
    if s.internet:  # the engine's Internet tag: public space outside the VNet's own (``local``)
        alts.append(f"ip {field_} != @private ip {field_} != @local")
    return alts


def compile_nsg(compiled) -> list[str]:
    """One NSG in one direction -> ordered nft rules (allow = return to the caller, deny = drop).
    Ports, source ports included, are matched as the rule says, for every packet."""
    lines = []
    for r in compiled.rules:
        verdict = "return" if r.rule.access == "Allow" else "drop"
        protos = {p.lower() for p in r.protocols}
        ports = []
        if r.source_ports != FULL_PORTS:
            ports.append(f"th sport {{ {port_list(r.source_ports)} }}")
        if r.destination_ports != FULL_PORTS:
            ports.append(f"th dport {{ {port_list(r.destination_ports)} }}")
        if ports:
            protos -= {"icmp"}  # no ports: a port-restricted rule never matches it
            if not protos:
                continue
        cond_l4 = " ".join([f"meta l4proto {{ {', '.join(sorted(protos))} }}"] + ports)
        for sa in _addr_alts(r.sources, "saddr"):
            for da in _addr_alts(r.destinations, "daddr"):
                cond = " ".join(x for x in (cond_l4, sa, da) if x)
                note = re.sub(r"[^A-Za-z0-9_. -]", "", r.rule.name)[:60]
                lines.append(f'    {cond} {verdict} comment "{note} {r.rule.priority}"')
    lines.append("    drop")
    return lines


class _Chains:
    """The NSG chains of one fabric (one per NSG x direction) and the per-port chains."""

    def __init__(self, lay: Layout, vnet: VirtualNetwork):
        self.lay, self.net, self.vnet = lay, lay.net, vnet
        self.chains: dict[str, list[str]] = {}
        self.nsg_chain: dict[tuple[str, str], str] = {}
        self.out_map: list[str] = []
        self.in_map: list[str] = []

    def nsg(self, name: str | None, direction: str) -> str | None:
        compiled = self.net.nsg(name, direction, self.vnet)
        if compiled is None:
            return None
        key = (compiled.nsg.name.lower(), direction)
        if key not in self.nsg_chain:
            cname = f"nsg_{short_hash(compiled.nsg.name, n=6)}_{'in' if direction == 'Inbound' else 'out'}"
            self.nsg_chain[key] = cname
            self.chains[cname] = compile_nsg(compiled)
        return self.nsg_chain[key]

    def port(self, p: Port) -> None:
        sub_nsg = self.net.subnet_view(p.subnet).subnet.network_security_group
        nic = p.nic
        outs = [c for c in (self.nsg(nic.network_security_group, "Outbound") if nic else None,
                            self.nsg(sub_nsg, "Outbound")) if c]
        if outs:
            self.chains["o_" + p.name] = [f"    jump {c}" for c in outs]
            self.out_map.append(f'"{p.name}" : jump o_{p.name}')
        if p.app is not None:
            # VNet integration is outbound only: what the engine refuses is answered so (a TCP
            # reset from the integration address), anything else dropped
            self.chains["i_" + p.name] = [f"    {REJECT[proto]}" for proto in PROTOCOLS
                                          if integration_inbound_refused(proto)] + ["    drop"]
            self.in_map.append(f'"{p.name}" : jump i_{p.name}')
        if nic is not None and not nsg_applies(self.lay, nic):
            return   # a private endpoint whose subnet's network policies leave NSGs out
        if nic is not None:
            # a NIC without IP forwarding only receives what is addressed to it (the engine's)
            mine = p.ip if not p.secondary else "{ " + ", ".join(p.ips) + " }"
            ins = [] if self.net.accepts_transit(nic) else [f"    ip daddr != {mine} drop"]
            ins += [f"    jump {c}" for c in (self.nsg(sub_nsg, "Inbound"), self.nsg(nic.network_security_group,
                                                                                      "Inbound")) if c]
            if ins:
                self.chains["i_" + p.name] = ins
                self.in_map.append(f'"{p.name}" : jump i_{p.name}')


def _forwarded_checks(lay: Layout, vnet: VirtualNetwork, fab: str) -> list[str]:
    """Forwarded traffic (the engine's ``accepts_forwarded``): what arrives from a peered VNet S
    but did not originate in S is dropped unless this VNet's peering to S allows forwarded
    traffic. "Originated in S" = its source is in S's address space; sources outside every
    VNet (internet hosts answering a flow that left through an NVA) are not checked, as the
    engine does not walk internet return paths. Stateless, before ``ct state established``:
    the engine checks replies too."""
    net = lay.net
    out = []
    for _rname, (remote, _) in sorted(net.peers[vnet.name.lower()].items()):
        if not net.accepts_forwarded(vnet.name, remote.name):
            out.append(f'    iifname "{port_name("p", remote.name)}" ip saddr != {{ {_space(remote)} }} '
                       "ip saddr @labnets drop")
    for link in sorted(lay.alinks.values(), key=lambda link: link.rdev):
        if link.rfab == fab and not net.accepts_forwarded(link.dst, link.src):
            src_vnet, _ = net.peers[link.dst][link.src]
            out.append(f'    iifname "{link.rdev}" ip saddr != {{ {_space(src_vnet)} }} ip saddr @labnets drop')
    return out


def fabric_table(lay: Layout, vnet: VirtualNetwork) -> None:
    net = lay.net
    fab = lay.fabric_of[vnet.name.lower()]
    ports = lay.fabric_ports(fab)
    apps = [p for p in ports if p.app is not None]
    private = ", ".join(str(n) for n in PRIVATE_RANGES)
    local = ", ".join(cidrs(net.vnet_tag(vnet).local_nets))
    lab_nets = cidrs([(str(n.network_address), str(n.netmask)) for v in lay.topo.virtual_networks for n in v.networks])
    body = [f"  set private {{ type ipv4_addr; flags interval; elements = {{ {private} }} }}",
            f"  set local {{ type ipv4_addr; flags interval; elements = {{ {local} }} }}",
            f"  set labnets {{ type ipv4_addr; flags interval; elements = {{ {', '.join(lab_nets)} }} }}"]
    ch = _Chains(lay, vnet)
    for p in ports:
        ch.port(p)
    for cname, lines in ch.chains.items():
        body.append(f"  chain {cname} {{\n" + "\n".join(lines) + "\n  }")
    # A flow routed through an NVA crosses this fabric's conntrack twice. A connection refused
    # with a reset is forgotten by conntrack at the reset's first pass, so the reset's second
    # pass (on its way back from the NVA) is "invalid": let resets through (they open nothing),
    # but not to the internet: a reset answering a public IP's DNAT that a UDR sent through an NVA
    # comes back un-NATed, as its SYN-ACK would (engine: ReturnPathDropped).
    fw = _forwarded_checks(lay, vnet, fab) + [
        "    ct state established,related accept",
        '    ct state invalid tcp flags & rst == rst oifname != "inet" accept',
        # from the internet only what a public IP's DNAT opened (engine: _to_instance_public_ip)
        "    ct state invalid drop", '    iifname "inet" ct status & dnat == 0 drop']
    if ch.out_map:
        fw.append(f"    iifname vmap {{ {', '.join(ch.out_map)} }}")
    if ch.in_map:
        fw.append(f"    oifname vmap {{ {', '.join(ch.in_map)} }}")
    fw.append("    accept")
    body.append("  chain fw {\n    type filter hook forward priority filter; policy drop;\n" + "\n".join(fw) + "\n  }")
    # delivered to the fabric itself: only DNS queries to Azure DNS (``dns``)
    body.append("  chain inp {\n    type filter hook input priority filter; policy drop;\n"
                f"    ip daddr {AZURE_DNS} meta l4proto {{ tcp, udp }} th dport 53 accept\n  }}")
    body += _egress_checks(lay, ports)
    body += _fabric_nat(lay, fab, ports)
    body += _inbound_dnat(lay, ports)
    # every interface of the fabric forwards without a visible hop (its bridges hold only the
    # gateway addresses and never receive); what is delivered to the fabric itself is dropped
    # by ``inp``. Web apps' traffic is the exception: the platform's hop decrements it once
    # each way (the note's ttl=63): no +1 for what comes from an app port, one more -1 for what
    # leaves on one (whatever route it took through the fabric, e.g. via an NVA)
    app_ports = [p.name for p in apps]
    body.append(ttl_preserve_body(except_iifnames=app_ports))
    if app_ports:
        body.append(ttl_decrement_body(app_ports))
    lay.nft.append(NftTable(ns=fab, family="ip", name="vlfab", text="\n".join(body)))


def _egress_checks(lay: Layout, ports: list[Port]) -> list[str]:
    """New flows to the internet that the engine's egress refuses: none from a port without a public
    address (a VM of a private subnet), no ICMP through a NAT gateway; a TCP flow through a NAT gateway
    gets its idle timeout (its conntrack entry's ``established`` timeout: the engine's SNAT step).
    Service endpoint traffic does not leave by the egress: it stays allowed (its routes' prefixes)."""
    lines: list[str] = []
    timeouts: dict[str, str] = {}
    for p in ports:
        key = ("web_apps", p.app.name.lower()) if p.app is not None else \
            ("network_interfaces", p.nic.name.lower()) if p.nic is not None and not p.nic.private_endpoint else None
        egress = lay.net.egress.get(key) if key else None
        if egress is None or (egress.address is not None and egress.method != "NatGateway"):
            continue
        se = sorted(set(lay.se_prefixes.get(p.subnet.lower(), [])))
        match = f'iifname "{p.name}" oifname "inet" ct state new' + (f' ip daddr != {{ {", ".join(se)} }}' if se else "")
        # https://learn.microsoft.com/azure/nat-gateway/nat-gateway-resource#protocols
        lines.append(f"    {match} drop" if egress.address is None else f"    {match} meta l4proto icmp drop")
        if egress.address is not None:
            name = nat_timeout_name(egress.resource)
            timeouts[name] = _nat_timeout(lay, egress.resource, name)
            lines.append(f'    {match} meta l4proto tcp ct timeout set "{name}"')
    if not lines:
        return []
    return [*timeouts.values(), "  chain egress {\n    type filter hook forward priority filter; policy accept;\n"
            + "\n".join(lines) + "\n  }"]


def nat_timeout_name(nat_gateway: str) -> str:
    """The fabric's ``ct timeout`` object of a NAT gateway."""
    return f"natgw_{short_hash(nat_gateway, n=8)}"


def _nat_timeout(lay: Layout, nat_gateway: str, name: str) -> str:
    """A TCP flow through a NAT gateway is forgotten after the gateway's idle timeout (4-120 minutes);
    the other TCP states keep the kernel's timers. A ``ct timeout`` is set on the flow's first packet,
    before conntrack confirms the entry (the forward hook).
    https://learn.microsoft.com/azure/nat-gateway/nat-gateway-resource#timers"""
    minutes = lay.topo.find("nat_gateways", nat_gateway).idle_timeout_in_minutes
    return (f"  ct timeout {name} {{\n    protocol tcp;\n    l3proto ip;\n"
            f"    policy = {{ established: {minutes * 60} }}\n  }}")


def _inbound_dnat(lay: Layout, ports: list[Port]) -> list[str]:
    """What the internet sends to an instance-level public IP goes to its NIC's address (the engine's
    DNAT step); the replies go back translated to the public IP by conntrack."""
    pairs = []
    for ip, holder in sorted(lay.net.public_ip_at.items()):
        private = holder.private_address()
        if private is not None and any(p.nic is holder.resource for p in ports):
            pairs.append(f"{IPv4Address(ip)} : {private}")
    if not pairs:
        return []
    return ["  chain pipdnat {\n    type nat hook prerouting priority dstnat; policy accept;\n"
            f'    iifname "inet" dnat to ip daddr map {{ {", ".join(pairs)} }}\n  }}']


def _site_prefixes(lay: Layout) -> list[str]:
    """Every local network gateway's prefixes (collapsed: an nft interval set refuses overlaps)."""
    nets = [n for lng in lay.topo.local_network_gateways for n in lng.networks]
    return [str(n) for n in ipaddress.collapse_addresses(nets)]


def _fabric_nat(lay: Layout, fab: str, ports: list[Port]) -> list[str]:
    """SNAT to the public address of the port a flow came in by, when it leaves to the internet.

    A flow an NVA (a NIC with IP forwarding) sends to the internet is SNATed to the NVA's public
    address (the engine's ``public_src``); its replies, de-NATed to the original source, go back
    through that NVA: the flow's conntrack mark names the NVA, a policy rule on the mark sends
    the replies to the NVA's table. Such a flow crosses this fabric twice (source -> NVA, NVA ->
    internet) with the same addresses; on the first pass conntrack already fixed "no NAT" for
    it. So what an NVA forwards to the internet gets its own conntrack entry: a conntrack
    zone for the original direction only (its de-NATed reply direction stays in the default
    zone, where the internet's replies find it). Not what it forwards to the VNets or to the
    on-premises sites (the local network gateways' prefixes): that flow is not NATed, and its
    reply may come back without crossing the NVA (a GatewaySubnet without a UDR back through it),
    so its passes must share one entry, which that reply brings to established."""
    net = lay.net
    body = []
    snat = [f'"{p.name}" : {net.public_ip("network_interfaces", p.nic.name)}' for p in ports
            if p.nic and not getattr(p.nic, "private_endpoint", None)]
    snat += [f'"{p.name}" : {p.public}' for p in ports if p.app is not None]
    nat = ["  chain post {", "    type nat hook postrouting priority srcnat; policy accept;"]
    nvas = [p for p in ports if p.nic is not None and net.accepts_transit(p.nic)]
    if nvas:
        sites = _site_prefixes(lay)
        not_sites = f" ip daddr != {{ {', '.join(sites)} }}" if sites else ""
        # what the NVA forwards (not its own flows, nor its replies: those of a flow the internet opened
        # by its public IP must meet their DNAT entry, in the default zone)
        zone = [f'    iifname "{p.name}" ip saddr != {{ {", ".join(p.ips)} }} ip daddr != @labnets{not_sites} '
                "ct original zone set 1" for p in nvas]
        body.append("  chain nvazone {\n    type filter hook prerouting priority raw; policy accept;\n"
                    + "\n".join(zone) + "\n  }")
        m = ", ".join(f'"{p.name}" : {hex(NVA_MARK_BASE + i)}' for i, p in enumerate(nvas))
        nat.append(f'    oifname "inet" ct mark set iifname map {{ {m} }}')
        body.append('  chain nvamark {\n    type filter hook prerouting priority mangle; policy accept;\n'
                    '    iifname "inet" meta mark set ct mark\n  }')
        nva_return(lay, fab, nvas)
    for sref, prefixes in sorted(lay.se_prefixes.items()):
        # service endpoint traffic keeps its private source (the engine's source seen)
        ifs = ", ".join(f'"{p.name}"' for p in ports if p.subnet.lower() == sref)
        if ifs:
            nat.append(f'    oifname "inet" iifname {{ {ifs} }} ip daddr {{ {", ".join(sorted(set(prefixes)))} }} accept')
    if snat:
        nat.append(f'    oifname "inet" snat to iifname map {{ {", ".join(snat)} }}')
    nat.append("  }")
    return body + nat


# -- plan instances, App Service outbound, internet -----------------------------------------------
def plan_instance_table(pin: PlanInstance) -> NftTable:
    """SNAT of each app to the integration address, one conntrack zone per app (two sandboxes
    may send identical flows), the app's mark on its flows for the replies' way back."""
    marks = [f'"{a.sdev}" : {k + 1}' for k, a in enumerate(pin.apps)]
    sdevs = ", ".join(f'"{a.sdev}"' for a in pin.apps)
    fdevs = ", ".join(f'"{a.fdev}"' for a in pin.apps)
    return NftTable(ns=pin.ns, family="ip", name="vlpin", text="\n".join([
        "  chain appzone {", "    type filter hook prerouting priority raw; policy accept;",
        f"    ct original zone set iifname map {{ {', '.join(marks)} }}", "  }",
        "  chain appmark {", "    type filter hook prerouting priority mangle; policy accept;",
        f"    ct direction original ct mark set iifname map {{ {', '.join(marks)} }}",
        "    ct direction reply meta mark set ct mark", "  }",
        "  chain post {", "    type nat hook postrouting priority srcnat; policy accept;",
        f"    oifname {{ {fdevs} }} snat to {pin.ip}", "  }",
        "  chain fw {", "    type filter hook forward priority filter; policy drop;",
        "    ct state established,related accept", f"    iifname {{ {sdevs} }} accept", "  }",
        "  chain inp {", "    type filter hook input priority filter; policy accept;",
        "    ct state established,related accept", f"    iifname {{ {fdevs} }} drop", "  }",
        ttl_preserve_body()]))


def outer_tables(lay: Layout) -> None:
    """The internet drops private destinations and answers a new flow to a NAT gateway's address as the
    engine does (a TCP reset, nothing else: NatGatewayInbound*); the App Service outbound namespace
    SNATs each app instance's eth0 traffic to the app's public address."""
    private = ", ".join(str(n) for n in PRIVATE_RANGES)
    lines = [f"  set private {{ type ipv4_addr; flags interval; elements = {{ {private} }} }}",
             "  chain fw {", "    type filter hook forward priority filter; policy accept;",
             "    ip daddr @private drop", "  }"]
    nat = sorted(ip for ip, h in lay.net.public_ip_at.items() if h.kind == "nat_gateways")
    if nat:
        # before routing: most of these addresses have no route in the internet (a blackhole drops first)
        addresses = ", ".join(str(IPv4Address(ip)) for ip in nat)
        lines += [f"  set natgw {{ type ipv4_addr; elements = {{ {addresses} }} }}",
                  "  chain natgw_in {", "    type filter hook prerouting priority filter; policy accept;",
                  f"    ip daddr @natgw ct state new {REJECT['Tcp']}",
                  "    ip daddr @natgw ct state new drop", "  }"]
    lay.nft.append(NftTable(ns=lay.inet, family="ip", name="vlinet", text="\n".join(lines)))
    lines = ["  chain post {", "    type nat hook postrouting priority srcnat; policy accept;"]
    if lay.aso_snat:
        m = ", ".join(f'"{d}" : {ip}' for d, ip in lay.aso_snat)
        lines.append(f'    oifname "inet" snat to iifname map {{ {m} }}')
    lines += ["  }", "  chain fw {", "    type filter hook forward priority filter; policy accept;",
              "    ct state established,related accept", '    iifname "inet" drop', "  }"]
    lay.nft.append(NftTable(ns=lay.aso, family="ip", name="vlaso", text="\n".join(lines)))
