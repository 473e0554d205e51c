"""Thin, safe wrappers around the kernel tools: ``ip -batch``, ``nft -f``, ``sysctl``.

Why batches: one ``ip`` process per command costs ~1 ms of fork/exec and netlink setup;
``ip -batch -`` reads many commands from stdin in one process (measured ~2.5 ms per
emulated host instead of ~11 ms). nft is the same story, worse: always load whole tables
with one ``nft -f -`` (atomic transaction) instead of rule-by-rule.

Safety rules enforced here (not just by convention):

- every namespace name starts with ``vl`` (``assert_ns``);
- ``ip`` commands run with ``-n NS`` (or under ``ip netns exec NS``); the only commands
  run without ``-n`` are ``netns add``/``netns del`` (``ip_host_batch`` refuses others);
- ``/etc/netns/NS/resolv.conf`` is written *before* anything runs in the namespace,
  because ``ip netns exec`` bind-mounts the files of ``/etc/netns/NS`` over ``/etc``.

Example::

    problems = check_prerequisites()          # [] on a root Linux box with ip and nft
    netns_add(["vl-x"]); write_resolv_conf("vl-x", "nameserver 127.0.0.1\\n")
    ip_batch("vl-x", ["link set lo up", "link add br0 type bridge"])
    nft_load("vl-x", "table inet t {}\\n")
    netns_del("vl-x"); remove_etc_netns("vl-x")
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from .state import check_ns_name

RUN_NETNS = Path("/run/netns")
ETC_NETNS = Path("/etc/netns")


class EmulationUnavailable(RuntimeError):
    """The emulation cannot run here; the message names every missing prerequisite."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("netns emulation unavailable: " + "; ".join(problems))


class KernelError(RuntimeError):
    """A kernel tool failed; carries the command, its input and stderr."""

    def __init__(self, cmd: list[str], rc: int, stderr: str, script: str | None = None):
        self.cmd, self.rc, self.stderr, self.script = cmd, rc, stderr, script
        msg = f"{' '.join(cmd)} exited {rc}: {stderr.strip()}"
        if script:
            lines = script.splitlines()
            msg += "\n--- input (first 40 lines) ---\n" + "\n".join(lines[:40])
        super().__init__(msg)


def check_prerequisites() -> list[str]:
    """Problems preventing the emulation (empty list = good to go)."""
    problems = []
    if not sys.platform.startswith("linux"):
        problems.append(f"needs Linux (this is {sys.platform})")
    elif os.geteuid() != 0:
        problems.append("needs root (run as root or under sudo)")
    for tool, pkg in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            problems.append(f"`{tool}` not found (install {pkg})")
    return problems


def require() -> None:
    problems = check_prerequisites()
    if problems:
        raise EmulationUnavailable(problems)


def assert_ns(name: str) -> str:
    check_ns_name(name)
    return name


def _run(cmd: list[str], stdin: str | None = None, check: bool = True,
         timeout: float | None = 60) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, input=stdin, text=True, capture_output=True, timeout=timeout)
    if check and p.returncode != 0:
        raise KernelError(cmd, p.returncode, p.stderr, stdin)
    return p


def ns_exec_argv(ns: str, argv: list[str]) -> list[str]:
    return ["ip", "netns", "exec", assert_ns(ns), *argv]


# -- namespaces ---------------------------------------------------------------------------
def ip_host_batch(lines: list[str], force: bool = False) -> subprocess.CompletedProcess | None:
    """``ip -batch -`` without ``-n``: only ``netns add NAME`` / ``netns del NAME`` lines."""
    for line in lines:
        parts = line.split()
        if len(parts) != 3 or parts[0] != "netns" or parts[1] not in ("add", "del", "delete"):
            raise ValueError(f"refusing host-namespace ip command: {line!r}")
        assert_ns(parts[2])
    if not lines:
        return None
    return _run(["ip", *(["-force"] if force else []), "-batch", "-"], "\n".join(lines) + "\n",
                check=not force)


def netns_list() -> set[str]:
    try:
        return {p.name for p in RUN_NETNS.iterdir()}
    except FileNotFoundError:
        return set()


def netns_exists(name: str) -> bool:
    return (RUN_NETNS / assert_ns(name)).exists()


def netns_add(names: list[str]) -> None:
    ip_host_batch([f"netns add {assert_ns(n)}" for n in names])


def netns_del(name: str, missing_ok: bool = True) -> bool:
    """Delete one namespace by name (never ``-all``). Returns True if it existed."""
    assert_ns(name)
    if missing_ok and not netns_exists(name):
        return False
    _run(["ip", "netns", "del", name])
    return True


def netns_pids(name: str) -> list[int]:
    if not netns_exists(name):
        return []
    p = _run(["ip", "netns", "pids", assert_ns(name)], check=False)
    return [int(x) for x in p.stdout.split() if x.isdigit()]


# -- per-namespace configuration ----------------------------------------------------------
def ip_batch(ns: str, lines: list[str], force: bool = False) -> subprocess.CompletedProcess | None:
    """Run ``ip -n NS -batch -``; with ``force`` errors are tolerated (for deletions)."""
    assert_ns(ns)
    if not lines:
        return None
    return _run(["ip", "-n", ns, *(["-force"] if force else []), "-batch", "-"],
                "\n".join(lines) + "\n", check=not force)


def ip_json(ns: str, args: list[str]) -> list:
    import json
    p = _run(["ip", "-n", assert_ns(ns), "-j", *args])
    return json.loads(p.stdout or "[]")


def nft_load(ns: str, script: str) -> None:
    """One atomic ``nft -f -`` inside the namespace."""
    if script.strip():
        _run(ns_exec_argv(ns, ["nft", "-f", "-"]), script)


def nft_list(ns: str) -> str:
    return _run(ns_exec_argv(ns, ["nft", "list", "ruleset"])).stdout


def sysctl(ns: str, values: dict[str, str]) -> None:
    if values:
        _run(ns_exec_argv(ns, ["sysctl", "-qw", *(f"{k}={v}" for k, v in sorted(values.items()))]))


def etc_netns_dir(ns: str) -> Path:
    return ETC_NETNS / assert_ns(ns)


def write_resolv_conf(ns: str, text: str) -> None:
    d = etc_netns_dir(ns)
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / ".resolv.conf.tmp"
    tmp.write_text(text if text.endswith("\n") else text + "\n")
    os.replace(tmp, d / "resolv.conf")


def remove_etc_netns(ns: str) -> None:
    d = etc_netns_dir(ns)
    if d.is_dir():
        shutil.rmtree(d)
    try:
        ETC_NETNS.rmdir()  # only if now empty
    except OSError:
        pass
