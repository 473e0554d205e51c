"""A web app's front end in the emulation: curl from internet hosts and from VMs to the app's default
host names (main and scm sites), on its public address and through its private endpoint; each answer
(200, or 403 Ip Forbidden naming the caller) is what the engine's trace of the same flow says."""

from __future__ import annotations

import textwrap

import pytest

from vnetlab.backends import netns_backend as nb
from vnetlab.backends.netns import exec as nx
from vnetlab.lab import Lab
from vnetlab.topology import load_yaml, parse
from netns_support import NETNS_MARKS, emulated  # noqa: E402

pytestmark = NETNS_MARKS

LAB = textwrap.dedent("""
    name: inbound
    location: westeurope
    virtual_networks:
      - name: hub
        address_space: [10.4.0.0/16]
        subnets:
          - {name: vms, address_prefix: 10.4.0.0/24}
          - {name: trusted, address_prefix: 10.4.1.0/24, service_endpoints: [Microsoft.Web]}
          - {name: pe, address_prefix: 10.4.2.0/24}
    virtual_machines:
      - {name: vm1, subnet: hub/vms}
      - {name: vm2, subnet: hub/trusted}
    app_service_plans: [{name: plan1, sku: P1v3}]
    web_apps:
      - name: app1
        plan: plan1
        ip_security_restrictions:
          - {name: office, ip_address: 203.0.113.10/32, priority: 100}
          - {name: trusted, vnet_subnet_resource_id: hub/trusted, priority: 200}
      - {name: app2, plan: plan1}
    private_dns_zones:
      - name: privatelink.azurewebsites.net
        virtual_network_links: [{name: link-hub, virtual_network: hub}]
    private_endpoints:
      - {name: pe-app2, subnet: hub/pe, target: app2, group_id: sites,
         private_dns_zone_group: [privatelink.azurewebsites.net]}
    internet_hosts:
      - {name: office, ip: 203.0.113.10}
      - {name: home, ip: 203.0.113.77}
    """)
NAMES = ["app1.azurewebsites.net", "app1.scm.azurewebsites.net", "app2.azurewebsites.net"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with emulated(tmp_path_factory.mktemp("inbound") / "home", parse(load_yaml(LAB))) as lab:
        yield lab


def curl(lab: Lab, who: str, name: str, ip: str) -> tuple[int, str, dict[str, str], str]:
    """(status, reason phrase, headers, body) of ``GET https://NAME/`` from ``who``, to ``ip``."""
    ca = str(lab.home / "tls" / "ca.pem")
    out = nx.run_in(nb.namespace_of(lab, who), ["curl", "-s", "-i", "--max-time", "5", "--cacert", ca,
                                                "--resolve", f"{name}:443:{ip}", f"https://{name}/"],
                    timeout=30).stdout
    head, _, body = out.partition("\n\n")
    lines = head.split("\n")
    parts = lines[0].split(" ", 2) if lines and lines[0].startswith("HTTP/") else ["", "0", ""]
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(parts[1]), parts[2].strip() if len(parts) > 2 else "", headers, body


@pytest.mark.parametrize("who", ["office", "home", "vm1", "vm2"])
@pytest.mark.parametrize("name", NAMES)
def test_the_front_end_answers_as_the_engine_admits(lab, who, name):
    want = lab.trace(who, name, 443).to_dict()
    status, reason, headers, body = curl(lab, who, name, want["flow"]["destination_ip"])
    if want["verdict"] == "Connected":
        assert status == 200 and "hello from the web app" in body, (want["reason"], status)
    else:
        assert want["verdict"] == "Denied", want
        assert (status, reason) == (403, "Ip Forbidden"), (want["reason"], status, reason)
        assert headers["x-ms-forbidden-ip"] == want["source_ip_seen"]
        assert "blocked your access" in body


def test_the_story_office_in_home_out_pe_in(lab):
    """The rules and the private endpoint as a user meets them."""
    verdicts = {(who, name): lab.trace(who, name, 443).verdict for who in ("office", "home", "vm1", "vm2")
                for name in NAMES}
    assert verdicts[("office", NAMES[0])] == "Connected" and verdicts[("home", NAMES[0])] == "Denied"
    assert verdicts[("vm2", NAMES[0])] == "Connected" and verdicts[("vm1", NAMES[0])] == "Denied"
    assert verdicts[("home", NAMES[1])] == "Connected"          # the scm site has no rule
    assert verdicts[("vm1", NAMES[2])] == "Connected"           # through pe-app2
    assert verdicts[("office", NAMES[2])] == "Denied"           # public access implicitly off


@pytest.mark.parametrize("who", ["home", "vm1"])
def test_check_on_the_kernel_equals_the_engine(lab, who):
    tr = lab.trace(who, NAMES[0], 443).to_dict()
    got = nb.probe(lab, tr)
    assert got["verdict"] == tr["verdict"], (tr["reason"], got)
    if tr["verdict"] == "Denied":
        assert tr["admission"]["code"] in got["detail"]
