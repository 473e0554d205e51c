"""A stopped web app runs no code: it is no source of a trace or of the matrix."""

import pytest

from conftest import NOTE, build
from vnetlab.engine.matrix import matrix
from vnetlab.engine.network import LabView
from vnetlab.engine.paas import http_body
from vnetlab.engine.trace import Reason, trace
from vnetlab.model import AzureError


def stopped_note():
    topo = build(NOTE)
    topo.web_apps[0].stop()
    return topo


def test_a_trace_from_a_stopped_app_is_refused_with_a_clear_error():
    with pytest.raises(AzureError) as err:
        trace(stopped_note(), "app1", "rg1vm1", 80)
    assert err.value.code == "WebAppStopped"
    assert "az webapp start" in err.value.message


def test_a_started_app_traces_again():
    topo = stopped_note()
    topo.web_apps[0].start()
    assert trace(topo, "app1", "rg1vm1", 80).verdict == "Connected"


def test_the_matrix_leaves_a_stopped_app_out():
    names = {ep.name for ep in LabView(stopped_note()).endpoints()}
    assert names == {"rg1vm1"}
    out = matrix(LabView(stopped_note()), ["80"])
    assert "app1" not in str(out)


# -- inbound: a stopped app's front end answers 403 "This web app is stopped." -------------------------------
STOPPED_PAGE = "Error 403 - This web app is stopped."


def stopped_inbound(**app1):
    from test_inbound import lab, with_private_endpoint
    doc = with_private_endpoint(lab(**app1))
    doc["web_apps"][0]["public_network_access"] = "Enabled"
    topo = build(doc)
    topo.web_apps[0].stop()
    return topo


@pytest.mark.parametrize("source, name", [("internet", "app1"), ("internet", "app1.scm.azurewebsites.net"),
                                          ("vm1", "app1.azurewebsites.net"),      # through the private endpoint
                                          ("app2", "app1.azurewebsites.net")])    # over the public path
def test_a_stopped_app_answers_every_request_with_the_stopped_page(source, name):
    topo = stopped_inbound(ip_security_restrictions=[{"name": "all", "ip_address": "Any", "priority": 100}])
    t = trace(LabView(topo), source, name, 443)
    assert t.reason == Reason.WEB_APP_STOPPED and t.verdict == "Denied"
    assert t.admission.http_status == 403 and t.admission.code == "SiteDisabled"
    assert STOPPED_PAGE in t.admission.text and STOPPED_PAGE in http_body(t.admission)
    topo.web_apps[0].start()
    assert trace(LabView(topo), source, name, 443).reason == Reason.REACHABLE


def test_a_stopped_app_is_stopped_whatever_its_rules_would_say():
    topo = stopped_inbound(ip_security_restrictions_default_action="Deny")
    assert trace(LabView(topo), "internet", "app1", 443).reason == Reason.WEB_APP_STOPPED
    topo.web_apps[0].start()
    assert trace(LabView(topo), "internet", "app1", 443).reason == Reason.ACCESS_RESTRICTION_DENIED


def test_cli_webapp_stop_then_check_internet_and_start(tmp_path):
    import json

    import yaml
    from conftest import cli
    from test_inbound import lab
    f = tmp_path / "lab.yaml"
    f.write_text(yaml.safe_dump(lab()))
    home = tmp_path / "lab"
    assert cli(home, "up", str(f)).exit_code == 0
    stopped = cli(home, "webapp", "stop", "-n", "app1", "-o", "json")
    assert stopped.exit_code == 0 and json.loads(stopped.output)["state"] == "Stopped"
    result = cli(home, "check", "internet", "app1", "--port", "443", "-o", "json")
    out = json.loads(result.output)
    assert result.exit_code == 1 and (out["verdict"], out["reason"]) == ("Denied", "WebAppStopped")
    assert STOPPED_PAGE in out["admission"]["text"]
    text = cli(home, "check", "vm1", "app1.azurewebsites.net", "--port", "443")
    assert text.exit_code == 1 and STOPPED_PAGE in text.output and "403 SiteDisabled" in text.output
    assert cli(home, "webapp", "start", "-n", "app1").exit_code == 0
    assert cli(home, "check", "internet", "app1", "--port", "443").exit_code == 0
    assert cli(home, "webapp", "stop", "-n", "nosuchapp").exit_code == 2
