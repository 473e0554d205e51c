"""Real name resolution in the emulation: ``nslookup``, ``dig`` and ``getent hosts`` run inside
VMs and web apps (as ``vnetlab exec`` runs them) get what the engine's ``resolve`` says: Azure
DNS (168.63.129.16) answering with the linked zones of the asker's VNet, a custom DNS VM that
really forwards to it from its own VNet, NXDOMAIN, and no answer at all."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from vnetlab.backends import netns_backend as nb
from vnetlab.backends.netns import exec as nx
from vnetlab.backends.netns.apply import K_PROC
from vnetlab.engine import dns as edns
from vnetlab.lab import Lab
from vnetlab.topology import load_yaml, parse
from netns_support import NETNS_MARKS, emulated  # noqa: E402

pytestmark = NETNS_MARKS

LAB = textwrap.dedent("""
    name: names
    location: westeurope
    virtual_networks:
      - name: hub
        address_space: [10.1.0.0/16]
        subnets:
          - {name: default, address_prefix: 10.1.0.0/24}
          - {name: pe, address_prefix: 10.1.1.0/24}
          - {name: integration, address_prefix: 10.1.2.0/26, delegations: [Microsoft.Web/serverFarms]}
        peerings: [{name: to-spoke, remote_virtual_network: spoke}]
      - name: spoke
        address_space: [10.2.0.0/16]
        dns_servers: [10.1.0.53]
        subnets: [{name: default, address_prefix: 10.2.0.0/24}]
        peerings: [{name: to-hub, remote_virtual_network: hub}]
      - name: other
        address_space: [10.3.0.0/16]
        subnets: [{name: default, address_prefix: 10.3.0.0/24}]
    virtual_machines:
      - {name: vm1, subnet: hub/default}
      - name: dns1
        subnet: hub/default
        private_ip_address: 10.1.0.53
        dns_server:
          forwarders: [168.63.129.16]
          zones: [{name: corp.example, records: [{name: www, type: A, values: [10.1.0.9]}]}]
      - {name: dns2, subnet: other/default, private_ip_address: 10.3.0.53, dns_server: {forwarders: []}}
      - {name: spokevm, subnet: spoke/default}
      - {name: othervm, subnet: other/default}
      - {name: lonely, subnet: other/default, dns_servers: [10.3.0.53]}
    app_service_plans: [{name: plan1, sku: P1v3}]
    web_apps:
      - {name: app1, plan: plan1, vnet_integration: hub/integration}
      - {name: app2, plan: plan1}
      - {name: app3, plan: plan1, vnet_integration: hub/integration, app_settings: {WEBSITE_DNS_SERVER: 8.8.8.8}}
    private_dns_zones:
      - name: privatelink.blob.core.windows.net
        virtual_network_links: [{name: link-hub, virtual_network: hub}]
    private_endpoints:
      - {name: pe-blob, subnet: hub/pe, target: acct1, group_id: blob,
         private_dns_zone_group: [privatelink.blob.core.windows.net]}
      - {name: pe-other, subnet: other/default, target: acct2, group_id: blob}
    storage_accounts:
      - {name: acct1}
      - {name: acct2}
    """)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with emulated(tmp_path_factory.mktemp("names") / "home", parse(load_yaml(LAB))) as lab:
        yield lab


def run(lab: Lab, who: str, argv: list[str]):
    return nx.run_in(nb.namespace_of(lab, who), argv, timeout=30)


def expected(lab: Lab, who: str, name: str):
    return edns.resolve(lab.network(), who, name)


def dig(lab: Lab, who: str, name: str) -> tuple[str, list[str], list[str]]:
    """(status, CNAME chain, addresses) as dig prints them; status TIMEOUT when no server answered."""
    out = run(lab, who, ["dig", "+time=3", "+tries=1", "+noall", "+comments", "+answer", name]).stdout
    m = re.search(r"status: (\w+)", out)
    if m is None:
        return "TIMEOUT", [], []
    cnames = [x.rstrip(".").lower() for x in re.findall(r"\sIN\s+CNAME\s+(\S+)", out)]
    addrs = re.findall(r"\sIN\s+A\s+(\S+)", out)
    return m.group(1), cnames, sorted(addrs)


def engine_status(res) -> str:
    return {"NoError": "NOERROR", "NXDOMAIN": "NXDOMAIN", "Timeout": "TIMEOUT"}[res.outcome]


CASES = [
    ("vm1", "acct1.blob.core.windows.net"),       # linked zone: the endpoint's address
    ("othervm", "acct1.blob.core.windows.net"),   # not linked: the public chain, privatelink alias
    ("spokevm", "acct1.blob.core.windows.net"),   # custom DNS in the hub forwards: the hub's view
    ("spokevm", "www.corp.example"),              # the custom DNS server's own zone
    ("app1", "acct1.blob.core.windows.net"),      # integrated: the integration VNet's view
    ("app2", "acct1.blob.core.windows.net"),      # not integrated: public
    ("vm1", "acct2.blob.core.windows.net"),       # linked zone without the record: NXDOMAIN
    ("vm1", "nothing.example"),                   # a name nobody knows
    ("lonely", "acct1.blob.core.windows.net"),    # a DNS server that forwards nowhere: no answer
    ("app3", "acct1.blob.core.windows.net"),      # WEBSITE_DNS_SERVER=8.8.8.8: public answers only
    ("vm1", "dns1"),                              # a VM of the same VNet by its name
    ("vm1", "spokevm.internal.cloudapp.net"),     # a VM of another VNet: not Azure-provided here
]


@pytest.mark.parametrize(("who", "name"), CASES)
def test_dig_answers_what_resolve_says(lab, who, name):
    want = expected(lab, who, name)
    status, cnames, addrs = dig(lab, who, name)
    assert status == engine_status(want), (who, name, want.to_dict())
    if want.outcome == "NoError":
        assert cnames == [c.lower() for c in want.cnames if c.lower() != name]
        assert addrs == sorted(str(a) for a in want.addresses)


@pytest.mark.parametrize(("who", "name"), [c for c in CASES if c[0] in ("vm1", "app1", "othervm")])
def test_nslookup_and_getent_agree(lab, who, name):
    want = expected(lab, who, name)
    ns = run(lab, who, ["nslookup", "-timeout=3", "-retry=1", name])
    ge = run(lab, who, ["getent", "hosts", name])
    if want.outcome == "NoError":
        assert "canonical name" in ns.stdout or not want.cnames
        assert sorted(re.findall(r"^Address: (\S+)$", ns.stdout, re.M)) == sorted(str(a) for a in want.addresses)
        assert ge.returncode == 0
        assert sorted(line.split()[0] for line in ge.stdout.splitlines()) == sorted(str(a) for a in want.addresses)
    else:
        assert f"server can't find {name}: NXDOMAIN" in ns.stdout
        assert ge.returncode == 2


def test_resolv_conf_follows_the_engine(lab):
    net = lab.network()
    for who in ("vm1", "spokevm", "app1", "lonely", "app3"):
        text = run(lab, who, ["cat", "/etc/resolv.conf"]).stdout
        assert re.findall(r"^nameserver (\S+)$", text, re.M) == [str(s) for s in edns.dns_servers_for(net, who)][:3]


def test_the_forwarder_asks_from_its_own_vnet(lab):
    """The custom DNS VM really forwards: the hub's Azure DNS logs the query from dns1's address."""
    dig(lab, "spokevm", "acct1.blob.core.windows.net")
    fab = nb.names(lab).fabrics["hub"]
    logs = [Path(d["log"]).read_text() for _, n, d in lab.store.records(K_PROC) if n == f"{fab}/dns"]
    assert any("10.1.0.53 udp acct1.blob.core.windows.net" in text for text in logs)


def test_nothing_listens_outside_the_lab(lab):
    """The resolvers and services bind inside the lab's namespaces only: the host has no socket on
    168.63.129.16 or on port 53 of the lab's processes."""
    import subprocess
    host = subprocess.run(["ss", "-Hlnup"], capture_output=True, text=True).stdout
    host += subprocess.run(["ss", "-Hlntp"], capture_output=True, text=True).stdout
    assert "168.63.129.16" not in host
    pids = {str(d["pid"]) for _, _, d in lab.store.records(K_PROC) if d.get("pid")}
    assert not [line for line in host.splitlines() if any(f"pid={p}," in line for p in pids)]
