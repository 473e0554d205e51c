"""``vnetlab webapp config access-restriction add|remove|show|set`` and ``vnetlab webapp update --set``:
a web app's inbound side with az's words (the decisions are the Lab's verbs and the engine's)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from pydantic import ValidationError

from ..lab import Lab, web_app
from ..model.errors import InvalidArgumentValue
from ..model.web import RESTRICTION_HEADERS, IpSecurityRestriction
from ..topology import pydantic_error
from .render import Output, console, print_json, table

access_restriction = typer.Typer(help="Access restrictions (az webapp config access-restriction).",
                                 no_args_is_help=True)
HomeOpt = typer.Option(None, "--home", envvar="VNETLAB_HOME", help="Lab directory (default ./.vnetlab).")
OutOpt = typer.Option(Output.table, "-o", "--output", help="table or json.")
ScmOpt = typer.Option("false", "--scm-site", help="true: the scm (Kudu) site's rules.")
# a rule's options, as `az webapp config access-restriction add/remove` names them
RuleNameOpt = typer.Option(None, "--rule-name", "-r")
ActionOpt = typer.Option("Allow", "--action")
IpAddressOpt = typer.Option(None, "--ip-address")
ServiceTagOpt = typer.Option(None, "--service-tag")
SubnetOpt = typer.Option(None, "--subnet")
VnetNameOpt = typer.Option(None, "--vnet-name")
GroupOpt = typer.Option(None, "--resource-group", "-g")


def _flag(value: str | None, option: str) -> bool | None:
    if value is None:
        return None
    low = value.strip().lower()
    if low not in ("true", "false"):
        raise InvalidArgumentValue(f"{option} takes true or false, not '{value}'.")
    return low == "true"


def http_headers(items: list[str]) -> dict[str, list[str]]:
    """az's --http-headers NAME=VALUE ...: names among the four it takes, up to 8 values each (az's texts)."""
    out: dict[str, list[str]] = {}
    for item in items:
        parts = item.split("=")
        if len(parts) != 2:
            raise InvalidArgumentValue(f'Http headers must have a format of `<name>=<value>`: "{item}"')
        name, value = parts[0].strip().lower(), parts[1].strip()
        if name not in RESTRICTION_HEADERS:
            raise InvalidArgumentValue(f'Invalid http-header name: "{name}"')
        if value:
            out.setdefault(name, []).append(value)
    return out


def _subnet(subnet: str, vnet_name: str | None) -> str:
    """az's --subnet ID, or --subnet NAME with --vnet-name."""
    if subnet.startswith("/") and not vnet_name:
        return subnet
    if not subnet.startswith("/") and vnet_name:
        return f"{vnet_name}/{subnet}"
    raise InvalidArgumentValue("Please specify either: --subnet ID or (--subnet NAME and --vnet-name NAME)")


def _show(lab: Lab, name: str, output: Output) -> None:
    from ..api.web import restrictions_wire
    topo = lab.topology()
    result = restrictions_wire(topo, web_app(topo, name))
    if output == Output.json:
        print_json(result)
        return
    for key, title in (("ipSecurityRestrictions", "Main site"), ("scmIpSecurityRestrictions", "scm site")):
        table(f"{title} access restrictions", ["Priority", "Name", "Action", "Source", "Headers"],
              [[r["priority"], r.get("name") or "", r["action"], r.get("vnetSubnetResourceId") or r["ipAddress"],
                ", ".join(f"{k}={','.join(v)}" for k, v in (r.get("headers") or {}).items())] for r in result[key]])
    console.print(f"scmIpSecurityRestrictionsUseMain: {str(result['scmIpSecurityRestrictionsUseMain']).lower()}")


@access_restriction.command("show")
def show(name: str = typer.Option(..., "--name", "-n"),
         resource_group: Optional[str] = GroupOpt,
         home: Optional[Path] = HomeOpt, output: Output = OutOpt):
    """The main and scm sites' rules, each ending with the implicit Allow all / Deny all."""
    _show(Lab.open(home), name, output)


@access_restriction.command("add")
def add(name: str = typer.Option(..., "--name", "-n"), priority: int = typer.Option(..., "--priority"),
        rule_name: Optional[str] = RuleNameOpt, action: str = ActionOpt,
        ip_address: Optional[str] = IpAddressOpt, service_tag: Optional[str] = ServiceTagOpt,
        subnet: Optional[str] = SubnetOpt, vnet_name: Optional[str] = VnetNameOpt,
        headers: list[str] = typer.Option([], "--http-headers", "--http-header"),
        description: Optional[str] = typer.Option(None, "--description"),
        scm_site: str = ScmOpt,
        ignore_missing_endpoint: bool = typer.Option(False, "--ignore-missing-endpoint", "-i"),
        resource_group: Optional[str] = GroupOpt,
        home: Optional[Path] = HomeOpt, output: Output = OutOpt):
    """Add a rule; a --subnet rule gives the subnet the Microsoft.Web service endpoint first (as az)."""
    if sum(x is not None for x in (ip_address, service_tag, subnet)) != 1:
        raise InvalidArgumentValue("Please specify either: --subnet or --ip-address or --service-tag")
    fields = dict(name=rule_name, priority=priority, action=action, description=description,
                  headers=http_headers(headers))
    if subnet is not None:
        fields["vnet_subnet_resource_id"] = _subnet(subnet, vnet_name)
    else:
        fields.update(ip_address=ip_address or service_tag, tag="ServiceTag" if service_tag else "Default")
    try:
        rule = IpSecurityRestriction(**fields)
    except ValidationError as exc:
        raise pydantic_error(exc) from None
    lab = Lab.open(home)
    lab.add_access_restriction(name, rule, bool(_flag(scm_site, "--scm-site")), ignore_missing_endpoint)
    _show(lab, name, output)


@access_restriction.command("remove")
def remove(name: str = typer.Option(..., "--name", "-n"),
           rule_name: Optional[str] = RuleNameOpt, action: str = ActionOpt,
           ip_address: Optional[str] = IpAddressOpt, service_tag: Optional[str] = ServiceTagOpt,
           subnet: Optional[str] = SubnetOpt, vnet_name: Optional[str] = VnetNameOpt,
           scm_site: str = ScmOpt,
           resource_group: Optional[str] = GroupOpt,
           home: Optional[Path] = HomeOpt, output: Output = OutOpt):
    """Remove a rule by name and/or source; a Deny rule needs --action Deny (as az)."""
    if sum(x is not None for x in (ip_address, service_tag, subnet)) > 1:
        raise InvalidArgumentValue("Please specify either: --subnet or --ip-address or --service-tag")
    lab = Lab.open(home)
    lab.remove_access_restriction(name, bool(_flag(scm_site, "--scm-site")), action, rule_name=rule_name,
                                  ip_address=ip_address, service_tag=service_tag,
                                  subnet=_subnet(subnet, vnet_name) if subnet is not None else None)
    _show(lab, name, output)


@access_restriction.command("set")
def set_(name: str = typer.Option(..., "--name", "-n"),
         use_main: Optional[str] = typer.Option(None, "--use-same-restrictions-for-scm-site"),
         default_action: Optional[str] = typer.Option(None, "--default-action"),
         scm_default_action: Optional[str] = typer.Option(None, "--scm-default-action"),
         resource_group: Optional[str] = GroupOpt,
         home: Optional[Path] = HomeOpt, output: Output = OutOpt):
    """The scm site's use of the main rules, and each site's unmatched-rule action."""
    lab = Lab.open(home)
    lab.set_access_restrictions(name, _flag(use_main, "--use-same-restrictions-for-scm-site"), default_action,
                                scm_default_action)
    _show(lab, name, output)


def update(name: str = typer.Option(..., "--name", "-n"),
           settings: list[str] = typer.Option([], "--set", help="publicNetworkAccess=Enabled|Disabled"),
           resource_group: Optional[str] = GroupOpt,
           home: Optional[Path] = HomeOpt, output: Output = OutOpt):
    """`az webapp update --set publicNetworkAccess=Disabled`: the site's public endpoint."""
    lab = Lab.open(home)
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep or key.strip().lower() not in ("publicnetworkaccess", "properties.publicnetworkaccess"):
            raise InvalidArgumentValue(f"--set takes publicNetworkAccess=Enabled|Disabled here, not '{item}'.")
        lab.set_public_network_access(name, value.strip() or None)
    app = web_app(lab.topology(), name)
    result = {"name": app.name, "publicNetworkAccess": app.public_network_access}
    if output == Output.json:
        print_json(result)
    else:
        console.print(f"{app.name}: publicNetworkAccess = {app.public_network_access or 'unset'}")


def _power(action: str):
    def command(name: str = typer.Option(..., "--name", "-n"),
                resource_group: Optional[str] = GroupOpt,
                home: Optional[Path] = HomeOpt, output: Output = OutOpt):
        lab = Lab.open(home)
        lab.web_app_action(name, action)
        app = web_app(lab.topology(), name)
        if output == Output.json:
            print_json({"name": app.name, "state": app.state})
        else:
            console.print(f"{app.name}: {app.state}")
    command.__doc__ = {"stop": "`az webapp stop`: the app runs no code; its front end answers 403 Site Disabled "
                               "(\"Error 403 - This web app is stopped.\").",
                       "start": "`az webapp start`: the app answers again.",
                       "restart": "`az webapp restart`: a new process (a stopped app starts)."}[action]
    return command


stop, start, restart = (_power(a) for a in ("stop", "start", "restart"))
