"""``vnetlab``: describe Azure networking in YAML, ask what Azure would do, and why.

Every command takes ``--home DIR`` (or ``VNETLAB_HOME``; default ``./.vnetlab``) and
``-o table|json``. A validation failure prints Azure's error code and message and exits 2.
"""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from typer.core import TyperGroup
from pydantic import ValidationError

from ..engine.routing import peering_state
from ..engine.gateways import connection_status
from ..engine.security import flow_protocol
from ..lab import Lab, web_app
from ..model import AzureError, ResourceNotFound, SecurityRule, Topology
from ..model.errors import EmulationNotRunning, InvalidArgumentValue, LabNotFound
from ..model.ids import DEFAULT_SUBSCRIPTION
from ..topology import load, pydantic_error, schema as topology_schema
from .inbound import access_restriction, restart as webapp_restart, start as webapp_start, stop as webapp_stop
from .inbound import update as webapp_update
from .progress import Bar, wanted as progress_wanted
from .render import Output, console, err_console, matrix_table, print_json, resolution_lines, table, trace_table


def fail(exc: AzureError) -> None:
    err_console.print(f"[bold red]ERROR[/]: ({exc.code}) {exc.message}")
    raise typer.Exit(getattr(exc, "exit_code", 2))  # 1: done, but not all of it worked (services)


class Commands(TyperGroup):
    """The top level: any Azure error a command lets through, a backend failure (``BackendError``)
    included, is printed as ``ERROR: (code) message`` with exit status 2, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except AzureError as exc:
            fail(exc)


class Cli(typer.Typer):
    """The console script (``vnetlab``): when the command is done, the process ends without freeing its
    heap object by object (a large lab's millions of objects took half a second at exit). Tests call
    the commands through CliRunner, which does not come here."""

    def __call__(self, *args, **kwargs):
        try:
            super().__call__(*args, **kwargs)
            code = 0
        except SystemExit as done:
            code = done.code
        exit_now(code)


def exit_now(code) -> None:
    """``sys.exit(code)`` without the interpreter's teardown: what it would print and return, the
    streams flushed first."""
    if code is not None and not isinstance(code, int):
        sys.stderr.write(f"{code}\n")
        code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):  # the reader is gone or the stream closed: as at a normal exit
        code = code or 120
    os._exit(code or 0)


app = Cli(cls=Commands, help="A local lab for Azure virtual networking and App Service VNet integration.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
webapp = typer.Typer(help="App Service web apps, with az's words.", no_args_is_help=True)
integration = typer.Typer(help="Regional VNet integration (az webapp vnet-integration).", no_args_is_help=True)
config = typer.Typer(help="Site configuration (az webapp config).", no_args_is_help=True)
network = typer.Typer(help="Virtual networks and network security groups, with az's words.", no_args_is_help=True)
network_vnet = typer.Typer(help="Virtual networks (az network vnet).", no_args_is_help=True)
network_nsg = typer.Typer(help="Network security groups (az network nsg).", no_args_is_help=True)
nsg_rule = typer.Typer(help="Security rules (az network nsg rule).", no_args_is_help=True)
app.add_typer(network, name="network")
network.add_typer(network_vnet, name="vnet")
network.add_typer(network_nsg, name="nsg")
network_nsg.add_typer(nsg_rule, name="rule")
app.add_typer(webapp, name="webapp")
webapp.add_typer(integration, name="vnet-integration")
webapp.add_typer(config, name="config")
config.add_typer(access_restriction, name="access-restriction")
webapp.command("update")(webapp_update)
webapp.command("stop")(webapp_stop)
webapp.command("start")(webapp_start)
webapp.command("restart")(webapp_restart)

HomeOpt = typer.Option(None, "--home", envvar="VNETLAB_HOME", help="Lab directory (default ./.vnetlab).")
OutOpt = typer.Option(Output.table, "-o", "--output", help="table or json.")


# -- lifecycle -------------------------------------------------------------------------------
@app.command()
def up(file: Path = typer.Argument(..., help="Topology YAML."),
       backend: Optional[str] = typer.Option(None, "--backend", help="sim (default) or netns (Linux, root)."),
       replace: bool = typer.Option(False, "--replace", help="Replace a running lab of another name."),
       home: Optional[Path] = HomeOpt, output: Output = OutOpt):
    """Create the lab from FILE, or reconcile it with FILE (running it twice changes nothing)."""
    lab = Lab.open(home)
    before = lab.store.version()
    kernel_before = _kernel_changes(lab) if "netns" in (backend, lab.backend_name) else None
    topo = _up_with_progress(lab, file, backend, replace, output)
    summary = {"lab": topo.name, "backend": lab.backend_name, "changed": lab.store.version() != before,
               "resources": {k: len(getattr(topo, k)) for k in ("virtual_networks", "network_security_groups",
                                                                "route_tables", "virtual_machines",
                                                                "app_service_plans", "web_apps")}}
    if lab.backend_name == "netns":
        now = _kernel_changes(lab)
        ran = now is not None and now != kernel_before
        summary["kernel"] = {k: (now[k] if ran else []) for k in ("created", "changed", "restarted", "removed")}
    if output == Output.json:
        print_json(summary)
    else:
        counts = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in summary["resources"].items())
        console.print(f"Lab [bold]{topo.name}[/] is up ({lab.backend_name}): {counts}.")
        if "kernel" in summary:
            console.print(_render_changes(summary["kernel"]), markup=False, highlight=False)


def _kernel_changes(lab: Lab) -> dict | None:
    """What the emulation's last apply changed (its record in the store)."""
    from ..backends import netns_backend
    return netns_backend.last_changes(lab)


def _render_changes(changes: dict) -> str:
    def part(word: str, names: list[str]) -> str:
        shown = ", ".join(names[:8]) + (f", ... ({len(names) - 8} more)" if len(names) > 8 else "")
        return f"{word} {len(names)}" + (f" ({shown})" if names else "")
    if not any(changes.values()):
        return "Kernel: nothing changed."
    return "Kernel: " + "; ".join(part(w, changes[w]) for w in ("created", "changed", "restarted", "removed")) + "."


@app.command()
def down(home: Optional[Path] = HomeOpt, output: Output = OutOpt):
    """Delete the lab (and everything its backend built)."""
    lab = Lab.open(home)
    existed = lab.down()
    if output == Output.json:
        print_json({"deleted": existed})
    else:
        console.print("Lab deleted." if existed else "No lab here.")


UP_STAGES = {"checking": "Checking it against Azure's rules", "saving": "Saving it",
             "building": "Building it"}


def _up_with_progress(lab: Lab, file: Path, backend: Optional[str], replace: bool, output: Output) -> Topology:
    """`up` with a bar of its stages on a terminal: reading FILE, then the lab's own stages."""
    with Bar(progress_wanted(output), f"Reading {file.name}", total=len(UP_STAGES) + 1) as bar:
        bar.stage(f"Reading {file.name}")
        desired = load(file)
        return lab.up(desired, backend, replace, stage=lambda name: bar.stage(UP_STAGES[name]))


# -- looking -------------------------------------------------------------------------------------
def describe(lab: Lab) -> list[dict]:
    topo, net = lab.topology(), lab.network()
    out = [{"type": "Microsoft.Resources/resourceGroups", "name": g.name, "id": topo.group_id(g.name),
            "properties": {"location": g.location or topo.location}} for g in topo.resource_groups]
    types = {"virtual_networks": "Microsoft.Network/virtualNetworks",
             "network_security_groups": "Microsoft.Network/networkSecurityGroups",
             "route_tables": "Microsoft.Network/routeTables",
             "network_interfaces": "Microsoft.Network/networkInterfaces",
             "virtual_machines": "Microsoft.Compute/virtualMachines",
             "app_service_plans": "Microsoft.Web/serverfarms", "web_apps": "Microsoft.Web/sites",
             "virtual_network_gateways": "Microsoft.Network/virtualNetworkGateways",
             "local_network_gateways": "Microsoft.Network/localNetworkGateways",
             "connections": "Microsoft.Network/connections"}
    for kind, arm_type in types.items():
        for res in getattr(topo, kind):
            props = res.model_dump(mode="json", exclude={"name"})
            props["location"] = topo.location_of(res)
            props["resource_group"] = topo.rg_of(res)
            if kind == "virtual_networks":
                for sn in props["subnets"]:
                    sn["id"] = topo.subnet_id(f"{res.name}/{sn['name']}")
                    if topo.apps_integrated_with(res.name, sn["name"]):
                        sn["service_association_links"] = [sn["id"] + "/serviceAssociationLinks/AppServiceLink"]
                for p, peering in zip(props["peerings"], res.peerings, strict=True):
                    p["peering_state"] = peering_state(topo, res, peering)
            if kind == "web_apps":
                sb = net.sandbox(res)
                props["outbound_ip_address"] = str(sb.outbound_ip)
                ips = net.integration.get((res.plan.lower(), (res.vnet_integration or "").lower()), [])
                props["integration_ip_addresses"] = [str(ip) for ip in ips]
                props["route_all_effective"] = res.route_all
            if kind == "connections":
                props["connection_status"] = connection_status(topo, res)
            out.append({"type": arm_type, "name": res.name, "id": topo.id_of(kind, res), "properties": props})
    return out


@app.command()
def show(name: Optional[str] = typer.Argument(None, help="Only resources with this name."),
         home: Optional[Path] = HomeOpt, output: Output = OutOpt):
    """Resources with their ids and properties."""
    lab = Lab.open(home)
    items = describe(lab)
    if name:
        items = [i for i in items if i["name"].lower() == name.lower()]
        if not items:
            raise ResourceNotFound(f"No resource named '{name}' in the lab.")
    if output == Output.json:
        print_json(items)
        return
    for item in items:
        console.print(f"[bold]{item['type']}[/] {item['name']}\n  id: {item['id']}")
        for key, value in item["properties"].items():
            if value not in (None, [], {}, ""):
                console.print(f"  {key}: {value}")


@app.command()
def resolve(source: str = typer.Argument(..., help="VM or web app name."),
            name: str = typer.Argument(..., help="The name to look up, e.g. acct1.blob.core.windows.net."),
            home: Optional[Path] = HomeOpt, output: Output = OutOpt):
    """What `nslookup NAME` in SOURCE gets: the server asked, each alias, the addresses (or NXDOMAIN, or
    no answer), and why. Exit 0 when the name resolves, 1 otherwise."""
    result = Lab.open(home).resolve(source, name).to_dict()
    if output == Output.json:
        print_json(result)
    else:
        for line in resolution_lines(result):
            typer.echo(line)  # nslookup's tabs, as they are
    raise typer.Exit(0 if result["outcome"] == "NoError" else 1)


@app.command()
def check(source: str = typer.Argument(..., help="VM, web app, on-premises host, internet host, or 'internet' (a "
                                                "client on the internet, see --from)."),
          destination: str = typer.Argument(..., help="Name or IP address."),
          port: Optional[int] = typer.Option(None, "--port", "-p"),
          protocol: str = typer.Option("Tcp", "--protocol", help="Tcp, Udp or Icmp."),
          source_ip: Optional[str] = typer.Option(None, "--from", help="internet: the client's public address "
                                                  "(default: the first internet host's)."),
          headers: list[str] = typer.Option([], "--header", help="An HTTP request header NAME=VALUE (repeat), "
                                            "e.g. x-forwarded-for=203.0.113.7: web apps' access restrictions."),
          compare: bool = typer.Option(False, "--compare", help="netns: show the engine's and the real verdict."),
          home: Optional[Path] = HomeOpt, output: Output = OutOpt):
    """Can SOURCE reach DESTINATION? The trace, hop by hop. Exit 0 when Connected, 1 otherwise."""
    lab = Lab.open(home)
    if flow_protocol(protocol) != "Icmp" and port is None:
        port = 80
    result = lab.trace(source, destination, port, protocol, _headers(headers), source_ip).to_dict()
    observed = None
    if lab.backend_name == "netns" and result["flow"]["destination_ip"]:  # a name that did not resolve: no packet
        from ..backends import netns_backend
        if netns_backend.apply_unfinished(lab):
            err_console.print("[yellow]WARNING[/]: the last apply to the kernel did not finish (was it killed?): "
                              "the kernel may not match the lab. Run `vnetlab up FILE` again.")
        observed = netns_backend.probe(lab, result)
        result["observed"] = observed
        result["agree"] = observed["verdict"] == result["verdict"]
    if output == Output.json:
        print_json(result)
    else:
        trace_table(result)
        if observed is not None:
            mark = "agrees" if result["agree"] else "[bold red]DISAGREES[/]"
            console.print(f"Observed on the real kernel: {observed['verdict']} ({observed.get('detail', '')}) "
                          f"- {mark} with the engine.")
    final = observed["verdict"] if observed is not None and not compare else result["verdict"]
    raise typer.Exit(0 if final == "Connected" else 1)


def _headers(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise InvalidArgumentValue(f"--header takes NAME=VALUE, not '{item}'.")
        out[name.strip().lower()] = value.strip()
    return out


@app.command()
def routes(name: str = typer.Argument(..., help="Web app (its sandbox's kernel table) or VM (Azure's effective routes)."),
           home: Optional[Path] = HomeOpt, output: Output = OutOpt):
    """A web app's sandbox table as `route -n` prints it, or a VM's effective routes."""
    lab = Lab.open(home)
    topo, net = lab.topology(), lab.network()
    app_ = topo.find("web_apps", name)
    if app_ is not None:
        sb = net.sandbox(app_)
        if output == Output.json:
            print_json({"web_app": app_.name, "interfaces": [vars(i) for i in sb.interfaces],
                        "routes": [{"destination": r.destination, "gateway": r.gateway, "iface": r.iface,
                                    "flags": r.flags} for r in sb.routes]})
        else:
            sys.stdout.write(sb.route_n())
        return
    ep = net.endpoint(name)
    if ep.nic is None:
        raise ResourceNotFound(f"'{name}' is not a VM, network interface or web app.")
    view = net.subnet_view(ep.nic.subnet)
    if output == Output.json:
        print_json({"network_interface": ep.nic.name, "subnet": view.ref, "value": [r.to_dict() for r in view.routes]})
        return
    table(f"Effective routes of {ep.nic.name} (subnet {view.ref})",
          ["Source", "State", "Address prefix", "Next hop type", "Next hop IP"],
          [[r.source, r.state, r.address_prefix, r.next_hop_type, r.next_hop_ip or ""] for r in view.routes])


@app.command()
def matrix(ports: str = typer.Option("22,80,443", "--ports", help="Comma-separated TCP ports; icmp for ping."),
           expand: bool = typer.Option(False, "--expand", help="Also every pair of endpoints by name."),
           paas: bool = typer.Option(False, "--paas", help="Also the PaaS endpoints (public addresses and private "
                                     "endpoints) as destinations."),
           backend: Optional[str] = typer.Option(None, "--backend",
                                                 help="netns: also probe each class pair on the running emulation."),
           home: Optional[Path] = HomeOpt, output: Output = OutOpt):
    """Reachability between every pair of endpoints (VMs and web apps), grouped in classes of
    endpoints that answer alike. JSON: classes with members, class-to-class cells (docs in README).
    With --backend netns: exit 1 when a real probe disagrees with the engine."""
    from ..lab import check_backend
    lab = Lab.open(home)
    if backend is not None:
        check_backend(backend)
    port_list = [p.strip() for p in ports.split(",") if p.strip()]
    with Bar(progress_wanted(output), "Compiling the lab") as bar:
        def traced(done: int, total: int) -> None:
            bar.update(done, total, "Tracing class pairs")
        result = lab.matrix(port_list, expand, traced, paas)
    if backend == "netns":
        from ..backends import netns_backend
        if netns_backend.apply_unfinished(lab):
            err_console.print("[yellow]WARNING[/]: the last apply to the kernel did not finish (was it killed?): "
                              "the kernel may not match the lab. Run `vnetlab up FILE` again.")
        result = netns_backend.observe_matrix(lab, result)
    if output == Output.json:
        print_json(result, compact=True)
    else:
        matrix_table(result)
    raise typer.Exit(1 if result.get("agree") is False else 0)


def _stored_lab(home: Path) -> Topology | None:
    """The lab stored at ``home`` (a lab's directory), None when there is none; nothing is created."""
    if not (home / "lab.db").is_file():
        return None
    lab = Lab.open(home)
    return lab.topology() if lab.exists() else None


def _existing_lab(home: Path) -> Topology:
    topo = _stored_lab(home)
    if topo is None:
        raise LabNotFound(f"There is no lab at {home}: run `vnetlab up FILE --home {home}` first.")
    return topo


def _diff_labs(home: Path, new: Optional[Path], against: Optional[Path], replace: bool):
    """(the lab before, the lab after): before is --against (a file, brought up on nothing, or a lab's
    directory) or the lab at --home (None: no lab yet); after is NEW (a file, checked as `up` would
    check it against the lab before, or a lab's directory) or the lab at --home."""
    from ..lab import preview
    if new is None and against is None:
        raise InvalidArgumentValue("Give the changed lab (NEW.yaml) or a lab to compare with "
                                   "(--against FILE_OR_LAB_HOME).")
    if against is None:
        old = _stored_lab(home)
    elif against.is_dir():
        old = _existing_lab(against)
    else:
        old = preview(load(against), None)
    if new is None:
        return old, _existing_lab(home)
    if new.is_dir():
        return old, _existing_lab(new)
    return old, preview(load(new), old, replace)


@app.command()
def diff(new: Optional[Path] = typer.Argument(None, help="The changed lab: a topology file or a lab's directory."),
         against: Optional[Path] = typer.Option(None, "--against", help="Compare with this lab (a topology file or "
                                                "a lab's directory) instead of the lab at --home."),
         ports: str = typer.Option("22,80,443", "--ports", help="Comma-separated TCP ports; icmp, udp/53."),
         replace: bool = typer.Option(False, "--replace", help="NEW names another lab than the one it replaces."),
         home: Optional[Path] = HomeOpt, output: Output = OutOpt):
    """What would this change do? Resources (Create, Delete, Modify, NoChange) and the reachability that
    changes, without applying anything. Exit 0 when no path changes, 1 when some do, 2 for bad input."""
    from ..engine.whatif import what_if
    from ..store import resolve_home
    port_list = [p.strip() for p in ports.split(",") if p.strip()]
    old, new_topo = _diff_labs(resolve_home(home), new, against, replace)
    result = what_if(old, new_topo, port_list)
    if output == Output.json:
        print_json(result.to_dict())
    else:
        _whatif_table(result)
    raise typer.Exit(1 if result.breaks_paths else 0)


class ExportFormat(str, Enum):
    yaml = "yaml"
    json = "json"


@app.command()
def export(fmt: ExportFormat = typer.Option(ExportFormat.yaml, "-o", "--output", help="yaml or json."),
           home: Optional[Path] = HomeOpt):
    """The lab as a topology file (addresses and states included): `vnetlab up` of it gives the same lab."""
    from ..store import resolve_home
    from ..topology import dump, export_doc
    topo = _existing_lab(resolve_home(home))
    if fmt == ExportFormat.json:
        print_json(export_doc(topo))
    else:
        sys.stdout.write(dump(topo))


@app.command("import")
def import_(files: list[Path] = typer.Argument(..., help="ARM templates, az ... list / az resource list / az graph "
                                               "query outputs (JSON), a vnetlab topology file: any mix."),
            name: Optional[str] = typer.Option(None, "--name", help="The lab's name (default: a topology file's, "
                                               "else the first file's name)."),
            resource_group: str = typer.Option("rg1", "--resource-group", "-g",
                                               help="The group templates deploy into (ids name their own)."),
            location: Optional[str] = typer.Option(None, "--location", "-l",
                                                   help="The templates' group location (default: the resources')."),
            parameters: list[str] = typer.Option([], "--parameters", "-p",
                                                 help="Template parameters: @file.json or NAME=VALUE (repeatable)."),
            backend: Optional[str] = typer.Option(None, "--backend", help="sim (default) or netns (Linux, root)."),
            replace: bool = typer.Option(False, "--replace", help="Replace a running lab of another name."),
            home: Optional[Path] = HomeOpt, output: Output = OutOpt):
    """Build the lab from what Azure exports: each resource read as the ARM endpoint reads it. Types vnetlab
    does not model are listed and skipped; references to resources not in the files are reported and dropped."""
    from ..api import estate
    lab = Lab.open(home)
    with Bar(progress_wanted(output), "Reading the files", total=None) as bar:
        sources = estate.read(files)
        params = estate.parameters_from(parameters)
        default = None if sources.base is not None else files[0].name.split(".")[0]  # a topology file's own name
        topo, report = _import_with_progress(lab, sources, name or default, resource_group, location, params,
                                             backend, replace, bar)
    if output == Output.json:
        print_json({"lab": topo.name, **report.to_dict()})
    else:
        _import_table(topo, report)


def _import_with_progress(lab: Lab, sources, name: Optional[str], resource_group: str, location: Optional[str], params: dict,
                          backend: Optional[str], replace: bool, bar: Bar):
    from ..api import estate, template
    scope = template.Scope(DEFAULT_SUBSCRIPTION, resource_group, location or "westeurope")
    total = sources.resources(scope, params)
    bar.update(completed=0, total=total + len(UP_STAGES), description="Reading the resources")
    topo, report = estate.build(sources, name, resource_group, location, params, progress=lambda _id: bar.advance())

    def stage(name: str) -> None:
        bar.update(description=UP_STAGES[name])
        bar.advance()

    lab.up(topo, backend, replace, stage=stage)
    return lab.topology(), report


def _import_table(topo: Topology, report) -> None:
    counts = ", ".join(f"{len(getattr(topo, k))} {k.replace('_', ' ')}" for k in
                       ("virtual_networks", "network_security_groups", "route_tables", "virtual_machines",
                        "app_service_plans", "web_apps"))
    console.print(f"Lab [bold]{topo.name}[/] imported: {len(report.imported)} resources read ({counts}).")
    if report.skipped:
        console.print(f"Skipped {sum(map(len, report.skipped.values()))} resources of types vnetlab does not model:")
        for type_, ids in sorted(report.skipped.items()):
            console.print(f"  {type_} ({len(ids)})", markup=False, highlight=False)
    for r in report.refused:
        console.print(f"Refused {r.id}: ({r.code}) {r.message}", markup=False, highlight=False)
    for m in report.missing:
        what = "reference dropped" if m.dropped == "reference" else "resource left out"
        console.print(f"Not in the files: {m.id}, referenced by {m.by} ({what}).", markup=False, highlight=False)


def _whatif_table(result) -> None:
    symbol = {"Create": "+", "Delete": "-", "Modify": "~", "NoChange": "="}
    counts: dict[str, int] = {}
    for c in result.changes:
        counts[c.change_type] = counts.get(c.change_type, 0) + 1
        if c.change_type == "NoChange":
            continue
        console.print(f"{symbol[c.change_type]} {c.change_type} {c.type} {c.name}", markup=False)
        for p in c.delta:
            console.print(f"    {symbol[p.change_type]} {p.path}: {p.before!r} => {p.after!r}", markup=False)
    console.print("Resource changes: " + ", ".join(f"{counts.get(k, 0)} to {k.lower()}" if k != "NoChange" else
                                                  f"{counts.get(k, 0)} no change"
                                                  for k in ("Create", "Delete", "Modify", "NoChange")) + ".")
    for name in result.endpoints_added:
        console.print(f"+ endpoint {name}", markup=False)
    for name in result.endpoints_removed:
        console.print(f"- endpoint {name} (its paths go)", markup=False)
    if not result.reachability:
        console.print(f"Reachability ({', '.join(result.ports)}): no verdict changes.")
        return
    console.print(f"Reachability ({', '.join(result.ports)}): {len(result.reachability)} changes.")
    for c in result.reachability:
        console.print(c.sentence(), markup=False)


@app.command()
def graph(fmt: Optional[str] = typer.Option(None, "-o", "--format",
                                            help="dot (default), mermaid, svg or png (svg and png need Graphviz)."),
          trace_flow: Optional[tuple[str, str]] = typer.Option(None, "--trace", metavar="SRC DST",
                                                               help="Draw this flow's trace over the lab."),
          port: Optional[int] = typer.Option(None, "--port", "-p"),
          protocol: str = typer.Option("Tcp", "--protocol", help="Tcp, Udp or Icmp."),
          output_file: Optional[Path] = typer.Option(None, "--output", help="Write to FILE (format from its suffix)."),
          home: Optional[Path] = HomeOpt):
    """A picture of the lab (VNets, subnets, VMs, NVAs, plans and apps, peerings, the internet),
    with --trace the traced path over it. Layout by Graphviz's dot."""
    from .. import graph as pictures
    lab = Lab.open(home)
    if fmt is None:
        suffix = output_file.suffix.lstrip(".").lower() if output_file else ""
        fmt = {"gv": "dot", "mmd": "mermaid"}.get(suffix, suffix if suffix in pictures.FORMATS else "dot")
    trace_dict = None
    if trace_flow:
        if flow_protocol(protocol) != "Icmp" and port is None:
            port = 80
        trace_dict = lab.trace(trace_flow[0], trace_flow[1], port, protocol).to_dict()
    data = pictures.draw(lab.network(), fmt.lower(), trace_dict)
    if output_file is not None:
        output_file.write_bytes(data)
        err_console.print(f"Wrote {output_file} ({fmt}).")
    elif fmt == "png" and sys.stdout.isatty():
        raise InvalidArgumentValue("A png is not text: write it with --output FILE.png.")
    else:
        sys.stdout.buffer.write(data) if fmt == "png" else sys.stdout.write(data.decode())


@app.command()
def schema():
    """JSON Schema of the topology file, for editors."""
    sys.stdout.write(topology_schema() + "\n")


# -- az's words --------------------------------------------------------------------------------------
def _resolve_subnet(vnet: str, subnet: str) -> tuple[str, str]:
    """(vnet, subnet) names from az's --vnet and --subnet, each a name or a resource id."""
    from ..model.ids import parse_id
    parsed = parse_id(subnet) if subnet.startswith("/") else None
    if parsed is not None:
        return parsed.names[0], parsed.names[-1]
    parsed = parse_id(vnet) if vnet.startswith("/") else None
    return (parsed.names[0] if parsed else vnet), subnet


@integration.command("add")
def integration_add(name: str = typer.Option(..., "--name", "-n"), vnet: str = typer.Option(..., "--vnet"),
                    subnet: str = typer.Option(..., "--subnet"),
                    skip_delegation_check: bool = typer.Option(False, "--skip-delegation-check"),
                    resource_group: Optional[str] = typer.Option(None, "--resource-group", "-g"),
                    home: Optional[Path] = HomeOpt, output: Output = OutOpt):
    """Integrate a web app with a subnet (delegating it to Microsoft.Web/serverFarms if needed)."""
    lab = Lab.open(home)
    vnet_name, subnet_name = _resolve_subnet(vnet, subnet)
    topo = lab.integrate(name, f"{vnet_name}/{subnet_name}", delegate=not skip_delegation_check)
    _print_integrations(lab, topo, name, output)


@integration.command("remove")
def integration_remove(name: str = typer.Option(..., "--name", "-n"),
                       resource_group: Optional[str] = typer.Option(None, "--resource-group", "-g"),
                       home: Optional[Path] = HomeOpt, output: Output = OutOpt):
    """Disconnect a web app from its VNet. The subnet and its delegation stay."""
    lab = Lab.open(home)
    lab.disconnect(name)
    if output == Output.json:
        print_json({"removed": True})


@integration.command("list")
def integration_list(name: str = typer.Option(..., "--name", "-n"),
                     resource_group: Optional[str] = typer.Option(None, "--resource-group", "-g"),
                     home: Optional[Path] = HomeOpt, output: Output = OutOpt):
    """The web app's VNet integration, as az lists it."""
    lab = Lab.open(home)
    _print_integrations(lab, lab.topology(), name, output)


def _print_integrations(lab: Lab, topo: Topology, name: str, output: Output) -> None:
    app_ = topo.find("web_apps", name)
    if app_ is None:
        raise ResourceNotFound(type="Microsoft.Web/sites", name=name, group=topo.resource_group)
    items = []
    if app_.vnet_integration:
        vnet_name = app_.vnet_integration.split("/")[0]
        vnet_ = topo.vnet(vnet_name)
        items.append({"name": vnet_name, "vnetResourceId": topo.subnet_id(app_.vnet_integration),
                      "isSwift": True, "resourceGroup": topo.rg_of(app_),
                      "type": "Microsoft.Web/sites/virtualNetworkConnections",
                      "addressPrefixes": list(vnet_.address_space) if vnet_ else [],
                      "routeAll": app_.route_all})
    if output == Output.json:
        print_json(items)
    else:
        table(f"VNet integration of {app_.name}", ["Name", "Subnet id", "Route all"],
              [[i["name"], i["vnetResourceId"], i["routeAll"]] for i in items])


@config.command("set")
def config_set(name: str = typer.Option(..., "--name", "-n"),
               vnet_route_all_enabled: Optional[str] = typer.Option(None, "--vnet-route-all-enabled",
                                                                   help="true or false, as az takes it."),
               resource_group: Optional[str] = typer.Option(None, "--resource-group", "-g"),
               home: Optional[Path] = HomeOpt, output: Output = OutOpt):
    """Set site configuration; here, vnetRouteAllEnabled."""
    lab = Lab.open(home)
    value = None if vnet_route_all_enabled is None else vnet_route_all_enabled.strip().lower()
    if value not in (None, "true", "false"):
        raise InvalidArgumentValue(f"--vnet-route-all-enabled takes true or false, not "
                                   f"'{vnet_route_all_enabled}'.")

    if value is None:
        topo = lab.topology()
        web_app(topo, name)
    else:
        topo = lab.set_route_all(name, value == "true")
    app_ = topo.find("web_apps", name)
    result = {"name": app_.name, "vnetRouteAllEnabled": app_.route_all}
    if output == Output.json:
        print_json(result)
    else:
        console.print(f"{app_.name}: vnetRouteAllEnabled = {str(app_.route_all).lower()}")


@network_vnet.command("delete")
def vnet_delete(name: str = typer.Option(..., "--name", "-n"),
                resource_group: Optional[str] = typer.Option(None, "--resource-group", "-g"),
                home: Optional[Path] = HomeOpt, output: Output = OutOpt):
    """Delete a virtual network (the remote VNets' peerings to it stay, Disconnected)."""
    lab = Lab.open(home)
    lab.delete_vnet(name)
    if output == Output.json:
        print_json({"deleted": True})


def _values(text: str) -> list[str]:
    """az takes several values after one option, space-separated; commas work too."""
    return [v for v in text.replace(",", " ").split() if v]


def _rule(name: str, priority: int, direction: str, access: str, protocol: str, sources: str, source_ports: str,
          destinations: str, destination_ports: str) -> SecurityRule:
    """The rule as az sends it: one value in the singular property, several in the plural one."""
    fields: dict = {"name": name, "priority": priority, "direction": direction, "access": access,
                    "protocol": protocol}
    for single, plural, text in (("source_address_prefix", "source_address_prefixes", sources),
                                 ("source_port_range", "source_port_ranges", source_ports),
                                 ("destination_address_prefix", "destination_address_prefixes", destinations),
                                 ("destination_port_range", "destination_port_ranges", destination_ports)):
        values = _values(text)
        fields.update({single: values[0]} if len(values) == 1 else {plural: values})
    try:
        return SecurityRule(**fields)
    except ValidationError as exc:
        raise pydantic_error(exc) from None


@nsg_rule.command("create")
def nsg_rule_create(nsg_name: str = typer.Option(..., "--nsg-name"), name: str = typer.Option(..., "--name", "-n"),
                    priority: int = typer.Option(..., "--priority"),
                    direction: str = typer.Option("Inbound", "--direction"),
                    access: str = typer.Option("Allow", "--access"),
                    protocol: str = typer.Option("*", "--protocol"),
                    source_address_prefixes: str = typer.Option("*", "--source-address-prefixes"),
                    source_port_ranges: str = typer.Option("*", "--source-port-ranges"),
                    destination_address_prefixes: str = typer.Option("*", "--destination-address-prefixes"),
                    destination_port_ranges: str = typer.Option("80", "--destination-port-ranges"),
                    resource_group: Optional[str] = typer.Option(None, "--resource-group", "-g"),
                    home: Optional[Path] = HomeOpt, output: Output = OutOpt):
    """Add a security rule to an NSG (or replace the rule of that name), with az's defaults."""
    lab = Lab.open(home)
    rule = _rule(name, priority, direction, access, protocol, source_address_prefixes,
                             source_port_ranges, destination_address_prefixes, destination_port_ranges)
    lab.set_security_rule(nsg_name, rule)
    if output == Output.json:
        print_json(rule.model_dump(mode="json", exclude_defaults=True))
    else:
        console.print(f"{nsg_name}: rule {rule.name} ({rule.direction}, {rule.priority}, {rule.access}) set.")


@app.command()
def demo(chapter: str = typer.Argument("note", help="note (the field note's story) or private-endpoint "
                                                       "(Key Vault's private link diagnostics page)."),
         home: Optional[Path] = HomeOpt,
         backend: str = typer.Option("sim", "--backend", help="sim, or netns to run it on a real kernel (note only)."),
         output: Output = OutOpt):
    """The note's story on examples/app-service-vnet-integration.yaml, beside what the note observed;
    `demo private-endpoint`: a key vault behind a private endpoint, beside the docs' nslookup outputs."""
    from .demo import run_demo
    if chapter not in ("note", "private-endpoint"):
        raise InvalidArgumentValue(f"Unknown demo chapter {chapter!r}: the chapters are note and private-endpoint.")
    code = run_demo(home, backend, output == Output.json, chapter)
    raise typer.Exit(code or 0)

# -- emulation (netns) ---------------------------------------------------------------------------
def _netns_lab(home) -> Lab:
    lab = Lab.open(home)
    if lab.backend_name != "netns":
        raise EmulationNotRunning("This lab is not emulated: run `vnetlab up FILE --backend netns` first.")
    return lab


@app.command("exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def exec_(ctx: typer.Context, name: str = typer.Argument(..., help="VM, web app, internet host or VNet (fabric)."),
          home: Optional[Path] = HomeOpt):
    """Run a real command in an endpoint's namespace: vnetlab exec app1 -- route -n. Exits with its status."""
    import subprocess
    from ..backends import netns_backend
    from ..backends.netns.kernel import ns_exec_argv
    argv = list(ctx.args)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise AzureError("Give a command after --, e.g. vnetlab exec app1 -- route -n", "InvalidArgument")
    lab = _netns_lab(home)
    ns = netns_backend.namespace_of(lab, name)
    raise typer.Exit(subprocess.call(ns_exec_argv(ns, argv)))


@app.command()
def capture(name: str = typer.Argument(..., help="VM, web app, internet host or VNet (fabric)."),
            filter_expr: Optional[str] = typer.Option(None, "--filter", "-f", help="tcpdump filter, e.g. icmp."),
            count: Optional[int] = typer.Option(None, "-c", "--count", help="Stop after N packets."),
            write: Optional[Path] = typer.Option(None, "--write", "-w", help="Also save the packets as pcap."),
            iface: str = typer.Option("any", "--iface", "-i"),
            home: Optional[Path] = HomeOpt):
    """tcpdump in an endpoint's namespace: vnetlab capture rg1vm1 --filter icmp -c 4"""
    import shlex
    from ..backends import netns_backend
    lab = _netns_lab(home)
    ns = netns_backend.namespace_of(lab, name)
    argv = ["tcpdump", "-nn", "-l", "-i", iface, "-Z", "root"]
    if count:
        argv += ["-c", str(count)]
    if write:
        argv += ["-w", str(write.resolve()), "--print"]
    if filter_expr:
        argv += shlex.split(filter_expr)
    # recorded while it runs (down/clean stop it), stopped with us however we end
    raise typer.Exit(netns_backend.capture_foreground(lab, ns, argv))


@app.command("ps")
def ps_(home: Optional[Path] = HomeOpt, output: Output = OutOpt):
    """Each resource's namespace, interfaces and processes (PID, state) in the emulation."""
    from ..backends import netns_backend
    lab = _netns_lab(home)
    rows = netns_backend.ps(lab)
    if output == Output.json:
        print_json(rows)
        return
    table("Emulation", ["RESOURCE", "KIND", "NAMESPACE", "INTERFACES", "PROCESSES"],
          [[r["resource"], r["kind"], r["namespace"] + ("" if r["exists"] else " (missing)"), " ".join(r["interfaces"]),
            "; ".join(f"{p['name']} pid {p['pid']} {p['state']}" + (f" ({p['reason']})" if p["reason"] else "")
                      for p in r["processes"])] for r in rows])


@app.command()
def logs(name: str = typer.Argument(..., help="VM, web app or internet host."), home: Optional[Path] = HomeOpt):
    """The output of NAME's services (the built-in responder, `command:` services)."""
    from ..backends import netns_backend
    lab = _netns_lab(home)
    found = netns_backend.logs(lab, name)
    if not found:
        console.print(f"No services run in {name}'s namespace.")
    for service, path, text in found:
        typer.echo(f"==> {service} ({path}) <==")
        typer.echo(text, nl=not text.endswith("\n") and bool(text))


@app.command()
def clean(home: Optional[Path] = HomeOpt, output: Output = OutOpt):
    """Remove what an emulated lab left behind (after a crash), by the store's records."""
    from ..backends import netns_backend
    lab = Lab.open(home)
    netns_backend.check()
    problems = netns_backend.clean(lab)
    if output == Output.json:
        print_json({"problems": problems})
    else:
        console.print("Cleaned." if not problems else "Cleaned, with problems: " + "; ".join(problems))
    raise typer.Exit(1 if problems else 0)


# -- ARM -------------------------------------------------------------------------------------------------
@app.command()
def serve(port: int = typer.Option(8443, "--port"), host: str = typer.Option("127.0.0.1", "--host"),
          backend: Optional[str] = typer.Option(None, "--backend", help="sim or netns (default: the lab's)."),
          require_token: Optional[str] = typer.Option(None, "--require-token",
                                                      help="Accept only this bearer token."),
          home: Optional[Path] = HomeOpt):
    """Serve the lab as a local ARM endpoint over HTTPS for the Azure SDK and az, and its web page at /."""
    from ..api import serve as serve_api
    from ..store import resolve_home
    lab = Lab.open(home)
    if backend is not None:
        lab.switch_backend(backend)
    serve_api(resolve_home(home), host, port, lab.backend_name, require_token)


@app.command()
def ui(port: int = typer.Option(8080, "--port"), home: Optional[Path] = HomeOpt):
    """Only the web page (read-only), over HTTP on 127.0.0.1: the picture, traces, the matrix."""
    import uvicorn
    from ..ui import page_app
    console.print(f"vnetlab page: http://127.0.0.1:{port}/")
    uvicorn.run(page_app(Lab.open(home)), host="127.0.0.1", port=port, log_level="warning")


@app.command("az-setup")
def az_setup(port: int = typer.Option(8443, "--port"), host: str = typer.Option("127.0.0.1", "--host"),
             az: str = typer.Option("az", "--az", help="The az executable."),
             write: Optional[Path] = typer.Option(None, "--write", help="Write the script to this file."),
             require_token: Optional[str] = typer.Option(None, "--require-token"),
             home: Optional[Path] = HomeOpt):
    """Print (or write) the script that points az at `vnetlab serve`: cloud, login, CA bundle, config dir."""
    from ..api import az_setup_for
    from ..store import resolve_home
    script = az_setup_for(resolve_home(home), host, port, az, require_token)
    if write:
        write.write_text(script)
        write.chmod(0o755)
        console.print(f"Wrote {write}: run `source {write}`.")
    else:
        sys.stdout.write(script)


def main():  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
