"""Thin, safe wrappers around the kernel tools: ``ip -batch``, ``nft -f``, ``sysctl``.

Why batches: one ``ip`` process per command costs ~1 ms of fork/exec and netlink setup;
``ip -batch -`` reads many commands from stdin in one process (measured ~2.5 ms per
emulated host instead of ~11 ms). nft is the same story, worse: always load whole tables
with one ``nft -f -`` (atomic transaction) instead of rule-by-rule.

Safety rules enforced here (not just by convention):

- every namespace name starts with ``vl`` (``assert_ns``);
- ``ip`` commands run with ``-n NS`` (or under ``ip netns exec NS``); the only commands
  run without ``-n`` are ``netns add``/``netns del`` (``ip_host_batch`` refuses others) and
  ``link add`` of bridges/veths *into* ``vl*`` namespaces (``link_add_batch`` checks that
  every created device names its namespace: none ever exists in the host namespace);
- sysctls are only ``net.*`` keys (per namespace), written after ``setns()`` into the
  namespace by a short-lived thread (``sysctl_many``);
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

import ctypes
import os
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

from .errors import EmulationUnavailable, KernelError  # noqa: F401 - raised here, imported from here
from .state import check_ns_name

RUN_NETNS = Path("/run/netns")
ETC_NETNS = Path("/etc/netns")
CLONE_NEWNET = 0x40000000
# subprocesses run concurrently by the *_many helpers (they mostly wait on the kernel/fork)
PARALLEL = max(2, min(8, 2 * (os.cpu_count() or 1)))


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


def netns_add_with_resolv(items: dict[str, str]) -> None:
    """Create namespaces (one ``ip -batch``) and write their ``/etc/netns/NS/resolv.conf``
    meanwhile (nothing runs in a namespace before both are done)."""
    if not items:
        return
    lines = [f"netns add {assert_ns(n)}" for n in items]
    procs = []
    for part in (_halves(lines) if len(lines) >= 64 else [lines]):  # two at once: two CPUs
        proc = subprocess.Popen(["ip", "-batch", "-"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        proc.stdin.write("\n".join(part) + "\n")  # type: ignore[union-attr]
        proc.stdin.close()  # type: ignore[union-attr]
        procs.append((proc, part))
    try:  # concurrently: each waits on the filesystem
        with ThreadPoolExecutor(max_workers=16) as ex:
            list(ex.map(lambda kv: write_resolv_conf(*kv), items.items()))
    finally:
        failed = []
        for proc, part in procs:
            err = proc.stderr.read()  # type: ignore[union-attr]
            proc.stderr.close()  # type: ignore[union-attr]
            proc.wait(timeout=120)
            if proc.returncode != 0:
                failed.append(KernelError(["ip", "-batch", "-"], proc.returncode, err, "\n".join(part)))
    if failed:
        raise failed[0]


class Background:
    """``fn(*args)`` in a thread; ``result()`` waits and returns its value or raises its error."""

    def __init__(self, fn, *args):
        self._out: list = []
        self._thread = threading.Thread(target=self._run, args=(fn, args), name="vnetlab-bg")
        self._thread.start()

    def _run(self, fn, args) -> None:
        try:
            self._out.append((True, fn(*args)))
        except BaseException as e:  # noqa: BLE001 - re-raised by result()
            self._out.append((False, e))

    def result(self):
        self._thread.join()
        ok, value = self._out[0]
        if not ok:
            raise value
        return value


def _halves(items: list) -> list[list]:
    """``items`` in two halves (one ``ip`` process each: the kernel work runs on two CPUs)."""
    mid = (len(items) + 1) // 2
    return [part for part in (items[:mid], items[mid:]) if part]


def netns_del_many(names: list[str]) -> None:
    """Delete many namespaces by name (never ``-all``), in two ``ip -force -batch`` at once."""
    existing = [assert_ns(n) for n in names if netns_exists(n)]
    if len(existing) < 64:
        ip_host_batch([f"netns del {n}" for n in existing], force=True)
        return
    parts = [Background(ip_host_batch, [f"netns del {n}" for n in part], True) for part in _halves(existing)]
    for part in parts:
        part.result()


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


# -- links created directly in their namespaces, from one process ----------------------------
_LINK_OPTS = {"address", "mtu"}


def _check_link_add(line: str) -> None:
    """Accept only ``link add name X netns vl.. [address M] [mtu N] [up] type bridge`` and
    ``link add name X netns vl.. [...] type veth peer name Y netns vl.. [...]``: the kernel
    creates such a device directly in the named namespace (``IFLA_NET_NS_FD``), so nothing
    ever appears in the host namespace."""
    p = line.split()
    bad = ValueError(f"refusing host-namespace ip command: {line!r}")
    if p[:3] != ["link", "add", "name"] or len(p) < 8 or p[4] != "netns":
        raise bad
    assert_ns(p[5])

    def opts(i: int, stop: str | None) -> int:
        while i < len(p) and p[i] != stop:
            if p[i] == "up" and stop == "type":
                i += 1
                continue
            if p[i] not in _LINK_OPTS or i + 1 >= len(p):
                raise bad
            i += 2
        return i

    i = opts(6, "type")
    if i + 1 >= len(p) or p[i] != "type":
        raise bad
    if p[i + 1] == "bridge" and i + 2 == len(p):
        return
    if p[i + 1] != "veth" or p[i + 2:i + 4] != ["peer", "name"] or len(p) < i + 7 or p[i + 5] != "netns":
        raise bad
    assert_ns(p[i + 6])
    if opts(i + 7, None) != len(p):
        raise bad


def link_add_batch(lines: list[str]) -> subprocess.CompletedProcess | None:
    """Create bridges and veth pairs in their namespaces with ONE ``ip -batch`` (see
    ``_check_link_add``): ~0.3 ms per link instead of one ``ip -n NS`` process per namespace."""
    for line in lines:
        _check_link_add(line)
    if not lines:
        return None
    return _run(["ip", "-batch", "-"], "\n".join(lines) + "\n")


# -- per-namespace configuration ----------------------------------------------------------
def run_many(jobs: list[tuple[list[str], str | None, bool]]) -> list[subprocess.CompletedProcess]:
    """Run ``(argv, stdin, check)`` jobs concurrently (``PARALLEL`` at a time); raises the first
    ``KernelError`` after all finished."""
    if not jobs:
        return []
    if len(jobs) == 1:
        return [_run(jobs[0][0], jobs[0][1], check=jobs[0][2])]
    with ThreadPoolExecutor(max_workers=min(PARALLEL, len(jobs))) as ex:
        futs = [ex.submit(_run, argv, stdin, check) for argv, stdin, check in jobs]
    errors = [f.exception() for f in futs if f.exception() is not None]
    if errors:
        raise errors[0]
    return [f.result() for f in futs]


def ip_batch_many(batches: dict[str, list[str]], force: bool = False) -> None:
    """``ip_batch`` for many namespaces, concurrently (one ``ip -n NS -batch`` each)."""
    run_many([(["ip", "-n", assert_ns(ns), *(["-force"] if force else []), "-batch", "-"],
               "\n".join(lines) + "\n", not force) for ns, lines in batches.items() if lines])


def nft_load_many(scripts: dict[str, str]) -> None:
    """``nft_load`` for many namespaces, concurrently (each still one atomic transaction)."""
    run_many([(ns_exec_argv(ns, ["nft", "-f", "-"]), s, True) for ns, s in scripts.items() if s.strip()])


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
    sysctl_many({ns: values})


_libc = None


def _libc_handle():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _setns(fd: int) -> None:
    if _libc_handle().setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"setns: {os.strerror(e)}")


@lru_cache(maxsize=4096)  # a lab writes the same few keys in thousands of namespaces
def _sysctl_path(key: str) -> str:
    if "/" in key or ".." in key or not key.startswith("net."):
        raise ValueError(f"sysctl {key!r}: only net.* keys (per-namespace) are set")
    return "/proc/sys/" + key.replace(".", "/")


def in_namespaces(names, fn, thread_name: str = "vnetlab-setns") -> None:
    """Call ``fn(ns)`` inside each namespace in turn, without a process per namespace: one
    short-lived thread ``setns()``'s into each namespace (sockets it opens and ``/proc/sys``
    writes it makes belong to that namespace), then returns home and ends. The first error is
    re-raised in the caller."""
    errors: list[BaseException] = []

    def work() -> None:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            for ns in names:
                fd = os.open(RUN_NETNS / ns, os.O_RDONLY)
                try:
                    _setns(fd)
                finally:
                    os.close(fd)
                fn(ns)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller
            errors.append(e)
        finally:
            try:
                _setns(home)  # the thread ends anyway; leave it where it started
            finally:
                os.close(home)

    t = threading.Thread(target=work, name=thread_name)
    t.start()
    t.join()
    if errors:
        raise errors[0]


def write_sysctls(ns: str, values: dict[str, str]) -> None:
    """Write ``net.*`` sysctls of the namespace the calling thread is in (see in_namespaces)."""
    for k, v in sorted(values.items()):
        try:
            with open(_sysctl_path(k), "w") as f:
                f.write(f"{v}\n")
        except OSError as e:
            raise KernelError(["sysctl", "-w", f"{k}={v}"], e.errno or 1, f"in {ns}: {e.strerror}") from None


def sysctl_many(values: dict[str, dict[str, str]]) -> None:
    """Set per-namespace sysctls for many namespaces from one thread (see in_namespaces).
    Only ``net.*`` keys, which are per-namespace, are accepted."""
    todo = {assert_ns(ns): v for ns, v in values.items() if v}
    for v in todo.values():
        for k in v:
            _sysctl_path(k)
    in_namespaces(list(todo), lambda ns: write_sysctls(ns, todo[ns]), "vnetlab-sysctl")


def read_sysctls(keys) -> dict[str, str]:
    """The values of ``net.*`` sysctls in the namespace the calling thread is in (missing: left out)."""
    out = {}
    for k in keys:
        try:
            with open(_sysctl_path(k)) as f:
                out[k] = f.read().strip()
        except OSError:
            pass
    return out


def sysctl_many_fresh(values: dict[str, dict[str, str]]) -> None:
    """``sysctl_many`` for namespaces created together just now, before anything else touched them:
    they all start with the same values (the kernel's, or the host's where it copies them), read
    once in the first of them; only the keys whose value differs are written (each access to a
    namespace's /proc/sys file costs about as much as a write)."""
    todo = {assert_ns(ns): v for ns, v in values.items() if v}
    if not todo:
        return
    keys = sorted({k for v in todo.values() for k in v})
    for k in keys:  # a bad key is refused here, before any thread enters a namespace
        _sysctl_path(k)
    start: dict[str, str] = {}
    in_namespaces([next(iter(todo))], lambda ns: start.update(read_sysctls(keys)), "vnetlab-sysctl")
    sysctl_many({ns: {k: x for k, x in v.items() if start.get(k) != str(x)} for ns, v in todo.items()})


def etc_netns_dir(ns: str) -> Path:
    return ETC_NETNS / assert_ns(ns)


def write_resolv_conf(ns: str, text: str) -> None:
    d = etc_netns_dir(ns)
    text = text if text.endswith("\n") else text + "\n"
    try:
        d.mkdir(parents=True)
    except FileExistsError:  # replace atomically: something may be reading it
        tmp = d / ".resolv.conf.tmp"
        tmp.write_text(text)
        os.replace(tmp, d / "resolv.conf")
        return
    (d / "resolv.conf").write_text(text)  # a fresh directory: nobody reads it yet


def remove_etc_netns_many(names: list[str]) -> list[str]:
    """``remove_etc_netns`` for many namespaces, concurrently (each removal waits on the
    filesystem, e.g. a discard-mounted disk: one after the other, 1,000 took seconds); returns
    the problems."""
    def one(ns: str) -> str | None:
        try:
            d = etc_netns_dir(ns)
            if d.is_dir():
                shutil.rmtree(d)
        except OSError as e:
            return f"/etc/netns/{ns}: {e.strerror}"
        return None
    with ThreadPoolExecutor(max_workers=16) as ex:
        problems = [p for p in ex.map(one, names) if p]
    try:
        ETC_NETNS.rmdir()  # only if now empty
    except OSError:
        pass
    return problems


def remove_etc_netns(ns: str) -> None:
    d = etc_netns_dir(ns)
    if d.is_dir():
        shutil.rmtree(d)
    try:
        ETC_NETNS.rmdir()  # only if now empty
    except OSError:
        pass
