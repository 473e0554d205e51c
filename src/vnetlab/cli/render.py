"""Printing answers: rich tables for people, JSON for programs (``-o json``)."""

from __future__ import annotations

import json
import sys
from enum import Enum

from rich.console import Console
from rich.table import Table

from ..wording import step_detail

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


class Output(str, Enum):
    table = "table"
    json = "json"


def print_json(data, compact: bool = False) -> None:
    """Indented for people; ``compact`` (no spaces) for large answers meant for programs."""
    text = json.dumps(data, separators=(",", ":"), default=str) if compact else json.dumps(data, indent=2, default=str)
    sys.stdout.write(text + "\n")


def table(title: str | None, columns: list[str], rows: list[list]) -> None:
    t = Table(title=title, show_lines=False, title_justify="left")
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*["" if v is None else str(v) for v in r])
    console.print(t)


VERDICT_STYLE = {"Connected": "bold green", "Refused": "bold yellow", "TimedOut": "bold red", "Unreachable": "bold red",
                 "NotResolved": "bold red", "Denied": "bold magenta"}


def trace_table(tr: dict, title: str | None = None) -> None:
    flow = tr["flow"]
    port = f":{flow['port']}" if flow.get("port") else ""
    console.print(f"{title or 'Flow'}: {flow['source']} ({flow['source_ip']}) -> {flow['destination']} "
                  f"({flow['destination_ip'] or 'not resolved'}{port}) {flow['protocol']}")
    rows = [[i + 1, s["kind"], s["action"], step_detail(s)] for i, s in enumerate(tr["steps"])]
    table(None, ["#", "Step", "Action", "Detail"], rows)
    if tr.get("return_path"):
        table("Return path", ["Step", "Action", "Detail"], [[s["kind"], s["action"], step_detail(s)]
                                                            for s in tr["return_path"]])
    style = VERDICT_STYLE.get(tr["verdict"], "bold")
    console.print(f"Verdict: [{style}]{tr['verdict']}[/] ({tr['reason']}: {tr['explanation']})")
    if tr.get("source_ip_seen"):
        console.print(f"Source address seen by the destination: {tr['source_ip_seen']}")
    admission = tr.get("admission")
    if admission and not admission["allowed"] and admission.get("text"):
        code = " ".join(str(x) for x in (admission.get("http_status"), admission.get("code")) if x)
        console.print(f"The service answered {code}: {admission['text']}", markup=False, highlight=False)


VERDICT_SHORT = {"Connected": "ok", "Refused": "ref", "TimedOut": "x", "Denied": "den"}


def _verdicts_text(verdicts: dict) -> str:
    return " ".join(f"{p}:{VERDICT_SHORT[v]}" for p, v in verdicts.items())


def _class_label(i: int, klass: dict) -> str:
    members = klass["members"]
    return f"#{i} {members[0]}" + (f" +{len(members) - 1}" if len(members) > 1 else "")


def matrix_table(result: dict) -> None:
    """The matrix grouped by class: the classes with their members; then, per source class and
    verdicts, the destination classes that answer so where it differs from the most common
    verdicts; then those."""
    classes = result["classes"]
    rows = []
    for i, klass in enumerate(classes):
        members = klass["members"]
        shown = ", ".join(members[:5]) + (f" (+{len(members) - 5} more)" if len(members) > 5 else "")
        rows.append([i, klass["kind"], klass["subnet"] or "", shown])
    table(f"{result['endpoints']} endpoints in {len(classes)} classes (members answer alike)",
          ["#", "Kind", "Subnet", "Members"], rows)
    ports = result["ports"]
    title = f"Reachability between classes ({', '.join(ports)}): ok=Connected, ref=Refused, x=TimedOut, den=Denied"
    if result.get("backend") == "netns":  # every class pair, probed: engine != real marks a disagreement
        cells = [[_class_label(c["source"], classes[c["source"]]), _class_label(c["destination"],
                  classes[c["destination"]])] + [_cell(c, k) for k in ports] for c in result["cells"]]
        table(title + ", engine != real", ["Source class", "Destination class"] + ports, cells)
        wrong = sum(1 for c in result["cells"] if not c["agree"])
        console.print(f"Probed on the real kernel: {len(cells)} class pairs, "
                      + ("all agree with the engine." if not wrong else f"[bold red]{wrong} DISAGREE[/] with the engine."))
    if result.get("pairs") is not None:
        table(title.replace("between classes", "between endpoints"), ["Source", "Destination"] + ports,
              [[p["source"], p["destination"]] + [VERDICT_SHORT[p["verdicts"][k]] for k in ports]
               for p in result["pairs"]])
        return
    if result.get("backend") == "netns":
        return
    by_source: dict[tuple[int, tuple[str, ...]], list[int]] = {}
    for c in result["cells"]:
        verdicts = tuple(VERDICT_SHORT[c["verdicts"][k]] for k in ports)
        by_source.setdefault((c["source"], verdicts), []).append(c["destination"])
    rows = [[_class_label(i, classes[i]), *verdicts, ", ".join(f"#{j}" for j in dests)]
            for (i, verdicts), dests in by_source.items()]
    if rows:
        table(title, ["Source class", *ports, "Destination classes"], rows)
    console.print(f"{'Every other pair' if rows else 'Every pair'} of endpoints: {_verdicts_text(result['default'])}")


def _cell(cell: dict, port: str) -> str:
    """A cell's verdict; with a real probe that disagrees, ``engine != real`` in red."""
    engine = VERDICT_SHORT.get(cell["verdicts"][port], cell["verdicts"][port])
    real = cell.get("observed", {}).get(port)
    if real is None or real == cell["verdicts"][port]:
        return engine
    return f"[bold red]{engine} != {VERDICT_SHORT.get(real, real)}[/]"


def resolution_lines(res: dict) -> list[str]:
    """A resolution as Linux ``nslookup`` prints it, then why, one line per step."""
    server = res["server"] or (res["servers"][0] if res["servers"] else "")
    lines = [f"Server:\t\t{server}", f"Address:\t{server}#53", ""]
    if res["outcome"] == "Timeout":
        lines = [";; connection timed out; no servers could be reached"]
    elif res["outcome"] == "NXDOMAIN":
        lines.append(f"** server can't find {res['name']}: NXDOMAIN")
    else:
        lines.append("Non-authoritative answer:")
        alias = res["name"]
        for cname in res["cnames"]:
            lines.append(f"{alias}\tcanonical name = {cname}.")
            alias = cname
        for address in res["addresses"]:
            lines += [f"Name:\t{alias}", f"Address: {address}"]
    lines += ["", "Why:"]
    lines += [f"  {i}. {step['text']}" for i, step in enumerate(res["steps"], 1)]
    return lines
