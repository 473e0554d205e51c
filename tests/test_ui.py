"""The web page, driven in headless Chromium (Debian's package) through Playwright's Python client.

Served by the ARM endpoint itself (`vnetlab serve`): the page and the ARM API on one server and lab.
Screenshots of each state go to the test's tmp_path.
"""

import shutil

import httpx
import pytest

from conftest import build
from test_graph import denied_doc
from vnetlab.api import ServerThread, create_app, ensure_tls
from vnetlab.lab import Lab

CHROMIUM = "/usr/bin/chromium"
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None,
                                reason="Debian's chromium is not installed (apt-get install chromium)")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SUB = "/subscriptions/00000000-0000-0000-0000-000000000000"


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def served(tmp_path, doc=None):
    home = tmp_path / "lab"
    Lab.open(home).up(build(doc))
    return ServerThread(create_app(home), ensure_tls(tmp_path / "tls"))


@pytest.fixture
def page(browser):
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1400, "height": 900})
    p = context.new_page()
    p.set_default_timeout(20000)
    yield p
    context.close()


def test_the_picture_shows_the_vnet_and_subnets_and_a_click_shows_a_resource(tmp_path, page):
    with served(tmp_path) as url:
        page.goto(url + "/")
        page.wait_for_selector("#picture svg")
        text = page.inner_text("#picture")
        assert "VNet vnet1" in text and "subnet default" in text and "subnet integration" in text
        page.click('g.node[id="ref:subnet:vnet1/integration"]')
        page.wait_for_selector("#details-pane:not([hidden])")
        details = page.inner_text("#details")
        assert "Microsoft.Web/serverFarms" in details and "VnetLocal" in details   # properties and routes
        page.screenshot(path=str(tmp_path / "picture.png"))


def test_trace_app1_to_rg1vm1_is_connected_from_10_0_0_190(tmp_path, page):
    with served(tmp_path) as url:
        page.goto(url + "/")
        page.wait_for_selector("#src option[value=app1]", state="attached")
        page.select_option("#src", "app1")
        page.fill("#dst", "rg1vm1")
        page.fill("#port", "80")
        page.click("button[type=submit]")
        page.wait_for_selector("#verdict .Connected")
        assert "source seen 10.0.0.190" in page.inner_text("#verdict")
        assert "Deliver Answered" in page.inner_text("#steps")
        page.wait_for_function("document.querySelector('#picture').textContent.includes('trace step')")
        page.screenshot(path=str(tmp_path / "trace.png"))


def test_a_denied_cell_of_the_matrix_opens_its_trace_with_the_nsg_rule(tmp_path, page):
    with served(tmp_path, denied_doc()) as url:
        page.goto(url + "/")
        cell = page.wait_for_selector('#matrix span.TimedOut[data-src=app1][data-dst=rg1vm1][data-port="80"]')
        cell.click()
        page.wait_for_selector("#verdict .TimedOut")
        steps = page.inner_text("#steps")
        assert "rule deny-http (priority 100) Deny" in steps
        page.wait_for_function("document.querySelector('#picture').textContent.includes('deny-http')")
        page.screenshot(path=str(tmp_path / "denied.png"))


def test_a_change_through_the_api_shows_without_a_reload(tmp_path, page):
    with served(tmp_path) as url:
        page.goto(url + "/")
        page.wait_for_selector("#picture svg")
        assert "VNet vnet9" not in page.inner_text("#picture")
        page.evaluate("window.loadedOnce = true")
        vnet = {"location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": ["10.9.0.0/16"]},
                                                          "subnets": [{"name": "s1", "properties":
                                                                       {"addressPrefix": "10.9.1.0/24"}}]}}
        response = httpx.put(f"{url}{SUB}/resourceGroups/rg1/providers/Microsoft.Network/virtualNetworks/vnet9",
                             params={"api-version": "2024-07-01"}, json=vnet, verify=False, timeout=30)
        assert response.status_code == 201, response.text
        page.wait_for_function("document.querySelector('#picture').textContent.includes('VNet vnet9')")
        assert page.evaluate("window.loadedOnce") is True     # the same page: no reload
        page.screenshot(path=str(tmp_path / "changed.png"))

