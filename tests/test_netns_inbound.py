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
      - name: app3                      # header filters: decided per request by the front end
        plan: plan1
        ip_security_restrictions:
          - {name: proxy, ip_address: 203.0.113.0/26, priority: 100, headers: {x-forwarded-for: [192.0.2.0/24]}}
          - {name: fd, ip_address: AzureFrontDoor.Backend, tag: ServiceTag, priority: 200,
             headers: {x-azure-fdid: [00000000-0000-0000-0000-0000000000aa]}}
          - {name: fd-probe, ip_address: AzureFrontDoor.Backend, tag: ServiceTag, priority: 250,
             headers: {x-fd-healthprobe: ["1"]}}
          - {name: host, ip_address: 203.0.113.64/26, priority: 300, headers: {x-forwarded-host: ["*.contoso.com"]}}
          - {name: trusted-proxy, vnet_subnet_resource_id: hub/trusted, priority: 400,
             headers: {x-forwarded-for: [192.0.2.0/24]}}
      - {name: app4, plan: plan1}       # stopped and started by the tests that use it
    private_dns_zones:
      - name: privatelink.azurewebsites.net
        virtual_network_links: [{name: link-hub, virtual_network: hub}]
    private_endpoints:
      - {name: pe-app2, subnet: hub/pe, target: app2, group_id: sites,
         private_dns_zone_group: [privatelink.azurewebsites.net]}
    internet_hosts:
      - {name: office, ip: 203.0.113.10}
      - {name: home, ip: 203.0.113.77}
      - {name: afd, ip: 198.18.5.10}    # in the lab's AzureFrontDoor.Backend
    """)
NAMES = ["app1.azurewebsites.net", "app1.scm.azurewebsites.net", "app2.azurewebsites.net"]
FDID = "00000000-0000-0000-0000-0000000000aa"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with emulated(tmp_path_factory.mktemp("inbound") / "home", parse(load_yaml(LAB))) as lab:
        yield lab


def curl(lab: Lab, who: str, name: str, ip: str, headers: dict[str, str] | None = None,
         ) -> tuple[int, str, dict[str, str], str]:
    """(status, reason phrase, headers, body) of ``GET https://NAME/`` from ``who``, to ``ip``, with
    ``headers`` (curl -H)."""
    ca = str(lab.home / "tls" / "ca.pem")
    extra = [x for k, v in (headers or {}).items() for x in ("-H", f"{k}: {v}")]
    out = nx.run_in(nb.namespace_of(lab, who), ["curl", "-s", "-i", "--max-time", "5", "--cacert", ca, *extra,
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


# -- request headers: the front end decides each request with its real headers, by the engine's cases ---------
HEADER_SETS = [
    {},
    {"X-Forwarded-For": "192.0.2.7"},
    {"X-Forwarded-For": "198.51.100.1, 192.0.2.9"},     # any address of the chain
    {"X-Forwarded-For": "198.51.100.1"},
    {"X-Azure-FDID": FDID},
    {"X-Azure-FDID": "11111111-0000-0000-0000-000000000000"},
    {"X-FD-HealthProbe": "1"},
    {"X-Forwarded-Host": "WWW.Contoso.com"},            # case-insensitive, *. wildcard
    {"X-Forwarded-Host": "contoso.net"},
]
HEADER_CALLERS = ["office", "home", "afd", "vm1", "vm2"]


def _header_args(headers: dict[str, str]) -> list[str]:
    return [x for k, v in headers.items() for x in ("--header", f"{k}={v}")]


@pytest.mark.parametrize("headers", HEADER_SETS, ids=lambda h: ",".join(f"{k}={v}" for k, v in h.items()) or "none")
def test_the_front_end_decides_each_request_with_its_real_headers(lab, headers):
    name = "app3.azurewebsites.net"
    for who in HEADER_CALLERS:
        want = lab.trace(who, name, 443, headers=headers).to_dict()
        status, reason, got, body = curl(lab, who, name, want["flow"]["destination_ip"], headers)
        if want["verdict"] == "Connected":
            assert status == 200 and "hello from the web app app3" in body, (who, want["admission"]["rule"], status)
        else:
            assert (want["reason"], status, reason) == ("AccessRestrictionDenied", 403, "Ip Forbidden"), \
                (who, want["admission"]["rule"], status, reason)
            assert got["x-ms-forbidden-ip"] == want["source_ip_seen"]


def test_header_rules_as_a_user_meets_them(lab):
    """The same requests by curl -H: who gets in with which header (so the comparison above is not
    all refusals)."""
    def status(who: str, headers: dict[str, str]) -> int:
        ip = lab.trace(who, "app3.azurewebsites.net", 443).to_dict()["flow"]["destination_ip"]
        return curl(lab, who, "app3.azurewebsites.net", ip, headers)[0]

    assert status("office", {}) == 403 and status("office", {"X-Forwarded-For": "192.0.2.7"}) == 200
    assert status("office", {"X-Forwarded-For": "198.51.100.1"}) == 403
    assert status("afd", {"X-Azure-FDID": FDID}) == 200 and status("afd", {"X-Azure-FDID": "other"}) == 403
    assert status("afd", {"X-FD-HealthProbe": "1"}) == 200 and status("office", {"X-Azure-FDID": FDID}) == 403
    assert status("home", {"X-Forwarded-Host": "api.contoso.com"}) == 200
    assert status("home", {"X-Forwarded-Host": "contoso.net"}) == 403
    assert status("vm2", {"X-Forwarded-For": "192.0.2.7"}) == 200 and status("vm2", {}) == 403
    assert status("vm1", {"X-Forwarded-For": "192.0.2.7"}) == 403


@pytest.mark.parametrize("who", ["office", "afd"])
def test_check_internet_with_headers_equals_curl_with_them(lab, who):
    """`vnetlab check internet APP --from IP --header NAME=VALUE` (the engine, and its probe of the
    kernel with the same headers) against curl -H from the internet host at that address."""
    import json

    from conftest import cli
    ip = {"office": "203.0.113.10", "afd": "198.18.5.10"}[who]
    for headers in HEADER_SETS:
        result = cli(lab.home, "check", "internet", "app3", "--port", "443", "--from", ip, *_header_args(headers),
                     "-o", "json")
        out = json.loads(result.output)
        status = curl(lab, who, "app3.azurewebsites.net", out["flow"]["destination_ip"], headers)[0]
        assert (status == 200) == (out["verdict"] == "Connected"), (headers, out["reason"], status)
        assert out["observed"]["verdict"] == out["verdict"], (headers, out["observed"])   # the probe sent them too


# -- a stopped app: 403 Site Disabled, "Error 403 - This web app is stopped." ------------------------------
STOPPED_PAGE = "Error 403 - This web app is stopped."


def assert_stopped_then_started(lab, stop, start) -> None:
    name = "app4.azurewebsites.net"
    stop()
    try:
        for who in ("home", "vm1"):
            want = lab.trace(who, name, 443).to_dict()
            assert want["reason"] == "WebAppStopped" and STOPPED_PAGE in want["admission"]["text"]
            status, reason, got, body = curl(lab, who, name, want["flow"]["destination_ip"])
            assert (status, reason) == (403, "Site Disabled") and STOPPED_PAGE in body
            assert "x-ms-forbidden-ip" not in got
            probed = nb.probe(lab, want)
            assert probed["verdict"] == "Denied" and "SiteDisabled" in probed["detail"], probed
    finally:
        start()
    want = lab.trace("home", name, 443).to_dict()
    assert want["verdict"] == "Connected"
    assert curl(lab, "home", name, want["flow"]["destination_ip"])[0] == 200


def test_vnetlab_webapp_stop_and_start_on_the_emulation(lab):
    from conftest import cli
    def run(action: str) -> None:
        result = cli(lab.home, "webapp", action, "-n", "app4")
        assert result.exit_code == 0, result.output

    assert_stopped_then_started(lab, lambda: run("stop"), lambda: run("start"))


@pytest.mark.az
def test_az_webapp_stop_and_start_on_the_emulation(lab):
    from test_az_cli import logged_in_az
    with logged_in_az(lab.home) as az:
        assert_stopped_then_started(lab, lambda: az("webapp", "stop", "-g", "rg1", "-n", "app4"),
                                    lambda: az("webapp", "start", "-g", "rg1", "-n", "app4"))
