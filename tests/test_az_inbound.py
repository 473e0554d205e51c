"""The az commands of a web app's inbound side (issue 10 section 2), unmodified, against the endpoint:
access restrictions, public network access, a private endpoint to the site. Each asserts the lab stored
afterwards and what the engine then answers. Without azure-cli these tests skip (tests/test_az_cli.py)."""

from __future__ import annotations

import json

import pytest
from test_az_paas import LOC, az, rg_id  # noqa: F401  (the module's az fixture)

from vnetlab.engine.trace import Reason, trace

pytestmark = pytest.mark.az


@pytest.fixture(scope="module")
def azc(az):  # noqa: F811
    """az on a lab of its own (test_az_paas's fixture)."""
    return az


def web(azc, rg: str) -> None:
    azc.script(f"""
        group create -n {rg} -l {LOC}
        network vnet create -g {rg} -n hub-{rg} --address-prefixes 10.0.0.0/16 --subnet-name vms --subnet-prefixes 10.0.1.0/24
        network vnet subnet create -g {rg} --vnet-name hub-{rg} -n pe --address-prefixes 10.0.2.0/24
        appservice plan create -g {rg} -n plan-{rg} --sku P1V3 --is-linux
        webapp create -g {rg} -p plan-{rg} -n app-{rg} --container-image-name nginx:latest
    """)


def restrictions(azc, rg: str) -> dict:
    return azc.show("webapp", "config", "access-restriction", "show", "-g", rg, "-n", f"app-{rg}")


def verdict(azc, source: str, destination: str, **kw) -> Reason:
    return trace(azc.lab.network(), source, destination, 443, **kw).reason


def test_access_restriction_add_show_remove_set(azc):
    rg = "rg-ar"
    web(azc, rg)
    shown = restrictions(azc, rg)
    assert [r["name"] for r in shown["ipSecurityRestrictions"]] == ["Allow all"]
    azc.script(f"""
        webapp config access-restriction add -g {rg} -n app-{rg} --rule-name office --action Allow --ip-address 203.0.113.0/24 --priority 100
        webapp config access-restriction add -g {rg} -n app-{rg} --rule-name block --action Deny --ip-address 203.0.113.77/32 --priority 50
        webapp config access-restriction add -g {rg} -n app-{rg} --rule-name vms --priority 300 --subnet vms --vnet-name hub-{rg}
        webapp config access-restriction add -g {rg} -n app-{rg} --rule-name fd --priority 400 --service-tag AzureFrontDoor.Backend --http-headers x-azure-fdid=12345678-abcd-1234-abcd-12345678abcd
    """)
    app = azc.lab.topology().find("web_apps", f"app-{rg}")
    assert [(r.name, r.action, r.priority) for r in app.ip_security_restrictions] == [
        ("office", "Allow", 100), ("block", "Deny", 50), ("vms", "Allow", 300), ("fd", "Allow", 400)]
    assert app.ip_security_restrictions[2].vnet_subnet_resource_id == f"hub-{rg}/vms"
    assert app.ip_security_restrictions[3].headers == {"x-azure-fdid": ["12345678-abcd-1234-abcd-12345678abcd"]}
    # az gave the subnet its Microsoft.Web service endpoint before sending the rule
    assert "Microsoft.Web" in azc.lab.topology().vnet(f"hub-{rg}").subnets[0].service_endpoints
    shown = restrictions(azc, rg)
    assert [r["name"] for r in shown["ipSecurityRestrictions"]][-1] == "Deny all"
    assert verdict(azc, "internet", f"app-{rg}", source_ip="203.0.113.77") == Reason.ACCESS_RESTRICTION_DENIED
    assert verdict(azc, "internet", f"app-{rg}", source_ip="203.0.113.8") == Reason.REACHABLE

    missing = azc("webapp", "config", "access-restriction", "remove", "-g", rg, "-n", f"app-{rg}", "--rule-name",
                 "block", check=False)
    assert missing.returncode != 0 and "you must explicitly specify --action Deny" in missing.stderr
    azc.script(f"""
        webapp config access-restriction remove -g {rg} -n app-{rg} --rule-name block --action Deny
        webapp config access-restriction set -g {rg} -n app-{rg} --use-same-restrictions-for-scm-site true --default-action Allow
    """)
    app = azc.lab.topology().find("web_apps", f"app-{rg}")
    assert [r.name for r in app.ip_security_restrictions] == ["office", "vms", "fd"]
    assert app.scm_ip_security_restrictions_use_main and app.ip_security_restrictions_default_action == "Allow"
    assert restrictions(azc, rg)["scmIpSecurityRestrictionsUseMain"] is True


def test_scm_site_rules(azc):
    rg = "rg-scm"
    web(azc, rg)
    azc.script(f"""
        webapp config access-restriction add -g {rg} -n app-{rg} --rule-name office --ip-address 203.0.113.10/32 --priority 100 --scm-site true
    """)
    app = azc.lab.topology().find("web_apps", f"app-{rg}")
    assert [r.name for r in app.scm_ip_security_restrictions] == ["office"] and not app.ip_security_restrictions
    scm = f"app-{rg}.scm.azurewebsites.net"
    assert verdict(azc, "internet", scm, source_ip="203.0.113.11") == Reason.ACCESS_RESTRICTION_DENIED
    assert verdict(azc, "internet", f"app-{rg}", source_ip="203.0.113.11") == Reason.REACHABLE


def test_webapp_update_public_network_access(azc):
    rg = "rg-pna"
    web(azc, rg)
    azc.script(f"webapp update -g {rg} -n app-{rg} --set publicNetworkAccess=Disabled")
    assert azc.lab.topology().find("web_apps", f"app-{rg}").public_network_access == "Disabled"
    assert azc.show("webapp", "show", "-g", rg, "-n", f"app-{rg}")["publicNetworkAccess"] == "Disabled"
    assert verdict(azc, "internet", f"app-{rg}") == Reason.PUBLIC_NETWORK_ACCESS_DISABLED
    azc.script(f"webapp update -g {rg} -n app-{rg} --set publicNetworkAccess=Enabled")
    assert verdict(azc, "internet", f"app-{rg}") == Reason.REACHABLE


def test_private_endpoint_to_a_site_closes_its_public_endpoint(azc):
    rg = "rg-pe"
    web(azc, rg)
    site = f"{rg_id(rg)}/providers/Microsoft.Web/sites/app-{rg}"
    azc.script(f"""
        network private-endpoint create -g {rg} -n pe-app --vnet-name hub-{rg} --subnet pe --private-connection-resource-id {site} --group-id sites --connection-name c1
        network private-dns zone create -g {rg} -n privatelink.azurewebsites.net
        network private-dns link vnet create -g {rg} -n hub-link -z privatelink.azurewebsites.net -v hub-{rg} -e false
        network private-endpoint dns-zone-group create -g {rg} --endpoint-name pe-app -n default --private-dns-zone privatelink.azurewebsites.net --zone-name web
    """)
    topo = azc.lab.topology()
    pe = topo.find("private_endpoints", "pe-app")
    assert pe.group_id == "sites" and pe.target_name == f"app-{rg}"
    records = json.loads(azc("network", "private-dns", "record-set", "a", "list", "-g", rg, "-z",
                            "privatelink.azurewebsites.net").stdout)
    assert {r["name"] for r in records} == {f"app-{rg}", f"app-{rg}.scm"}
    assert verdict(azc, "internet", f"app-{rg}") == Reason.PUBLIC_NETWORK_ACCESS_DISABLED
    azc.script(f"""
        webapp config access-restriction set -g {rg} -n app-{rg} --default-action Deny
        webapp update -g {rg} -n app-{rg} --set publicNetworkAccess=Enabled
    """)   # explicitly Enabled: the public endpoint reopens, and its rules decide
    assert verdict(azc, "internet", f"app-{rg}") == Reason.ACCESS_RESTRICTION_DENIED


def test_a_subnet_rule_and_a_private_endpoint_are_refused_together(azc):
    """"Access restriction rules based on service endpoints are not supported on apps that have private
    endpoint configured": the lab refuses the second half, whichever comes second (vnetlab's code)."""
    rg = "rg-sepe"
    web(azc, rg)
    site = f"{rg_id(rg)}/providers/Microsoft.Web/sites/app-{rg}"
    azc.script(f"network private-endpoint create -g {rg} -n pe-sepe --vnet-name hub-{rg} --subnet pe "
               f"--private-connection-resource-id {site} --group-id sites --connection-name c1")
    refused = azc("webapp", "config", "access-restriction", "add", "-g", rg, "-n", f"app-{rg}", "--rule-name", "vms",
                  "--priority", "100", "--subnet", "vms", "--vnet-name", f"hub-{rg}", check=False)
    assert refused.returncode != 0 and "not supported on apps that have private endpoint configured" in refused.stderr
    assert not azc.lab.topology().find("web_apps", f"app-{rg}").ip_security_restrictions
    azc.script(f"""
        network private-endpoint delete -g {rg} -n pe-sepe
        webapp config access-restriction add -g {rg} -n app-{rg} --rule-name vms --priority 100 --subnet vms --vnet-name hub-{rg}
    """)
    refused = azc("network", "private-endpoint", "create", "-g", rg, "-n", "pe-sepe", "--vnet-name", f"hub-{rg}",
                  "--subnet", "pe", "--private-connection-resource-id", site, "--group-id", "sites",
                  "--connection-name", "c1", check=False)
    assert refused.returncode != 0 and "ServiceEndpointRuleNotSupportedWithPrivateEndpoint" in refused.stderr
    assert azc.lab.topology().find("private_endpoints", "pe-sepe") is None
