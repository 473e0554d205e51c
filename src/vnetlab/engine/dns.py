"""Name resolution: what ``nslookup NAME`` in a VM or a web app gets, and why.

The shared algorithm 0.1 of the reference (azure-paas-dns.md):

1. The source's DNS servers: the app's (app setting WEBSITE_DNS_SERVER with WEBSITE_DNS_ALT_SERVER,
   else siteConfig dnsConfiguration.dnsServers), else the NIC's, else the VNet's (an integrated app:
   its integration VNet's), else Azure DNS 168.63.129.16. An empty list counts as unset.
   https://learn.microsoft.com/azure/virtual-network/virtual-networks-name-resolution-for-vms-and-role-instances
   https://learn.microsoft.com/azure/app-service/overview-name-resolution
2. Azure DNS answers a query arriving from VNet S with the private DNS zones linked to S first (the
   most specific zone holding the name): a record, or an authoritative NXDOMAIN, unless the link's
   resolution policy is NxDomainRedirect (privatelink zones), which retries publicly. Then the VMs'
   default names (``<vm>.internal.cloudapp.net``, the VNet's own VMs only), then public recursion,
   where every alias of the public CNAME chain is checked again against S's linked zones.
   https://learn.microsoft.com/azure/dns/private-dns-privatednszone
   https://learn.microsoft.com/azure/dns/private-dns-fallback
   https://learn.microsoft.com/azure/key-vault/general/private-link-diagnostics
3. A custom DNS server (a VM with ``dns_server``) answers from its own zones, then its conditional
   forwarders, then its forwarders; forwarding to 168.63.129.16 asks Azure DNS *from the
   forwarder's VNet*, so the forwarder's VNet's links count. No forwarder: no answer. A server is
   asked over UDP 53, so the flow from the asker to it is traced: an NSG or a route that drops it
   is a timeout, named.
   https://learn.microsoft.com/azure/private-link/private-endpoint-dns-integration
4. The public chain of a PaaS name: ``name -> [CNAME name.privatelink.<suffix> when the resource has
   an Approved private endpoint for that sub-resource] -> CNAME <cluster> -> A <public address>``.
   https://learn.microsoft.com/azure/private-link/private-endpoint-dns

Choices where Azure does not say (also in the README): the cluster names are the lab's own
(``blob.<region>prdstr01a.store.core.windows.net``...), one per resource; a web app's public address
is the i-th address of the AppService tag's block; WEBSITE_DNS_SERVER wins over dnsConfiguration;
a zone group writes its record whatever the connection state; an address outside the lab (8.8.8.8)
is a public resolver that knows the public chain only.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from ..model import AzureError, Topology
from ..model.dns import AZURE_DNS, RecordSet
from ..model.errors import ResourceNotFound

MAX_CHAIN = 16          # CNAMEs followed in one answer
MAX_FORWARDS = 8        # servers one query may cross (forwarders of forwarders)
PUBLIC_DNS = "public DNS"

# the sub-resources whose names the lab serves, per kind: (group id, public suffix, privatelink zone)
# https://learn.microsoft.com/azure/private-link/private-endpoint-dns#azure-services-dns-zone-configuration
STORAGE_SERVICES = ("blob", "file", "queue", "table", "dfs", "web")
PRIVATELINK_ZONES = {
    **{s: f"privatelink.{s}.core.windows.net" for s in STORAGE_SERVICES},
    "sqlServer": "privatelink.database.windows.net",
    "vault": "privatelink.vaultcore.azure.net",
    "sites": "privatelink.azurewebsites.net",
}


# -- what resolution returns ----------------------------------------------------------------------
@dataclass(frozen=True)
class ResolutionStep:
    """One step of a resolution: ``kind`` says what happened, ``text`` says it in a sentence; the
    other fields name what took part (left out of ``to_dict`` when unset)."""
    kind: str            # Servers | Query | NoAnswer | LinkedZone | LinkedZoneNxDomain | NxDomainRedirect |
                         # InternalName | PublicRecord | PublicNxDomain | OwnZone | ConditionalForwarder | Forwarder
    text: str
    server: str | None = None
    name: str | None = None
    zone: str | None = None
    link: str | None = None
    vnet: str | None = None
    record: str | None = None      # "CNAME target" or "A 10.0.2.4"

    def to_dict(self) -> dict:
        return {k: v for k, v in vars(self).items() if v is not None}


@dataclass
class Answer:
    """What one DNS server answers: ``outcome`` NoError (``addresses``), NXDOMAIN, or Timeout (no
    answer); ``cnames``: the aliases followed, in order (each CNAME's target)."""
    outcome: str = "NoError"
    cnames: list[str] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)
    steps: list[ResolutionStep] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"outcome": self.outcome, "cnames": self.cnames, "addresses": self.addresses,
                "steps": [s.to_dict() for s in self.steps]}


@dataclass
class Resolution:
    """``nslookup NAME`` in ``source``: the servers it would ask (in order), the one that answered,
    the aliases, the addresses, the outcome, and each step of why."""
    source: str
    name: str
    servers: list[str]
    server: str | None
    outcome: str
    cnames: list[str] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)
    steps: list[ResolutionStep] = field(default_factory=list)

    @property
    def canonical_name(self) -> str:
        return self.cnames[-1] if self.cnames else self.name

    def to_dict(self) -> dict:
        return {"source": self.source, "name": self.name, "servers": self.servers, "server": self.server,
                "outcome": self.outcome, "cnames": self.cnames, "addresses": self.addresses,
                "canonical_name": self.canonical_name, "steps": [s.to_dict() for s in self.steps]}


def _normal(name: str) -> str:
    return name.strip().rstrip(".").lower()


# -- the lab's names, built once per compiled lab ---------------------------------------------------
@dataclass
class _Public:
    """A public record: a CNAME target or A addresses."""
    cname: str | None = None
    addresses: tuple[str, ...] = ()


class DnsIndex:
    """The records of a lab: each private zone's (stored, zone groups', auto-registered), the public
    DNS of its PaaS resources and web apps, the zones linked to each VNet."""

    def __init__(self, topo: Topology):
        self.topo = topo
        self.zones = {z.name: z for z in topo.private_dns_zones}
        self.records = {z.name: zone_records(topo, z) for z in topo.private_dns_zones}
        self.public = public_records(topo)
        self._linked: dict[str, list] = {}
        self.sources: dict[str, tuple[list[str], str, str | None]] = {}   # source -> servers, origin, VNet
        self.answers: dict[tuple[str, str], Answer] = {}   # (VNet, name) -> Azure DNS's answer
        self.vm_at: dict[tuple[str, str], object] = {}   # (vnet, vm name) -> VM, for internal names
        for vm in topo.virtual_machines:
            nic = topo.find("network_interfaces", vm.network_interface)
            if nic is not None and nic.private_ip_address:
                self.vm_at[(nic.subnet.split("/")[0].lower(), vm.name.lower())] = (vm, nic)

    def linked(self, vnet: str | None) -> list[tuple[object, object]]:
        """(zone, link) of the zones linked to ``vnet``, the most specific (longest) name first."""
        if vnet is None:
            return []
        key = vnet.lower()
        if key not in self._linked:
            out = [(z, z.link_to(vnet)) for z in self.zones.values() if z.link_to(vnet) is not None]
            self._linked[key] = sorted(out, key=lambda zl: -len(zl[0].name))
        return self._linked[key]


_INDEXES: "weakref.WeakKeyDictionary[object, DnsIndex]" = weakref.WeakKeyDictionary()


def index(view) -> DnsIndex:
    """The DNS index of a compiled lab (``LabView``), built on first use."""
    found = _INDEXES.get(view)
    if found is None:
        found = _INDEXES[view] = DnsIndex(view.topo)
    return found


def zone_records(topo: Topology, zone) -> list[RecordSet]:
    """The record sets of a zone as Azure holds them: the zone's own; the A records its private
    endpoints' zone groups write (``<target>`` -> the endpoint's address; the last endpoint wins a
    name, as Azure's zone groups overwrite each other); the A records its registration links write
    for the VMs of the linked VNets (``isAutoRegistered``), unless a record of that name exists; a
    deallocated VM's is removed until it starts again.
    https://learn.microsoft.com/azure/dns/private-dns-autoregistration"""
    records = {(r.name, r.type): r for r in zone.records}
    for pe in topo.private_endpoints:
        if zone.name not in pe.private_dns_zone_group:
            continue
        ip = topo.private_endpoint_ip(pe)
        target = topo.private_link_target(pe)
        if ip is None or target is None:
            continue
        for name in _zone_group_names(target[0], target[1].name, pe.group_id):
            records.pop((name, "CNAME"), None)
            records[(name, "A")] = RecordSet(name=name, type="A", values=[ip], ttl=10)
    for link in zone.virtual_network_links:
        if not link.registration_enabled:
            continue
        for vm in topo.virtual_machines:
            nic = topo.find("network_interfaces", vm.network_interface)
            if nic is None or not nic.private_ip_address or nic.subnet.split("/")[0].lower() != \
                    link.virtual_network.lower() or not vm.allocated:  # removed while deallocated
                continue
            name = vm.name.lower()
            if not any(key[0] == name for key in records):
                records[(name, "A")] = RecordSet(name=name, type="A", values=[nic.private_ip_address], ttl=10,
                                                 is_auto_registered=True)
    return list(records.values())


def _deallocated_note(view, zone, name: str) -> str:
    """Why a registration zone lacks a VM's record: the VM is deallocated (its record comes back when it
    starts)."""
    label = name[: -len(zone.name) - 1] if name.endswith("." + zone.name) else ""
    vm = view.topo.find("virtual_machines", label) if label and "." not in label else None
    nic = view.topo.find("network_interfaces", vm.network_interface) if vm is not None else None
    if nic is None or vm.allocated or not any(
            link.registration_enabled and link.virtual_network.lower() == nic.subnet.split("/")[0].lower()
            for link in zone.virtual_network_links):
        return ""
    return f" (VM {vm.name} is deallocated: its auto-registered record is removed until it starts)"


def _zone_group_names(kind: str, target: str, group_id: str) -> list[str]:
    """The record names a zone group writes for one endpoint: the target's name (and, for a web
    app, its Kudu name ``<app>.scm``). https://learn.microsoft.com/azure/app-service/networking/private-endpoint"""
    low = target.lower()
    if group_id.endswith("_secondary"):
        return [f"{low}-secondary"]
    return [low, f"{low}.scm"] if kind == "web_apps" else [low]


# -- the public side ------------------------------------------------------------------------------
def public_addresses(topo: Topology) -> dict[tuple[str, str], str]:
    """(kind, lower-case name) -> the public address of each PaaS resource and web app. Storage, SQL
    and Key Vault: the PaaS engine's (their service tag's block); a web app: the i-th address of the
    AppService tag's block (the lab's choice)."""
    from .paas import public_addresses as paas_addresses, tag_pool
    out = {key: str(ip) for key, ip in paas_addresses(topo).items()}
    pool = tag_pool("AppService")
    for ip, app in zip(pool, topo.web_apps, strict=False):
        out[("web_apps", app.name.lower())] = str(ip)
    return out


def public_names(topo: Topology, kind: str, resource) -> list[tuple[str, str, str, str]]:
    """(public FQDN, group id, privatelink name, cluster name) of each name of a resource."""
    low, region = resource.name.lower(), topo.location_of(resource)
    i = next((n for n, r in enumerate(getattr(topo, kind)) if r is resource), 0) + 1
    if kind == "storage_accounts":
        return [(f"{low}.{s}.core.windows.net", s, f"{low}.privatelink.{s}.core.windows.net",
                 f"{s}.{region}prdstr{i:02d}a.store.core.windows.net") for s in STORAGE_SERVICES]
    if kind == "sql_servers":
        return [(f"{low}.database.windows.net", "sqlServer", f"{low}.privatelink.database.windows.net",
                 f"{region}{i}-a.control.database.windows.net")]
    if kind == "key_vaults":
        return [(f"{low}.vault.azure.net", "vault", f"{low}.privatelink.vaultcore.azure.net",
                 f"data-prod-{region}{i:02d}.vaultcore.azure.net")]
    cluster = f"waws-prod-{region}-{i:03d}.sip.azurewebsites.windows.net"
    return [(f"{low}.azurewebsites.net", "sites", f"{low}.privatelink.azurewebsites.net", cluster),
            (f"{low}.scm.azurewebsites.net", "sites", f"{low}.scm.privatelink.azurewebsites.net", cluster)]


def public_records(topo: Topology) -> dict[str, _Public]:
    """The public DNS of the lab's PaaS resources and web apps (algorithm 0.1, step 5)."""
    addresses = public_addresses(topo)
    out: dict[str, _Public] = {}
    for kind in ("storage_accounts", "sql_servers", "key_vaults", "web_apps"):
        for resource in getattr(topo, kind):
            ip = addresses.get((kind, resource.name.lower()))
            approved = {pe.group_id.split("-")[0] if kind == "web_apps" else pe.group_id
                        for pe in topo.private_endpoints_to(kind, resource.name) if pe.approved}
            for fqdn, group, privatelink, cluster in public_names(topo, kind, resource):
                if group in approved:
                    out[fqdn] = _Public(cname=privatelink)
                    out[privatelink] = _Public(cname=cluster)
                else:
                    out[fqdn] = _Public(cname=cluster)
                if kind == "key_vaults":  # the vault's cluster has its regional alias (the docs' nslookup)
                    regional = cluster.replace(".vaultcore", "-region.vaultcore", 1)
                    out[cluster] = _Public(cname=regional)
                    cluster = regional
                if ip is not None:
                    out[cluster] = _Public(addresses=(ip,))
    return out


# -- Azure DNS (168.63.129.16) ----------------------------------------------------------------------
def azure_dns_answer(view, vnet_name: str | None, fqdn: str) -> Answer:
    """What 168.63.129.16 answers a query for ``fqdn`` arriving from VNet ``vnet_name`` (None: from
    outside any VNet, the public answer): linked zones first, then the VNet's VM names, then public
    recursion with each alias checked again against the linked zones. Computed once per lab, VNet
    and name: treat the answer as read-only."""
    return azure_dns_answers(view, vnet_name, [fqdn])[fqdn]


def azure_dns_answers(view, vnet_name: str | None, names) -> dict[str, Answer]:
    """``azure_dns_answer`` for each of ``names`` asked from one VNet (a DNS server's whole table)."""
    idx = index(view)
    vnet = view.topo.vnet(vnet_name) if vnet_name else None
    asker = vnet.name.lower() if vnet is not None else (vnet_name or "").lower()
    same_as_public = vnet is not None and not idx.linked(vnet.name)
    out = {}
    for fqdn in names:
        key = (asker, _normal(fqdn))
        found = idx.answers.get(key)
        if found is None:
            found = idx.answers[key] = (same_as_public and _public_if_same(view, idx, vnet, key[1])) \
                or _azure_dns_answer(view, vnet, key[1])
        out[fqdn] = found
    return out


def _public_if_same(view, idx: DnsIndex, vnet, name: str) -> Answer | None:
    """The public answer (computed once, whatever VNet asks) when it is also the VNet's (no zone
    is linked to it: the caller checks): no name of the public answer's chain is one of the VNet's
    VM names (the only other step where a VNet's answer differs). None otherwise."""
    public = idx.answers.get(("", name))
    if public is None:
        public = idx.answers[("", name)] = _azure_dns_answer(view, None, name)
    if any(_internal_vm(idx, vnet.name, n) is not None for n in (name, *public.cnames)):
        return None
    return public


def _azure_dns_answer(view, vnet, name: str) -> Answer:
    """The answer for the normalised ``name`` from ``vnet`` (a VNet, or None: from outside any)."""
    idx, answer = index(view), Answer()
    vnet_name = vnet.name if vnet is not None else None
    for _ in range(MAX_CHAIN):
        redirected = False
        found = _in_linked_zone(idx, vnet_name, name)
        if found is not None:
            zone, link, records = found
            done = _from_zone(answer, name, zone.name, records, f"private DNS zone {zone.name}",
                              dict(zone=zone.name, link=link.name, vnet=vnet_name),
                              f" (linked to VNet {vnet_name} by link {link.name})")
            if done is True:
                return answer
            if done is not None:  # a CNAME: follow it
                name = done
                continue
            if link.resolution_policy == "NxDomainRedirect" and zone.name.startswith("privatelink."):
                answer.steps.append(ResolutionStep(
                    "NxDomainRedirect", f"{name} is not in zone {zone.name}, whose link {link.name} has resolution "
                    "policy NxDomainRedirect: Azure DNS retries it publicly", name=name, zone=zone.name,
                    link=link.name, vnet=vnet_name))
                redirected = True
            else:
                answer.steps.append(ResolutionStep(
                    "LinkedZoneNxDomain", f"{name} is in private DNS zone {zone.name} (linked to VNet {vnet_name} "
                    f"by link {link.name}), which has no record for it{_deallocated_note(view, zone, name)}: Azure "
                    "DNS answers NXDOMAIN authoritatively", name=name, zone=zone.name, link=link.name, vnet=vnet_name))
                answer.outcome = "NXDOMAIN"
                return answer
        if not redirected and vnet_name is not None and _internal_name(idx, answer, vnet_name, name):
            return answer
        target = idx.public.get(name)
        if target is None:
            answer.steps.append(ResolutionStep("PublicNxDomain", f"{name} does not exist in public DNS: NXDOMAIN",
                                               name=name))
            answer.outcome = "NXDOMAIN"
            return answer
        if target.cname is None:
            answer.addresses = list(target.addresses)
            answer.steps.append(ResolutionStep("PublicRecord", f"public DNS: {name} has address "
                                               f"{', '.join(target.addresses)}", name=name,
                                               record="A " + " ".join(target.addresses)))
            return answer
        answer.steps.append(ResolutionStep("PublicRecord", f"public DNS: {name} is an alias for {target.cname}",
                                           name=name, record=f"CNAME {target.cname}"))
        answer.cnames.append(target.cname)
        name = target.cname
    answer.outcome = "NXDOMAIN"  # a CNAME loop: SERVFAIL in a real resolver; the lab says no answer
    return answer


def _in_linked_zone(idx: DnsIndex, vnet: str | None, name: str):
    """(zone, link, records) of the most specific zone linked to ``vnet`` that holds ``name``."""
    for zone, link in idx.linked(vnet):
        if name == zone.name or name.endswith("." + zone.name):
            return zone, link, idx.records[zone.name]
    return None


def _from_zone(answer: Answer, name: str, zone: str, records, where: str, fields: dict, how: str = ""):
    """Answer ``name`` from a zone's records: True (addresses), the CNAME target to follow, or
    None (no record of that name)."""
    relative = "@" if name == zone else name[: -len(zone) - 1]
    for record in records:
        if record.name != relative:
            continue
        if record.type == "A":
            answer.addresses = list(record.values)
            auto = " (auto-registered)" if record.is_auto_registered else ""
            answer.steps.append(ResolutionStep(
                "LinkedZone" if "link" in fields else "OwnZone",
                f"{where}{how} has {name} -> {', '.join(record.values)}{auto}", name=name,
                record="A " + " ".join(record.values), **fields))
            return True
        answer.steps.append(ResolutionStep(
            "LinkedZone" if "link" in fields else "OwnZone", f"{where}{how} has {name} as an alias for "
            f"{record.values[0]}", name=name, record=f"CNAME {record.values[0]}", **fields))
        answer.cnames.append(record.values[0])
        return record.values[0]
    return None


def _internal_vm(idx: DnsIndex, vnet: str, name: str):
    """(VM, NIC) whose Azure-provided name ``name`` is, if it is one of VNet ``vnet``'s."""
    host = name[: -len(".internal.cloudapp.net")] if name.endswith(".internal.cloudapp.net") else name
    if "." in host:
        return None
    return idx.vm_at.get((vnet.lower(), host))


def _internal_name(idx: DnsIndex, answer: Answer, vnet: str, name: str) -> bool:
    """``<vm>.internal.cloudapp.net`` (or ``<vm>`` alone, which the resolver completes with that
    suffix) of a VM in the same VNet: Azure-provided name resolution works within one VNet.
    https://learn.microsoft.com/azure/virtual-network/virtual-networks-name-resolution-for-vms-and-role-instances#azure-provided-name-resolution"""
    found = _internal_vm(idx, vnet, name)
    if found is None:
        return False
    vm, nic = found
    answer.addresses = [nic.private_ip_address]
    answer.steps.append(ResolutionStep("InternalName", f"{vm.name} is a VM of VNet {vnet}: Azure-provided name "
                                       f"{vm.name.lower()}.internal.cloudapp.net -> {nic.private_ip_address}",
                                       name=name, vnet=vnet, record=f"A {nic.private_ip_address}"))
    return True


# -- custom DNS servers -------------------------------------------------------------------------------
def custom_dns_answer(view, vm_name: str, fqdn: str, _depth: int = 0) -> Answer:
    """What the DNS server running on VM ``vm_name`` answers for ``fqdn``: its own zones, then its
    conditional forwarders, then its forwarders (each asked from the VM: Azure DNS answers for the
    VM's VNet); no forwarder, or none answering: no answer."""
    vm = view.topo.find("virtual_machines", vm_name)
    if vm is None or vm.dns_server is None:
        raise ResourceNotFound(f"No VM named '{vm_name}' runs a DNS server in the lab.")
    config, name, answer = vm.dns_server, _normal(fqdn), Answer()
    for _ in range(MAX_CHAIN):
        zone = next((z for z in sorted(config.zones, key=lambda z: -len(z.name))
                     if name == z.name or name.endswith("." + z.name)), None)
        if zone is None:
            break
        done = _from_zone(answer, name, zone.name, zone.records, f"DNS server {vm.name}'s own zone {zone.name}",
                          dict(zone=zone.name, server=vm.name))
        if done is True:
            return answer
        if done is None:
            answer.steps.append(ResolutionStep("OwnZone", f"{name} is in DNS server {vm.name}'s own zone "
                                               f"{zone.name}, which has no record for it: NXDOMAIN", name=name,
                                               zone=zone.name, server=vm.name))
            answer.outcome = "NXDOMAIN"
            return answer
        name = done
    conditional = next((z for z in sorted(config.conditional_forwarders, key=len, reverse=True)
                        if name == z or name.endswith("." + z)), None)
    if conditional is not None:
        servers = config.conditional_forwarders[conditional]
        answer.steps.append(ResolutionStep("ConditionalForwarder", f"DNS server {vm.name} forwards {conditional} to "
                                           f"{', '.join(servers)} (conditional forwarder)", name=name,
                                           zone=conditional, server=vm.name))
    else:
        servers = config.forwarders
        if not servers:
            answer.steps.append(ResolutionStep("NoAnswer", f"DNS server {vm.name} holds no zone for {name} and has "
                                               "no forwarder: it does not answer (the client times out)", name=name,
                                               server=vm.name))
            answer.outcome = "Timeout"
            return answer
        answer.steps.append(ResolutionStep("Forwarder", f"DNS server {vm.name} forwards {name} to "
                                           f"{', '.join(servers)}", name=name, server=vm.name))
    return _merge(answer, _ask_in_order(view, vm.name, servers, name, _depth + 1))


def _merge(first: Answer, then: Answer) -> Answer:
    return Answer(then.outcome, first.cnames + then.cnames, then.addresses, first.steps + then.steps)


def _ask_in_order(view, asker: str, servers: list[str], name: str, depth: int) -> Answer:
    """Ask each server in turn, from ``asker``, until one answers (a NXDOMAIN is an answer)."""
    steps: list[ResolutionStep] = []
    for server in servers:
        answer = ask(view, asker, server, name, depth)
        steps += answer.steps
        if answer.outcome != "Timeout":
            return Answer(answer.outcome, answer.cnames, answer.addresses, steps)
    return Answer("Timeout", [], [], steps)


def ask(view, asker: str, server: str, name: str, depth: int = 0) -> Answer:
    """The answer ``asker`` (a VM or web app) gets from DNS server ``server`` for ``name``."""
    if depth > MAX_FORWARDS:
        return Answer("Timeout", steps=[ResolutionStep("NoAnswer", f"the query went through more than "
                                                       f"{MAX_FORWARDS} servers: no answer", server=server, name=name)])
    if server == AZURE_DNS:
        vnet = _source(view, asker)[2]
        where = f"from VNet {vnet}: the zones linked to {vnet} count" if vnet else \
            "from outside any VNet: public answers only"
        answer = azure_dns_answer(view, vnet, name)
        query = ResolutionStep("Query", f"{asker} asks Azure DNS {AZURE_DNS} {where}", server=AZURE_DNS, vnet=vnet,
                               name=name)
        return Answer(answer.outcome, list(answer.cnames), list(answer.addresses), [query, *answer.steps])
    dns_vm = _dns_vm_at(view, server)
    if dns_vm is not None:
        blocked = _unreachable(view, asker, server)
        if blocked is not None:
            return Answer("Timeout", steps=[blocked])
        query = ResolutionStep("Query", f"{asker} asks DNS server {dns_vm.name} ({server}) over UDP 53",
                               server=server, name=name)
        answer = custom_dns_answer(view, dns_vm.name, name, depth)
        return Answer(answer.outcome, answer.cnames, answer.addresses, [query, *answer.steps])
    if _is_lab_address(view, server):
        blocked = _unreachable(view, asker, server)
        text = blocked.text if blocked is not None else f"nothing at {server} answers DNS (no VM there runs a " \
            "DNS server)"
        return Answer("Timeout", steps=[ResolutionStep("NoAnswer", f"{asker} asks {server}: {text}: no answer",
                                                       server=server, name=name)])
    answer = azure_dns_answer(view, None, name)
    query = ResolutionStep("Query", f"{asker} asks {server}, a public resolver outside the lab: it knows the public "
                           "DNS only, no private zone", server=server, name=name)
    return Answer(answer.outcome, list(answer.cnames), list(answer.addresses), [query, *answer.steps])


def _dns_vm_at(view, ip: str):
    """The VM running a DNS server at address ``ip``."""
    for vm in view.topo.virtual_machines:
        if vm.dns_server is None:
            continue
        nic = view.topo.find("network_interfaces", vm.network_interface)
        if nic is not None and ip in nic.addresses:
            return vm
    return None


def _is_lab_address(view, ip: str) -> bool:
    """A private address, or one inside a VNet of the lab: not a public resolver."""
    address = IPv4Address(ip)
    return address.is_private or view.topo.vnet_of_ip(address) is not None


def _unreachable(view, asker: str, server: str) -> ResolutionStep | None:
    """None when the query gets to ``server`` on UDP 53 and back (the engine's trace); else the step
    that says why not."""
    from .trace import Verdict, trace
    try:
        t = trace(view, asker, server, 53, "Udp")
    except AzureError as err:
        return ResolutionStep("NoAnswer", f"{asker} cannot ask {server}: {err.message}", server=server)
    if t.verdict == Verdict.CONNECTED:
        return None
    return ResolutionStep("NoAnswer", f"{asker} asks {server} over UDP 53 and gets no answer: {t.reason} "
                          f"({t.reason.explanation})", server=server)


# -- the client --------------------------------------------------------------------------------------
def dns_vnet_of(view, source: str) -> str | None:
    """The VNet from which ``source``'s queries reach Azure DNS: a VM's NIC's, an integrated app's
    integration VNet; None for an app without integration."""
    topo = view.topo
    vm = topo.find("virtual_machines", source)
    if vm is not None:
        nic = topo.find("network_interfaces", vm.network_interface)
        return topo.vnet(nic.subnet.split("/")[0]).name if nic is not None else None
    app = topo.find("web_apps", source)
    if app is not None and app.vnet_integration:
        return topo.vnet(app.vnet_integration.split("/")[0]).name
    return None


def dns_servers_with_origin(view, source: str) -> tuple[list[str], str]:
    """(the DNS servers of ``source``, in order; the setting they come from)."""
    topo = view.topo
    app = topo.find("web_apps", source)
    vm = topo.find("virtual_machines", source) if app is None else None
    if app is None and vm is None:
        raise ResourceNotFound(f"No VM or web app named '{source}' in the lab: names are resolved from a VM or a web "
                               "app.")
    if app is not None:
        setting = _app_setting(app, "WEBSITE_DNS_SERVER")
        if setting:
            servers = [s for s in setting.split(",") if s.strip()] + _split(_app_setting(app, "WEBSITE_DNS_ALT_SERVER"))
            return [s.strip() for s in servers], f"app setting WEBSITE_DNS_SERVER of web app {app.name}"
        if app.dns_servers:
            return list(app.dns_servers), f"dnsConfiguration.dnsServers of web app {app.name}"
        if not app.vnet_integration:
            return [AZURE_DNS], f"web app {app.name} is not integrated with a VNet: Azure DNS"
        vnet = topo.vnet(app.vnet_integration.split("/")[0])
        if vnet is not None and vnet.dns_servers:
            return list(vnet.dns_servers), f"DNS servers of VNet {vnet.name} (integration)"
        return [AZURE_DNS], f"VNet {vnet.name if vnet else '?'} has no custom DNS: Azure DNS"
    nic = topo.find("network_interfaces", vm.network_interface)
    if nic is not None and nic.dns_servers:
        return list(nic.dns_servers), f"DNS servers of network interface {nic.name}"
    vnet = topo.vnet(nic.subnet.split("/")[0]) if nic is not None else None
    if vnet is not None and vnet.dns_servers:
        return list(vnet.dns_servers), f"DNS servers of VNet {vnet.name}"
    return [AZURE_DNS], f"VNet {vnet.name if vnet else '?'} has no custom DNS: Azure DNS"


def _app_setting(app, key: str) -> str:
    return next((v for k, v in app.app_settings.items() if k.upper() == key), "").strip()


def _split(value: str) -> list[str]:
    return [s.strip() for s in value.split(",") if s.strip()]


def dns_servers_for(view, source: str) -> list[str]:
    """The DNS servers ``source`` (a VM or web app) asks, in Azure's precedence."""
    return dns_servers_with_origin(view, source)[0]


def _source(view, source: str) -> tuple[list[str], str, str | None]:
    """(servers, the setting they come from, the VNet its queries to Azure DNS come from), once per lab."""
    sources = index(view).sources
    key = source.lower()
    if key not in sources:
        sources[key] = (*dns_servers_with_origin(view, source), dns_vnet_of(view, source))
    return sources[key]


def resolve(view, source: str, fqdn: str) -> Resolution:
    """``nslookup fqdn`` in ``source``: the first server that answers decides (NXDOMAIN included);
    a server that does not answer is skipped."""
    app = view.topo.find("web_apps", source)
    if app is not None and not app.running:
        raise AzureError(f"The web app '{source}' is stopped: it runs no code, so it resolves no name. Start it "
                         "first (az webapp start).", "WebAppStopped", 409)
    servers, origin, _ = _source(view, source)
    name = _normal(fqdn)
    steps = [ResolutionStep("Servers", f"{source} asks {', '.join(servers)} ({origin})")]
    for server in servers:
        answer = ask(view, source, server, name)
        steps += answer.steps
        if answer.outcome != "Timeout":
            return Resolution(source, name, servers, server, answer.outcome, answer.cnames, answer.addresses, steps)
    return Resolution(source, name, servers, None, "Timeout", [], [], steps)


def known_names(view) -> list[str]:
    """Every name the lab answers somewhere: the private zones' records (zone groups' and
    auto-registered included), the public names of PaaS resources and web apps with their aliases,
    the VMs' default names, the custom DNS servers' own records."""
    idx = index(view)
    names = set(idx.public)
    for zone, records in idx.records.items():
        names.update(r.fqdn(zone) for r in records)
    names.update(f"{vm}.internal.cloudapp.net" for _vnet, vm in idx.vm_at)
    for vm in view.topo.virtual_machines:
        if vm.dns_server is not None:
            for zone in vm.dns_server.zones:
                names.update(r.fqdn(zone.name) for r in zone.records)
    return sorted(names)


def fqdn_of(topo: Topology, kind: str, name: str, group_id: str | None = None) -> str:
    """The public FQDN of a PaaS resource or web app (its ``group_id``'s for a storage account)."""
    resource = topo.find(kind, name)
    names = public_names(topo, kind, resource)
    return next((n for n, g, _, _ in names if group_id in (None, g)), names[0][0])


def resolve_public(view, source: str, fqdn: str) -> Resolution:
    """What a client on the internet gets for ``fqdn``: the public DNS only (no private zone is ever
    resolvable from the internet). https://learn.microsoft.com/azure/dns/private-dns-privatednszone"""
    name = _normal(fqdn)
    answer = azure_dns_answer(view, None, name)
    steps = [ResolutionStep("Servers", f"{source} is on the internet: it asks {PUBLIC_DNS}, which knows no private "
                            "zone", server=PUBLIC_DNS, name=name), *answer.steps]
    return Resolution(source, name, [PUBLIC_DNS], PUBLIC_DNS, answer.outcome, list(answer.cnames),
                      list(answer.addresses), steps)
