"""PaaS in the emulation: private endpoints' namespaces and one real process per storage account,
SQL server, key vault and web app front end, answering each connection as the engine admits it
(``engine.paas``, ``engine.inbound``).

- A private endpoint's NIC is a namespace ``vl<lab>-pe-<name>`` holding the endpoint's address on
  ``eth0``, a routed port of its VNet's fabric like a VM's NIC (the PE subnet's NSG applies when
  the engine says the subnet's network policies make it apply).
- Each PaaS resource's public address is an address of the internet namespace (on ``lo``).
- One process per resource listens on its public address and on each of its endpoints' private
  addresses (a socket per namespace, ``services.paas_main``): HTTPS on 443 (and for storage
  HTTP on 80 and SMB on 445, Azure Files) with a certificate of the lab's CA for its FQDNs, or TDS on 1433 for SQL. Its table:
  for every address it listens on, for every source the lab has (VMs, web app instances,
  internet hosts), the engine's trace of that flow says what source address the service sees,
  and the engine's admission for it what the service answers; a default for any other source.
- A web app's front end answers HTTPS on 443 and HTTP on 80 on its public address and its private
  endpoints' addresses: ``200`` when the engine admits, else ``403 Ip Forbidden`` with the
  ``x-ms-forbidden-ip`` header (``403 Site Disabled``, "This web app is stopped.", for a stopped
  app); its table has the main site's decisions and the scm site's (the ``Host`` header names the
  site), each the engine's cases by request header (``engine.paas.admission_cases``): the front end
  answers a request with the first case whose headers (``x-forwarded-for``, ``x-azure-fdid``...) the
  real request carries, by the engine's own ``restriction_headers.first_match``.
- Service endpoint traffic arrives at the internet namespace with its private source (the
  engine's ``VirtualNetworkServiceEndpoint`` routes, not SNATed by the fabric); the services'
  replies go back to the fabric of the subnet it came from (a route per such subnet).
"""

from __future__ import annotations

import json
from ipaddress import IPv4Address

from ...engine import dns as edns
from ...engine import paas as epaas
from ...engine.trace import trace
from ...model import AzureError
from .layout import LINK_GW, Layout, Port, port_name
from .processes import responder_argv
from .state import Address, NftTable, Neighbour, Process

# (port, protocol): what each port of a service speaks (the engine's ``Service.ports``)
PORTS = {"storage_accounts": [(443, "https"), (80, "http"), (445, "smb")], "key_vaults": [(443, "https")],
         "sql_servers": [(1433, "tds")], "web_apps": [(443, "https"), (80, "http")]}
SPEC_KIND = {"storage_accounts": "storage", "key_vaults": "keyvault", "sql_servers": "sql", "web_apps": "webapp"}
PROCESS_PREFIX = {"web_apps": "front"}   # a web app's front end; the others: paas-<name>
UNKNOWN_SOURCE = "192.0.2.254"   # TEST-NET-1: a source no rule of the lab names (the table's default)
RID, WHEN = "@RID@", "@TIME@"    # filled in by the process for each answer


def fqdns(lay: Layout, kind: str, res) -> list[str]:
    """The names a resource's certificate holds: its public FQDNs (the engine's), and for a storage
    account its private link names too, as Storage's certificate holds ``*.privatelink.blob.core.windows.net``
    (so a client that connects by the private link name gets through TLS: the account answers it)."""
    names = edns.public_names(lay.topo, kind, res)
    return sorted({fqdn for fqdn, *_ in names}
                  | ({privatelink for _, _, privatelink, _ in names} if kind == "storage_accounts" else set()))


def private_endpoint(lay: Layout, fab: str, vnet, nic) -> None:
    """The namespace of a private endpoint's NIC: its address, a routed port of the fabric."""
    view = lay.net.subnet_view(nic.subnet)
    sn = view.subnet
    ns = lay.add_ns(lay.nsname("pe", nic.private_endpoint))
    lay.names.endpoints[f"pe:{nic.private_endpoint.lower()}"] = ns
    port = port_name("n", nic.name)
    pe_m, f_m = lay.veth(ns, "eth0", fab, port, alias=lay.topo.id_of("network_interfaces", nic))
    own = sn.network_of(nic.private_ip_address) or sn.network
    gw = str(IPv4Address(int(own.network_address) + 1))
    lay.addresses.append(Address(ns=ns, dev="eth0", cidr=f"{nic.private_ip_address}/{own.prefixlen}",
                                 noprefixroute=True))
    lay.route(ns, "default", via=gw, dev="eth0", onlink=True)
    lay.neigh.append(Neighbour(ns=ns, dev="eth0", ip=gw, mac=f_m))
    lay.neigh.append(Neighbour(ns=fab, dev=port, ip=nic.private_ip_address, mac=pe_m))
    p = Port(fab, port, nic.private_ip_address, view.ref, vnet, nic=nic)
    lay.ports[f"{port}@{fab}"] = p
    lay.pe_ports[(vnet.name.lower(), nic.private_ip_address)] = p
    lay.pe_ns[nic.private_endpoint.lower()] = ns


def nsg_applies(lay: Layout, nic) -> bool:
    """The NSGs of a private endpoint's subnet filter its traffic only under the subnet's network
    policies (the engine's rule); other NICs always."""
    if not getattr(nic, "private_endpoint", None):
        return True
    pe = lay.topo.find("private_endpoints", nic.private_endpoint)
    return pe is not None and epaas.pe_nsg_applies(lay.topo, pe)


def public_addresses(lay: Layout) -> None:
    for (_kind, _name), ip in sorted(lay.net.paas.public.items(), key=lambda kv: int(kv[1])):
        lay.addresses.append(Address(ns=lay.inet, dev="lo", cidr=f"{ip}/32"))


def frontends(lay: Layout) -> None:
    """Each PaaS address answers only the TCP ports its service serves (the engine's
    ``Service.ports``); anything else to it is dropped, as the engine's ``ServicePortNotServed``
    says: no reset from a port nobody listens on, no echo reply."""
    by_ns: dict[str, list[str]] = {}
    for ep in lay.net.paas.endpoints():
        ns = lay.inet if ep.private_endpoint is None else lay.pe_ns.get(ep.private_endpoint.name.lower())
        if ns is None:
            continue
        ports = ", ".join(str(p) for p in sorted(ep.service.ports))
        by_ns.setdefault(ns, []).append(f"    ip daddr {ep.ip} tcp dport != {{ {ports} }} drop")
        by_ns[ns].append(f"    ip daddr {ep.ip} meta l4proto != tcp drop")
    for ns, rules in sorted(by_ns.items()):
        lay.nft.append(NftTable(ns=ns, family="ip", name="vlpaas", text="\n".join(
            ["  chain inp {", "    type filter hook input priority filter; policy accept;", *rules, "  }"])))


def service_endpoint_returns(lay: Layout) -> None:
    """The internet namespace's way back to private sources (service endpoint traffic): each
    subnet with service endpoint routes is routed back to its VNet's fabric. (Its forward chain
    still drops private destinations: only its own answers go there.)"""
    for sref in sorted(lay.se_prefixes):
        view = lay.net.subnet_view(sref)
        for net in view.subnet.networks:
            lay.route(lay.inet, str(net), via=LINK_GW, dev=port_name("f", view.vnet.name), onlink=True)


def listen_addresses(lay: Layout, kind: str, res) -> list[dict]:
    """Where the resource listens: its public address (internet namespace), then each of its
    private endpoints' addresses (their namespaces)."""
    out = []
    public = lay.net.paas.public.get((kind, res.name.lower()))
    if public is not None:
        out.append({"ns": lay.inet, "ip": str(public)})
    for ep in lay.net.paas.endpoints():
        if ep.private_endpoint is not None and ep.kind == kind and ep.name.lower() == res.name.lower():
            ns = lay.pe_ns.get(ep.private_endpoint.name.lower())
            if ns is not None:
                out.append({"ns": ns, "ip": str(ep.ip), "vnet": ep.vnet})
    return out


def _sources(lay: Layout) -> list[str]:
    """Every source the lab has: VMs, web apps (each instance), internet hosts."""
    out = [vm.name for vm in lay.topo.virtual_machines]
    for app in lay.topo.web_apps:
        plan = lay.topo.find("app_service_plans", app.plan)
        out += [app.name if i == 0 else f"{app.name}#{i}" for i in range(plan.instances if plan else 1)]
    out += [h.name for h in lay.topo.internet_hosts]
    return out


def _reaching(lay: Layout, source: str, ip: str, port: int):
    """(source address the service sees, the engine's admission) of the flow ``source`` -> ``ip``
    when the engine's trace says it reaches the service; None otherwise."""
    try:
        t = trace(lay.net, source, ip, port)
    except AzureError:
        return None  # a source the engine does not walk from (e.g. an internet host)
    if getattr(t, "admission", None) is None or not t.source_ip_seen:
        return None
    return t.source_ip_seen, t.admission


def _trace(lay: Layout, source: str, ip: str, port: int):
    try:
        return trace(lay.net, source, ip, port)
    except AzureError:
        return None


def site_admission_tables(lay: Layout, listen: list[dict], port: int) -> tuple[dict, dict]:
    """A web app's front end: (the main site's table, the scm site's), as ``admission_table``: per
    address, the source each lab source is seen as -> the engine's admission of a request for
    ``<app>.azurewebsites.net`` (``<app>.scm.azurewebsites.net``)."""
    tables: tuple[dict, dict] = ({}, {})
    for item in listen:
        ip = item["ip"]
        endpoint = epaas.endpoint_at(lay.net, ip, item.get("vnet"))
        names = [n for n, _g, _p, _c in edns.public_names(lay.topo, "web_apps", endpoint.resource)]
        seen: dict[str, str | None] = {}
        for src in _sources(lay):
            t = _trace(lay, src, ip, port)
            if t is None or t.admission is None or not t.source_ip_seen:
                continue
            subnet = next((s.detail.source_subnet for s in t.steps if s.kind == "Admission"), None)
            seen.setdefault(t.source_ip_seen, subnet)
        for table, name in zip(tables, names, strict=True):
            sources = {peer: _cases(epaas.admission_cases(lay.net, endpoint, ip, peer, subnet, server_name=name))
                       for peer, subnet in seen.items()}
            table[ip] = {"sources": sources, "default": _cases(epaas.admission_cases(
                lay.net, endpoint, ip, UNKNOWN_SOURCE, None, server_name=name))}
    return tables


def _cases(cases) -> list[list]:
    """The engine's admission cases as the front end holds them: ``[headers asked for, admission]``, in
    order; it answers a request with the first whose headers the request carries
    (``engine.restriction_headers.first_match``, the engine's own function)."""
    return [[wanted, _admission(adm)] for wanted, adm in cases]


def admission_table(lay: Layout, listen: list[dict], port: int) -> dict:
    """For each address: source address seen -> the engine's admission, and a default (an address
    no rule names)."""
    table = {}
    for item in listen:
        ip = item["ip"]
        sources: dict[str, dict] = {}
        for src in _sources(lay):
            seen = _reaching(lay, src, ip, port)
            if seen is not None:
                sources.setdefault(seen[0], _admission(seen[1]))
        endpoint = epaas.endpoint_at(lay.net, ip, item.get("vnet"))
        table[ip] = {"sources": sources,
                     "default": _admission(epaas.admit(lay.net, endpoint, ip, UNKNOWN_SOURCE, None))}
    return table


def _admission(adm) -> dict:
    out = {"allowed": bool(adm.allowed), "code": adm.code or "", "http_status": adm.http_status or 0,
           "text": adm.text or ""}
    if not adm.allowed and adm.http_status:
        out["body"] = epaas.http_body(adm, RID, WHEN)   # the service's own error body
    if adm.code in epaas.WEB_REASON_PHRASES:
        out["reason"] = epaas.WEB_REASON_PHRASES[adm.code]   # a web app's: 403 Ip Forbidden, 403 Site Disabled
    return out


def server_names(res) -> dict:
    """What a SQL server's gateway does with the server name a login carries (the engine's): the names
    it takes, and its refusal of any other DNS name (a login by address is not checked: the engine takes
    it as ``user@server``)."""
    return {"takes": epaas.sql_gateway_names(res),
            "refusal": _admission(epaas.sql_server_name_refusal(res, ""))}


def processes(lay: Layout, tls_dir: str | None) -> None:
    for kind in ("storage_accounts", "sql_servers", "key_vaults", "web_apps"):
        for res in getattr(lay.topo, kind, []):
            listen = listen_addresses(lay, kind, res)
            if not listen:
                continue
            ports = PORTS[kind]
            spec = {"kind": SPEC_KIND[kind], "name": res.name, "listen": listen,
                    "ports": [{"port": p, "tls": proto == "https", "protocol": proto} for p, proto in ports]}
            if kind == "web_apps":
                spec["admission"], spec["scm_admission"] = site_admission_tables(lay, listen, ports[0][0])
            else:
                spec["admission"] = admission_table(lay, listen, ports[0][0])
            if kind == "sql_servers":
                spec["server_names"] = server_names(res)
            name = f"{PROCESS_PREFIX.get(kind, 'paas')}-{res.name.lower()}"
            if any(proto == "https" for _, proto in ports):
                spec["fqdns"] = fqdns(lay, kind, res)
                if tls_dir:
                    spec["cert"] = f"{tls_dir}/{name}.pem"
                    spec["key"] = f"{tls_dir}/{name}.key"
            lay.procs.append(Process(ns=lay.inet, name=name,
                                     argv=responder_argv("--paas", json.dumps(spec, sort_keys=True)),
                                     kind="responder", tcp=[p for p, _ in ports],
                                     # the app's own process is named after the app: its front end is front-<app>
                                     resource=name if kind == "web_apps" else res.name))
