"""Desired kernel state: what the netns backend must make true, and nothing Azure-specific.

The engine compiles Azure semantics (routes, NSGs, SNAT, web-app sandboxes) into a
``DesiredState``: plain, frozen, JSON-serializable descriptions of Linux objects.
``apply.apply()`` then makes the kernel match it, diffing against the previously applied
state so that only what changed is touched.

Objects and the identity used to diff them (``key()``)::

    Namespace(name)                      netns + its sysctls + its /etc/netns/NAME/resolv.conf
    Bridge(ns, name)                     a Linux bridge (e.g. one per subnet in a fabric)
    VethPair(ns_a, name_a)               a veth pair, each end created directly in its netns
    Address(ns, dev, cidr)
    Route(ns, table, dest)               unicast (via/dev) or blackhole, any table
    Rule(ns, priority)                   policy routing: ``ip rule add iif X [from P] [fwmark M] lookup T``
    Neighbour(ns, dev, ip)               permanent ARP entry
    NftTable(ns, family, name)           one whole nft table, loaded atomically
    Process(ns, name)                    a long-running service in a netns

Why permanent neighbours: the kernel's neighbour (ARP) table limit (``gc_thresh3``,
1024 by default) is *global* across all namespaces and can only be raised in the init
namespace. Deterministic MACs (``mac_for``) plus ``nud permanent`` entries on both ends
make ARP unnecessary and are not counted against that limit.

Why a resolv.conf per namespace: processes run under ``ip netns exec`` would otherwise
use the host's resolver (e.g. ``http.server`` reverse lookups) and try to send DNS out of
the lab. ``ip netns exec`` bind-mounts ``/etc/netns/NAME/*`` over ``/etc/*``.

Example::

    ds = DesiredState(
        namespaces=[Namespace(name="vl-a"), Namespace(name="vl-b")],
        veths=[VethPair(ns_a="vl-a", name_a="eth0", ns_b="vl-b", name_b="eth0",
                        mac_a=mac_for("a"), mac_b=mac_for("b"))],
        addresses=[Address(ns="vl-a", dev="eth0", cidr="10.9.0.1/24"),
                   Address(ns="vl-b", dev="eth0", cidr="10.9.0.2/24")],
    )
    ds2 = DesiredState.model_validate_json(ds.model_dump_json())   # round-trips
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NS_PREFIX = "vl"
IFNAMSIZ = 15
_IFNAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,15}$")
_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_NFT_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
NFT_FAMILIES = ("ip", "ip6", "inet", "arp", "bridge", "netdev")


def mac_for(name: str) -> str:
    """Deterministic, locally administered unicast MAC (02:xx:xx:xx:xx:xx) from a name."""
    h = hashlib.sha256(name.encode()).digest()
    return "02:" + ":".join(f"{b:02x}" for b in h[:5])


def check_ns_name(name: str) -> str:
    if not name.startswith(NS_PREFIX) or "/" in name or name in (".", "..") or len(name) > 64:
        raise ValueError(f"namespace name {name!r} must start with {NS_PREFIX!r} and be a plain name")
    return name


@lru_cache(maxsize=4096)  # a lab's thousands of routes name the same few prefixes
def _check_network(v: str) -> None:
    ipaddress.ip_network(v, strict=True)


def check_ifname(name: str) -> str:
    if not _IFNAME_RE.match(name):
        raise ValueError(f"interface name {name!r}: 1-{IFNAMSIZ} chars of [A-Za-z0-9_.-]")
    return name


class _Obj(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @field_validator("ns", "ns_a", "ns_b", check_fields=False)
    @classmethod
    def _ns(cls, v: str) -> str:
        return check_ns_name(v)


class Namespace(_Obj):
    """``ipv6_per_link``: IPv6 is kept off each of the namespace's links (``addrgenmode none``, set
    before the link comes up: no link-local address, nothing sent) instead of namespace-wide by
    ``disable_ipv6``. An emulated host's namespace then needs no ``/proc/sys`` write at all, and
    the first access to a namespace's ``/proc/sys`` walks every other namespace's entry there
    (quadratic in the lab's size). Such an end of a veth pair is never the one created up (it
    would get a link-local address when the other end came up)."""
    name: str
    sysctls: dict[str, str] = Field(default_factory=dict)
    ipv6_per_link: bool = False
    resolv_conf: str = "# vnetlab: no resolver in this namespace\nnameserver 127.0.0.1\noptions timeout:1 attempts:1\n"

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_ns_name(v)

    def key(self) -> tuple:
        return (self.name,)


class Bridge(_Obj):
    ns: str
    name: str
    addresses: list[str] = Field(default_factory=list)  # convenience; same as Address objects
    mtu: int | None = None
    mac: str | None = None
    alias: str | None = None

    @field_validator("name")
    @classmethod
    def _ifname(cls, v: str) -> str:
        return check_ifname(v)

    def key(self) -> tuple:
        return (self.ns, self.name)


class VethPair(_Obj):
    ns_a: str
    name_a: str
    ns_b: str
    name_b: str
    mac_a: str | None = None
    mac_b: str | None = None
    mtu: int = 1500
    master_a: str | None = None  # bridge in ns_a
    master_b: str | None = None  # bridge in ns_b
    alias: str | None = None  # set on both ends (ifalias has no 15-char limit)

    @field_validator("name_a", "name_b")
    @classmethod
    def _ifnames(cls, v: str) -> str:
        return check_ifname(v)

    @field_validator("mac_a", "mac_b")
    @classmethod
    def _mac(cls, v: str | None) -> str | None:
        if v is not None and not _MAC_RE.match(v):
            raise ValueError(f"bad MAC {v!r} (lowercase aa:bb:cc:dd:ee:ff)")
        return v

    def key(self) -> tuple:
        return (self.ns_a, self.name_a)

    def ends(self) -> list[tuple[str, str]]:
        return [(self.ns_a, self.name_a), (self.ns_b, self.name_b)]

    def recreate_key(self) -> tuple:
        """Fields that cannot be changed in place (a change means delete + create)."""
        return (self.ns_a, self.name_a, self.ns_b, self.name_b)


class Address(_Obj):
    ns: str
    dev: str
    cidr: str
    noprefixroute: bool = False  # no connected route: everything goes through the gateway

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, v: str) -> str:
        ipaddress.ip_interface(v)
        if "/" not in v:
            raise ValueError(f"address {v!r} needs a prefix length")
        return v

    def key(self) -> tuple:
        return (self.ns, self.dev, self.cidr)


class Route(_Obj):
    ns: str
    dest: str  # "a.b.c.d/len" or "default"
    via: str | None = None
    dev: str | None = None
    table: str | int | None = None  # None = main
    type: Literal["unicast", "blackhole", "unreachable", "prohibit"] = "unicast"
    metric: int | None = None
    src: str | None = None
    onlink: bool = False  # gateway is on the link even without a connected route

    @field_validator("dest")
    @classmethod
    def _dest(cls, v: str) -> str:
        if v != "default":
            _check_network(v)
        return v

    @model_validator(mode="after")
    def _check(self) -> "Route":
        if self.type == "unicast" and not (self.via or self.dev):
            raise ValueError(f"unicast route {self.dest} needs via or dev")
        return self

    def key(self) -> tuple:
        return (self.ns, str(self.table or "main"), self.dest, self.metric)


class Rule(_Obj):
    ns: str
    priority: int
    table: str | int
    iif: str | None = None
    from_: str | None = None
    to: str | None = None
    fwmark: int | None = None

    def key(self) -> tuple:
        return (self.ns, self.priority)


class Neighbour(_Obj):
    ns: str
    dev: str
    ip: str
    mac: str

    def key(self) -> tuple:
        return (self.ns, self.dev, self.ip)


class NftTable(_Obj):
    """One nft table. ``text`` is either the full ``table FAMILY NAME { ... }`` text or
    just its body (chains, sets, maps), which is then wrapped. Avoid keyword-like chain
    names (``fwd``, ``input``...): they are nft keywords and fail to parse."""

    ns: str
    family: str
    name: str
    text: str

    @field_validator("family")
    @classmethod
    def _fam(cls, v: str) -> str:
        if v not in NFT_FAMILIES:
            raise ValueError(f"nft family {v!r} not in {NFT_FAMILIES}")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NFT_NAME_RE.match(v):
            raise ValueError(f"nft table name {v!r}")
        return v

    def key(self) -> tuple:
        return (self.ns, self.family, self.name)

    def full_text(self) -> str:
        t = self.text.strip()
        if re.match(rf"^table\s+{self.family}\s+{self.name}\s*\{{", t):
            return t + "\n"
        return f"table {self.family} {self.name} {{\n{t}\n}}\n"

    def load_script(self) -> str:
        """Atomic replace: create-if-missing, delete, re-create, all in one transaction."""
        return (f"table {self.family} {self.name} {{}}\n"
                f"delete table {self.family} {self.name}\n" + self.full_text())


class Process(_Obj):
    """A long-running service. ``kind``: ``responder`` (the built-in service, started by the
    launcher) or ``command`` (anything else, run under ``ip netns exec``); ``tcp``/``udp``: the
    ports it serves; ``resource``: the VM, web app or host it belongs to."""

    ns: str
    name: str
    argv: list[str]
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    kind: Literal["responder", "command"] = "command"
    tcp: list[int] = Field(default_factory=list)
    udp: list[int] = Field(default_factory=list)
    resource: str | None = None

    @field_validator("name")
    @classmethod
    def _pname(cls, v: str) -> str:
        if not re.match(r"^[A-Za-z0-9_.\-]+$", v):
            raise ValueError(f"process name {v!r}")
        return v

    def key(self) -> tuple:
        return (self.ns, self.name)


class DesiredState(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    namespaces: list[Namespace] = Field(default_factory=list)
    bridges: list[Bridge] = Field(default_factory=list)
    veths: list[VethPair] = Field(default_factory=list)
    addresses: list[Address] = Field(default_factory=list)
    routes: list[Route] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)
    neighbours: list[Neighbour] = Field(default_factory=list)
    nft_tables: list[NftTable] = Field(default_factory=list)
    processes: list[Process] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> "DesiredState":
        names = {n.name for n in self.namespaces}
        for coll in ("namespaces", "bridges", "veths", "addresses", "routes", "rules",
                     "neighbours", "nft_tables", "processes"):
            seen: set = set()
            for o in getattr(self, coll):
                k = o.key()
                if k in seen:
                    raise ValueError(f"duplicate {coll} entry {k}")
                seen.add(k)
                for ns in _namespaces_of(o):
                    if ns not in names:
                        raise ValueError(f"{coll} entry {k} refers to undeclared namespace {ns!r}")
        links: set = set()
        for b in self.bridges:
            links.add((b.ns, b.name))
        for v in self.veths:
            for end in v.ends():
                if end in links:
                    raise ValueError(f"interface {end} declared twice")
                links.add(end)
        return self

    def all_addresses(self) -> list[Address]:
        """Explicit addresses plus those declared on bridges."""
        out = list(self.addresses)
        out += [Address(ns=b.ns, dev=b.name, cidr=c) for b in self.bridges for c in b.addresses]
        return out

    def objects_in(self, ns: str) -> dict[str, list]:
        return {coll: [o for o in getattr(self, coll) if ns in _namespaces_of(o)]
                for coll in ("bridges", "veths", "routes", "rules", "neighbours", "nft_tables", "processes")}


def _namespaces_of(o) -> list[str]:
    if isinstance(o, Namespace):
        return [o.name]
    if isinstance(o, VethPair):
        return [o.ns_a, o.ns_b]
    return [o.ns]


def ttl_preserve_body(iifnames: list[str] | None = None, daddrs: list[str] | None = None,
                      chain: str = "ttlpre", skip_local: bool = False,
                      except_iifnames: list[str] | None = None, except_daddrs: list[str] | None = None) -> str:
    """nft table body (family ip) that makes a forwarding namespace *not* decrement TTL for
    packets arriving on ``iifnames`` towards ``daddrs`` (``None``: any), except those arriving
    on ``except_iifnames`` or going to ``except_daddrs``: a prerouting hook adds 1, the kernel's
    forward path then subtracts it again. The hook runs just after destination NAT, so
    ``daddrs``/``except_daddrs`` see de-NATed reply destinations.

    nft 1.0.x cannot do ``ip ttl set ip ttl + 1`` nor ``ip ttl set ip ttl map {...}``, so this
    uses a verdict map on the TTL jumping to one tiny chain per value (O(1) per packet,
    ~12 ms to load). Use it for an L3 hop that must be invisible to ``ping``/``traceroute``.

    Packets delivered to the namespace itself get the +1 too, which nothing can observe (the
    packet is consumed there); ``skip_local`` excludes them with ``fib daddr type != local``,
    at the price of one more FIB lookup for every forwarded packet.
    """
    chains = "\n".join(f"  chain {chain}{t} {{ ip ttl set {t + 1}; }}" for t in range(1, 255))
    vmap = ", ".join(f"{t} : jump {chain}{t}" for t in range(1, 255))

    def names(xs: list[str]) -> str:
        return "{ " + ", ".join(f'"{i}"' for i in xs) + " }"

    match = []
    if iifnames:
        match.append("iifname " + names(iifnames))
    if except_iifnames:
        match.append("iifname != " + names(except_iifnames))
    if daddrs and "0.0.0.0/0" not in daddrs:
        match.append("ip daddr { " + ", ".join(daddrs) + " }")
    if except_daddrs:
        match.append("ip daddr != { " + ", ".join(except_daddrs) + " }")
    if skip_local:
        match.append("fib daddr type != local")
    cond = " ".join(match + [f"ip ttl vmap {{ {vmap} }}"])
    return (f"{chains}\n  chain {chain} {{\n"
            f"    type filter hook prerouting priority dstnat + 10; policy accept;\n"
            f"    {cond}\n"
            f"  }}")


def ttl_decrement_body(oifnames: list[str], chain: str = "ttldec") -> str:
    """nft table body (family ip): packets leaving on ``oifnames`` lose one more TTL (a
    postrouting hook, same verdict-map technique as ``ttl_preserve_body``). Together they make
    a namespace invisible except on some ports, which then count as exactly one hop whatever
    the route through the namespace was."""
    chains = "\n".join(f"  chain {chain}{t} {{ ip ttl set {t - 1}; }}" for t in range(2, 256))
    vmap = ", ".join(f"{t} : jump {chain}{t}" for t in range(2, 256))
    ifs = ", ".join(f'"{i}"' for i in oifnames)
    return (f"{chains}\n  chain {chain} {{\n"
            f"    type filter hook postrouting priority mangle; policy accept;\n"
            f"    oifname {{ {ifs} }} ip ttl vmap {{ {vmap} }}\n"
            f"  }}")
