"""Large labs as a user meets them (issue 8, section 5). Run by hand:

    .venv/bin/python benchmarks/scale.py [--shape large|hub|both] [--no-api] [--small] [--keep DIR]

Two shapes, each written as one YAML file:

- ``large``: 50 VNets x 20 subnets, a 200-rule NSG on every subnet (1,000 NSGs), each VNet peered
  with its two neighbours, 2,000 VMs, 100 web apps (benchmarks/generate_large.py, ~216,000 lines);
- ``hub``: the hub-and-spoke lab of benchmarks/generate.py (50 VNets x 20 subnets, one 200-rule
  NSG per VNet, 2,000 VMs, 100 web apps).

Through the real CLI (``.venv/bin/vnetlab`` in a subprocess, as users run it): ``up`` on a fresh
home, ``up`` again (nothing changes), ``matrix --ports 80 -o json``, ``check``; then ``vnetlab
serve`` and the ARM list of NSGs and of VNets, cold (first request after a change) and warm, with
the latency of a GET of one VNet while a list runs. Then the same steps in-process. Each figure
is wall-clock seconds, with the CPU seconds of the process in brackets (the machine may be shared).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import generate  # noqa: E402
import generate_large  # noqa: E402

from vnetlab.api.discovery import SUBSCRIPTION  # noqa: E402

VNETLAB = str(Path(sys.executable).parent / "vnetlab")
SUB = f"/subscriptions/{SUBSCRIPTION}"
RG = f"{SUB}/resourceGroups/rg1"
V = "?api-version=2024-07-01"


SMALL = {"vnets": 3, "subnets": 4, "vms": 60, "apps": 4}  # --small: a quick run of the script itself


def write_shape(shape: str, path: Path, small: bool) -> int:
    size = SMALL if small else {}
    if shape == "large":
        return generate_large.write(path, **size)
    text = yaml.dump(generate.generate_doc(rules=200, **size), Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper),
                     sort_keys=False)
    path.write_text(text)
    return text.count("\n")


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cli(*args: str, ok=(0,)) -> tuple[float, float, bytes]:
    """(wall s, CPU s, stdout) of one `vnetlab ...` in a subprocess."""
    cpu0, t0 = _child_cpu(), time.perf_counter()
    proc = subprocess.run([VNETLAB, *args], capture_output=True)
    wall, cpu = time.perf_counter() - t0, _child_cpu() - cpu0
    if proc.returncode not in ok:
        raise SystemExit(f"vnetlab {' '.join(args)} exited {proc.returncode}: {proc.stderr.decode()[-2000:]}")
    return wall, cpu, proc.stdout


def fmt(wall: float, cpu: float | None = None) -> str:
    return f"{wall:6.2f} s" + (f" [{cpu:5.2f} CPU]" if cpu is not None else "")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def through_cli(shape: str, lab_file: Path, home: Path, figures: dict) -> None:
    wall, cpu, _ = cli("up", str(lab_file), "--home", str(home))
    figures["up (new lab)"] = fmt(wall, cpu)
    wall, cpu, _ = cli("up", str(lab_file), "--home", str(home))
    figures["up (again, unchanged)"] = fmt(wall, cpu)
    wall, cpu, out = cli("matrix", "--ports", "80", "-o", "json", "--home", str(home))
    m = json.loads(out)
    classes = m["classes"] if isinstance(m["classes"], int) else len(m["classes"])  # int: before issue 8
    cells = len(m.get("cells") or m.get("class_cells") or ())
    figures["matrix --ports 80 -o json"] = (f"{fmt(wall, cpu)}  {len(out) / 1e6:.1f} MB, {m['endpoints']} endpoints, "
                                            f"{classes} classes, {cells} cells, {m['traces']} traces")
    wall, cpu, _ = cli("check", "vm0", "vm50", "--port", "80", "--home", str(home), ok=(0, 1))
    figures["check vm0 vm50 --port 80"] = fmt(wall, cpu)


def through_api(home: Path, figures: dict) -> None:
    port = free_port()
    server = subprocess.Popen([VNETLAB, "serve", "--port", str(port), "--home", str(home)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        ca = home / "tls" / "ca.pem"
        url = f"https://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                raise SystemExit(f"vnetlab serve exited: {server.stderr.read().decode()[-2000:]}")
            try:
                if ca.exists() and httpx.get(f"{url}/metadata/endpoints",
                                             verify=ssl.create_default_context(cafile=str(ca))).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("vnetlab serve did not start")
            time.sleep(0.2)
        with httpx.Client(base_url=url, verify=ssl.create_default_context(cafile=str(ca)), timeout=600,
                          headers={"Authorization": "Bearer bench"}) as client:
            for label, path in (("NSGs", f"{RG}/providers/Microsoft.Network/networkSecurityGroups"),
                                ("VNets", f"{RG}/providers/Microsoft.Network/virtualNetworks")):
                for when in ("cold", "warm"):
                    if when == "cold":  # a change by the CLI: the server's lab is stale
                        cli("webapp", "config", "set", "--name", "app0", "--vnet-route-all-enabled",
                            "true" if label == "NSGs" else "false", "--home", str(home))
                    t0 = time.perf_counter()
                    r = client.get(path + V)
                    assert r.status_code == 200, r.text[:500]
                    figures[f"API list {label} ({when})"] = (f"{fmt(time.perf_counter() - t0)}  "
                                                             f"{len(r.json()['value'])} items, "
                                                             f"{len(r.content) / 1e6:.1f} MB")
            figures["API GET one VNet while the NSG list runs"] = _latency_during_list(client)
    finally:
        server.terminate()
        server.wait(timeout=30)


def _latency_during_list(client: httpx.Client) -> str:
    """A GET of one VNet 0.2, 1, 2 and 3 s after an NSG list started (each during its own list)."""
    out = []
    for offset in (0.2, 1.0, 2.0, 3.0):
        lister = threading.Thread(target=client.get,
                                  args=(f"{RG}/providers/Microsoft.Network/networkSecurityGroups{V}",))
        lister.start()
        time.sleep(offset)
        t0 = time.perf_counter()
        client.get(f"{RG}/providers/Microsoft.Network/virtualNetworks/v0{V}")
        out.append(time.perf_counter() - t0)
        lister.join()
    return " / ".join(f"{x:.2f}" for x in out) + " s (at 0.2 / 1 / 2 / 3 s)"


def in_process(lab_file: Path, home: Path, figures: dict) -> None:
    from vnetlab.engine.matrix import matrix
    from vnetlab.lab import Lab
    from vnetlab.topology import load

    def timed(fn):
        cpu0, t0 = time.process_time(), time.perf_counter()
        value = fn()
        return value, fmt(time.perf_counter() - t0, time.process_time() - cpu0)

    topo, figures["in-process: load the file"] = timed(lambda: load(lab_file))
    lab = Lab.open(home)
    _, figures["in-process: Lab.up"] = timed(lambda: lab.up(topo))
    net, figures["in-process: Lab.network (parse the store, compile)"] = timed(lab.network)
    _, figures["in-process: matrix 80"] = timed(lambda: matrix(net, ["80"]))
    _, figures["in-process: trace vm0 -> vm50:80"] = timed(lambda: lab.trace("vm0", "vm50", 80))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=("large", "hub", "both"), default="both")
    ap.add_argument("--no-api", action="store_true", help="skip `vnetlab serve`")
    ap.add_argument("--small", action="store_true", help="tiny labs of both shapes: check the script runs")
    ap.add_argument("--keep", type=Path, help="write the files and homes here and keep them")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="vnetlab-scale-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        for shape in (("large", "hub") if args.shape == "both" else (args.shape,)):
            lab_file = root / f"{shape}.yaml"
            lines = write_shape(shape, lab_file, args.small)
            figures: dict[str, str] = {}
            home = root / f"{shape}-cli"
            shutil.rmtree(home, ignore_errors=True)
            through_cli(shape, lab_file, home, figures)
            if not args.no_api:
                through_api(home, figures)
            shutil.rmtree(root / f"{shape}-py", ignore_errors=True)
            in_process(lab_file, root / f"{shape}-py", figures)
            print(f"\n== {shape}: {lab_file} ({lines} lines, {lab_file.stat().st_size / 1e6:.0f} MB); "
                  f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
            for name, value in figures.items():
                print(f"  {name:<52} {value}")
            sys.stdout.flush()
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
