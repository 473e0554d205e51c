"""A stopped web app runs no code: it is no source of a trace or of the matrix."""

import pytest

from conftest import NOTE, build
from vnetlab.engine.matrix import matrix
from vnetlab.engine.network import LabView
from vnetlab.engine.trace import trace
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
