"""`vnetlab demo`: the field note's story, step by step, each beside what the note observed.

`vnetlab demo private-endpoint` tells a second story, Key Vault's private link troubleshooting page
(examples/private-endpoint-story.yaml), beside the nslookup outputs that page shows.

The note (quoted in the right column; the lab is examples/app-service-vnet-integration.yaml) shows a Linux web app's container
before and after regional VNet integration. Here every figure on the left is computed by
the engine (or, with ``--backend netns``, observed on a real kernel); the right column
quotes the note.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..lab import Lab
from ..topology import load
from .render import console, print_json

NOTE_BEFORE = """default         172.16.2.1      0.0.0.0         UG    0      0        0 eth0
172.16.2.0      0.0.0.0         255.255.255.0   U     0      0        0 eth0"""
NOTE_AFTER = """default         169.254.129.1   0.0.0.0         UG    0      0        0 eth0
10.0.0.0        169.254.254.1   255.255.255.0   UG    0      0        0 vnet00sfpui6f
10.0.0.0        169.254.254.1   255.0.0.0       UG    0      0        0 vnet00sfpui6f
169.254.129.0   0.0.0.0         255.255.255.0   U     0      0        0 eth0
169.254.254.0   0.0.0.0         255.255.255.0   U     0      0        0 vnet00sfpui6f
172.16.0.0      169.254.254.1   255.240.0.0     UG    0      0        0 vnet00sfpui6f
192.168.0.0     169.254.254.1   255.255.0.0     UG    0      0        0 vnet00sfpui6f"""


# https://learn.microsoft.com/azure/key-vault/general/private-link-diagnostics (name resolution)
DOCS_UNLINKED = """fabrikam.vault.azure.net is an alias for fabrikam.privatelink.vaultcore.azure.net.
fabrikam.privatelink.vaultcore.azure.net is an alias for data-prod-eus.vaultcore.azure.net.
data-prod-eus.vaultcore.azure.net is an alias for data-prod-eus-region.vaultcore.azure.net.
data-prod-eus-region.vaultcore.azure.net has address 52.168.109.101"""
DOCS_LINKED = """Address:  10.1.2.3
Aliases:  fabrikam.vault.azure.net
          fabrikam.privatelink.vaultcore.azure.net"""


def example_path(name: str = "app-service-vnet-integration.yaml") -> Path:
    for base in (Path.cwd() / "examples", Path(__file__).resolve().parents[3] / "examples"):
        candidate = base / name
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"examples/{name}")


def route_rows(table: str) -> list[tuple[str, ...]]:
    """(destination, gateway, genmask, flags) of each row; the interface name is the app's own."""
    rows = []
    for line in table.strip().splitlines():
        parts = line.split()
        if len(parts) == 8 and parts[0] != "Destination":
            dest = "0.0.0.0" if parts[0] == "default" else parts[0]
            rows.append((dest, parts[1], parts[2], parts[3], "vnet*" if parts[7].startswith("vnet") else parts[7]))
    return sorted(rows)


def run_demo(home, backend: str = "sim", as_json: bool = False, chapter: str = "note") -> int:
    if chapter == "private-endpoint":
        return run_private_endpoint_demo(home, as_json)
    tmp = None
    if home is None:
        tmp = tempfile.TemporaryDirectory(prefix="vnetlab-demo-")
        home = tmp.name
    lab = Lab.open(home)
    checks: list[dict] = []
    say = (lambda *a: None) if as_json else console.print
    try:
        lab.up(load(example_path()), backend)
        say("[bold]1. The web app's container before VNet integration[/] (`route -n`)")
        checks.append(_table_check(lab, say, "route table before integration", NOTE_BEFORE,
                                   "default via 172.16.2.1 and 172.16.2.0/24 on eth0"))
        ping = lab.trace("app1", "10.0.0.4", None, "Icmp")
        seen = _observed(lab, ping)
        checks.append(_compare("ping 10.0.0.4 before", seen, "TimedOut",
                               note="2 packets transmitted, 0 received, 100% packet loss", shown=f"{seen} ({ping.reason})"))
        say("\n[bold]2. az webapp vnet-integration add --name app1 --vnet vnet1 --subnet integration[/]")
        lab.integrate("app1", "vnet1/integration")
        net = lab.network()
        app = lab.topology().find("web_apps", "app1")
        say(f"   subnet delegated to Microsoft.Web/serverFarms; app1 has {net.sandbox(app).integration_ip} "
            "in the integration subnet")
        say("\n[bold]3. The container after integration[/] (`route -n`)")
        checks.append(_table_check(lab, say, "route table after integration", NOTE_AFTER,
                                   "the same 7 rows (its interface is vnet00sfpui6f)"))
        ping = lab.trace("app1", "10.0.0.4", None, "Icmp")
        checks.append(_compare("ping 10.0.0.4 after", _observed(lab, ping), "Connected",
                               note="64 bytes from 10.0.0.4: icmp_seq=1 ttl=63"))
        tcp = lab.trace("app1", "10.0.0.4", 80, "Tcp")
        checks.append(_compare("index.php fsockopen(10.0.0.4, 80)", _observed(lab, tcp), "Connected",
                               note="Connection OK"))
        checks.append(_compare("source address the VM sees", tcp.source_ip_seen, "10.0.0.190",
                               note="IP 10.0.0.190 > 10.0.0.4: ICMP echo request"))
        for port in (80, 443):
            back = lab.trace("rg1vm1", str(net.sandbox(app).integration_ip), port, "Tcp")
            checks.append(_compare(f"curl from the VM to 10.0.0.190:{port}", _observed(lab, back), "Refused",
                                   note=f"Failed to connect to 10.0.0.190 port {port}: Connection refused"))
    finally:
        if backend == "netns" or tmp is not None:  # a kernel lab never outlives the demo
            lab.down()
        if tmp is not None:
            tmp.cleanup()
    return _report(checks, as_json)


def run_private_endpoint_demo(home, as_json: bool = False) -> int:
    """Key Vault behind a private endpoint, its zone linked to the hub only: from the app's VNet the
    name resolves public and the vault refuses; linking the zone to that VNet fixes both."""
    from ..engine.paas import public_addresses
    from ..model.dns import VirtualNetworkLink
    from .render import resolution_lines
    tmp = tempfile.TemporaryDirectory(prefix="vnetlab-demo-") if home is None else None
    lab = Lab.open(tmp.name if tmp else home)
    say = (lambda *a: None) if as_json else console.print
    checks: list[dict] = []
    try:
        topo = lab.up(load(example_path("private-endpoint-story.yaml")), "sim")
        public = str(public_addresses(topo)[("key_vaults", "fabrikam")])
        private = str(topo.private_endpoint_ip(topo.find("private_endpoints", "pe-kv")))
        say("[bold]1. nslookup fabrikam.vault.azure.net in app1[/] (zone linked to the hub only)")
        res = _resolve_shown(lab, say, resolution_lines)
        checks.append(_compare("the privatelink alias, then the public chain", res.cnames[:1],
                               ["fabrikam.privatelink.vaultcore.azure.net"], note=DOCS_UNLINKED.splitlines()[0]))
        checks.append(_compare("the answer is the vault's public address", res.addresses, [public],
                               note=DOCS_UNLINKED.splitlines()[-1]))
        call = lab.trace("app1", "fabrikam.vault.azure.net", 443)
        checks.append(_compare("the app calls the vault", call.reason, "PublicNetworkAccessDisabled",
                               note="403 ForbiddenByConnection: Public network access is disabled ...",
                               shown=f"{call.verdict} {call.admission.code if call.admission else ''}"))
        say("\n[bold]2. az network private-dns link vnet create -z privatelink.vaultcore.azure.net "
            "-n link-app -v app -e false[/]")
        topo.find("private_dns_zones", "privatelink.vaultcore.azure.net").virtual_network_links.append(
            VirtualNetworkLink(name="link-app", virtual_network="app"))
        lab.up(topo)
        say("\n[bold]3. nslookup fabrikam.vault.azure.net in app1 again[/]")
        res = _resolve_shown(lab, say, resolution_lines)
        checks.append(_compare("the chain stops at the privatelink name", res.cnames,
                               ["fabrikam.privatelink.vaultcore.azure.net"], note="Aliases: fabrikam.vault.azure.net, "
                               "fabrikam.privatelink.vaultcore.azure.net"))
        checks.append(_compare("the answer is the private endpoint's address", res.addresses, [private],
                               note=DOCS_LINKED.splitlines()[0]))
        call = lab.trace("app1", "fabrikam.vault.azure.net", 443)
        checks.append(_compare("the app calls the vault", call.verdict, "Connected", note="200 (through the endpoint)",
                               shown=f"{call.verdict}, the vault sees {call.source_ip_seen}"))
    finally:
        if tmp is not None:
            tmp.cleanup()
    return _report(checks, as_json, "Key Vault's private link diagnostics page")


def _resolve_shown(lab: Lab, say, resolution_lines):
    res = lab.resolve("app1", "fabrikam.vault.azure.net")
    for line in resolution_lines(res.to_dict()):
        say(line)
    return res


def _report(checks: list[dict], as_json: bool, against: str = "the note") -> int:
    ok = all(c["match"] for c in checks)
    if as_json:
        print_json({"checks": checks, "all_match": ok})
    else:
        console.print(f"\n[bold]vnetlab beside {against}[/]")
        for c in checks:
            mark = "[green]match[/]" if c["match"] else "[red]DIFFERS[/]"
            console.print(f"  {mark}  {c['what']}: vnetlab [bold]{c['got']}[/]  |  {'note' if against == 'the note' else 'docs'}: {c['note']}")
    return 0 if ok else 1


def _table_check(lab: Lab, say, what: str, note_table: str, note: str) -> dict:
    table = _route_table(lab, "app1")
    say(table)
    return _compare(what, route_rows(table), route_rows(note_table), note=note, shown="the table above")


def _route_table(lab: Lab, app_name: str) -> str:
    if lab.backend_name == "netns":
        from ..backends import netns_backend
        return netns_backend.route_n(lab, app_name)
    app = lab.topology().find("web_apps", app_name)
    return lab.network().sandbox(app).route_n()


def _observed(lab: Lab, tr) -> str:
    if lab.backend_name != "netns":
        return tr.verdict
    from ..backends import netns_backend
    return netns_backend.probe(lab, tr.to_dict())["verdict"]


def _compare(what: str, value, expected, note: str | None = None, shown: str | None = None) -> dict:
    """One observable: ``value`` (computed) against what the note shows (``expected``)."""
    return {"what": what, "got": shown if shown is not None else value, "match": value == expected,
            "note": note or str(expected)}
