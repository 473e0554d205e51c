"""App Service runtime stacks and a site's stop, start and restart.

- ``GET /providers/Microsoft.Web/webAppStacks``: the runtimes ``az webapp create --runtime``
  resolves (``PYTHON:3.12`` becomes ``linuxFxVersion: PYTHON|3.12``); Linux stacks that are
  supported today, with Azure's end-of-life dates (az hides the runtimes past them)
  https://learn.microsoft.com/rest/api/appservice/provider/get-web-app-stacks
  https://learn.microsoft.com/azure/app-service/language-support-policy
- ``POST sites/{app}/stop``, ``start``, ``restart``: the site's state (``WebApp.stop/start/restart``)
  https://learn.microsoft.com/rest/api/appservice/web-apps/stop
"""

from __future__ import annotations

from starlette.responses import Response

from .arm import Call, Router, json_response
from .state import LabState
from .web import SITES

# stack -> (display text, [(major, [(minor, runtime version, end of life)])])
_STACKS = {
    "python": ("Python", [("3", [("3.13", "PYTHON|3.13", "2029-10-31"), ("3.12", "PYTHON|3.12", "2028-10-31"),
                                 ("3.11", "PYTHON|3.11", "2027-10-31")])]),
    "node": ("Node", [("24", [("24 LTS", "NODE|24-lts", "2028-04-30")]), ("22", [("22 LTS", "NODE|22-lts",
                                                                                   "2027-04-30")])]),
    "dotnet": (".NET", [("10", [(".NET 10 (LTS)", "DOTNETCORE|10.0", "2028-11-14")])]),
    "php": ("PHP", [("8", [("PHP 8.4", "PHP|8.4", "2028-12-31"), ("PHP 8.3", "PHP|8.3", "2027-12-31")])]),
}


def _minor(text: str, runtime: str, eol: str) -> dict:
    version = runtime.split("|", 1)[1]
    return {"displayText": text, "value": version, "stackSettings": {"linuxRuntimeSettings": {
        "runtimeVersion": runtime, "remoteDebuggingSupported": False, "isHidden": False, "isDeprecated": False,
        "appInsightsSettings": {"isSupported": True}, "supportedFeatures": {},
        "gitHubActionSettings": {"isSupported": True, "supportedVersion": version},
        "endOfLifeDate": f"{eol}T00:00:00Z"}}}


def stacks_doc() -> dict:
    return {"value": [
        {"id": None, "name": name, "type": "Microsoft.Web/webAppStacks", "properties": {
            "displayText": display, "value": name, "preferredOs": "linux",
            "majorVersions": [{"displayText": f"{display} {major}", "value": major,
                               "minorVersions": [_minor(*m) for m in minors]} for major, minors in majors]}}
        for name, (display, majors) in _STACKS.items()]}


def web_app_stacks(call: Call) -> Response:
    os_type = call.request.query_params.get("stackOsType", "").lower()
    return json_response(stacks_doc() if os_type in ("", "linux", "all") else {"value": []})


def router(state: LabState) -> Router:
    r = Router()
    r.add("GET", "providers/Microsoft.Web/webAppStacks", web_app_stacks)
    r.add("GET", "providers/Microsoft.Web/locations/{loc}/webAppStacks", web_app_stacks)
    site = "subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.Web/sites/{name}"
    for action in ("stop", "start", "restart"):
        r.add("POST", f"{site}/{action}", SITES.action(state, action), blocking=True)
    return r
