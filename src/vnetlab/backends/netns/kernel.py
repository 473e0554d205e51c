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
- namespaces created in-process (``netns_add_many``) are made exactly as ``ip netns add``
  makes them (a file in /run/netns with the namespace bind-mounted on it), by name, ``vl*``;
- sysctls are only ``net.*`` keys (per namespace), written after ``setns()`` into the
  namespace by a short-lived thread (``sysctl_many``), or by the thread that created it;
- ``/etc/netns/NS`` leads to the namespace's resolv.conf *before* anything runs in the
  namespace, because ``ip netns exec`` bind-mounts the files of ``/etc/netns/NS`` over
  ``/etc`` (and, without it, leaves the host's): a directory of its own
  (``write_resolv_conf``) or a link to a directory shared by the namespaces of one lab whose
  resolv.conf is the same text (``etc_netns_link_many``).

Example::

    problems = check_prerequisites()          # [] on a root Linux box with ip and nft
    netns_add(["vl-x"]); write_resolv_conf("vl-x", "nameserver 127.0.0.1\\n")
    ip_batch("vl-x", ["link set lo up", "link add br0 type bridge"])
    nft_load("vl-x", "table inet t {}\\n")
    netns_del("vl-x"); remove_etc_netns("vl-x")
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import resource
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


def netns_add_with_resolv(items: dict[str, str], owner: str, sysctls: dict[str, dict[str, str]] | None = None) -> None:
    """Create namespaces (``netns_add_many``, with their early ``sysctls``) and lead each one's
    ``/etc/netns/NS`` to its resolv.conf (``etc_netns_link_many``) first: nothing runs in a
    namespace before both are done."""
    if not items:
        return
    etc_netns_link_many(items, owner)
    netns_add_many(list(items), sysctls or {})


MS_BIND = 0x1000


def netns_add_many(names: list[str], sysctls: dict[str, dict[str, str]] | None = None) -> None:
    """Create namespaces by name as ``ip netns add`` does (a file in /run/netns, on which the new
    namespace is bind-mounted), ``sysctls`` (net.* keys, namespace-wide) written in each as soon
    as it exists, where they differ from the values new namespaces start with (read once, in the
    first: the kernel's, or the host's where it copies them; each access to a namespace's
    /proc/sys file costs about as much as a write) and were not set by an earlier write (learnt
    in the first, ``_learn_writes``).

    The first comes from ``ip netns add``, which makes /run/netns a shared mount point (once,
    under its lock), as every ``ip`` does. The others' files are hard links of one empty file,
    made before any is mounted on: a directory entry each, no inode (on an ext4 without a
    journal, allocating an inode right after many were freed, as by the last ``down``, scans
    the recently freed ones: 0.3-0.6 ms each). Two threads then create the namespaces
    (``unshare``, the kernel's work, on both CPUs) and bind-mount each on its file."""
    names = [assert_ns(n) for n in names]
    if not names:
        return
    sysctls = sysctls or {}
    keys = sorted({k for n in names for k in sysctls.get(n, {})})
    for k in keys:  # a bad key is refused before any namespace exists
        _sysctl_path(k)
    ip_host_batch([f"netns add {names[0]}"])
    start: dict[str, str] = {}
    implied: dict[tuple[str, str], dict[str, str]] = {}

    def first(ns: str) -> None:
        start.update(read_sysctls(keys))
        implied.update(_learn_writes(ns, sysctls.get(ns, {}), start, keys))

    in_namespaces([names[0]], first, "vnetlab-sysctl")
    rest = names[1:]
    if not rest:
        return
    _link_files([RUN_NETNS / n for n in rest])
    parts = _halves(rest) if len(rest) >= 64 else [rest]
    workers = [Background(_create_namespaces, part, sysctls, start, implied) for part in parts]
    errors = []
    for w in workers:
        try:
            w.result()
        except BaseException as e:  # noqa: BLE001 - the first is raised once all ended
            errors.append(e)
    if errors:
        raise errors[0]


def _learn_writes(ns: str, values: dict[str, str], start: dict[str, str],
                  keys) -> dict[tuple[str, str], dict[str, str]]:
    """Write ``values`` (where they differ from ``start``) in the fresh namespace the calling thread
    is in, in key order, reading the keys again after each write: what each write also set (for
    instance ``net.ipv6.conf.all.disable_ipv6`` sets the ``default`` one too), for ``_writes``."""
    implied: dict[tuple[str, str], dict[str, str]] = {}
    now = dict(start)
    for k, v in sorted(values.items()):
        if now.get(k) == str(v):
            continue
        write_sysctls(ns, {k: v})
        after = read_sysctls(keys)
        implied[(k, str(v))] = {k2: x for k2, x in after.items() if k2 != k and now.get(k2) != x}
        now = after
    return implied


def _writes(values: dict[str, str], start: dict[str, str],
            implied: dict[tuple[str, str], dict[str, str]]) -> dict[str, str]:
    """The writes that give a fresh namespace ``values``: in key order, those whose value is not
    already there, from the start or as a side effect of an earlier write (``_learn_writes``)."""
    now, out = dict(start), {}
    for k, v in sorted(values.items()):
        if now.get(k) != str(v):
            out[k] = v
            now[k] = str(v)
            now.update(implied.get((k, str(v)), {}))
    return out


def _link_files(paths: list[Path]) -> None:
    """Empty files at ``paths`` (none may exist): the first created, the others hard links of it
    (a new source when one holds as many links as the file system allows)."""
    source = None
    for path in paths:
        if source is not None:
            try:
                os.link(source, path)
                continue
            except OSError as e:
                if e.errno != errno.EMLINK:
                    raise KernelError(["link", str(source), str(path)], e.errno or 1, e.strerror or "") from None
        try:
            os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
        except OSError as e:
            raise KernelError(["create", str(path)], e.errno or 1, e.strerror or "") from None
        source = path


def _create_namespaces(names: list[str], sysctls: dict[str, dict[str, str]], start: dict[str, str],
                       implied: dict[tuple[str, str], dict[str, str]]) -> None:
    """In this thread: a new network namespace for each name, bind-mounted on its (existing)
    /run/netns file, its sysctls written while the thread is in it; the thread then returns to
    the namespace it started in."""
    libc = _libc_handle()
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        for ns in names:
            if libc.unshare(CLONE_NEWNET) != 0:
                e = ctypes.get_errno()
                raise KernelError(["unshare", "--net", ns], e, os.strerror(e))
            if libc.mount(b"/proc/thread-self/ns/net", str(RUN_NETNS / ns).encode(), b"none", MS_BIND, None) != 0:
                e = ctypes.get_errno()
                raise KernelError(["mount", "--bind", "/proc/thread-self/ns/net", str(RUN_NETNS / ns)], e,
                                  os.strerror(e))
            write_sysctls(ns, _writes(sysctls.get(ns, {}), start, implied))
    finally:
        try:
            _setns(home)
        finally:
            os.close(home)


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


def link_add_batch(lines: list[str]) -> None:
    """Create bridges and veth pairs in their namespaces with one ``ip -batch`` (see
    ``_check_link_add``): ~0.3 ms per link instead of one ``ip -n NS`` process per namespace.
    ``ip`` keeps open each namespace a line names until it exits (iproute2 6.1, seen with strace:
    two descriptors per veth pair), so the lines go in as few batches as this process's limit of
    open files allows each (one, unless the limit is low: ``links_per_batch``)."""
    for line in lines:
        _check_link_add(line)
    step = links_per_batch()
    for start in range(0, len(lines), step):
        _run(["ip", "-batch", "-"], "\n".join(lines[start:start + step]) + "\n")


def links_per_batch() -> int:
    """The ``link add`` lines one ``ip -batch`` can take within the limit of open files its
    process inherits: two namespace descriptors a line, and 64 to spare for ip's own."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return 1 << 20
    return max(1, (soft - 64) // 2)


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


def allow_descriptors() -> None:
    """Raise this process's soft limit of open descriptors to its hard limit (a process may, unprivileged),
    for itself and the tools it starts: with the common soft limit of 1,024, a lab of more than about
    1,000 VMs failed with EMFILE (``ip -batch`` keeps each line's namespace open; the responder launcher
    holds a pipe from each child until it reports)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (OSError, ValueError):  # an infinite hard limit is above the kernel's nr_open: keep the soft one
            pass


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
        try:  # os.open/os.write: no file object (thousands of namespaces, threads sharing the GIL)
            fd = os.open(_sysctl_path(k), os.O_WRONLY)
            try:
                os.write(fd, f"{v}\n".encode())
            finally:
                os.close(fd)
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


def resolv_dir(ns: str, text: str, owner: str) -> str:
    """The directory of ``/etc/netns`` holding ``text`` as resolv.conf for the namespaces of
    ``ns``'s lab, whose store is ``owner`` (two stores never share one): ``vl<lab id>-etc-<hash>``,
    a name no namespace has."""
    digest = hashlib.sha256(f"{owner}\0{_line(text)}".encode()).hexdigest()[:12]
    return f"{assert_ns(ns).split('-', 1)[0]}-etc-{digest}"


def _line(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


def _write_resolv_dir(name: str, text: str) -> Path:
    """``/etc/netns/NAME/resolv.conf`` holding ``text`` (and nothing else: ``ip netns exec``
    binds every file of the directory over /etc)."""
    d = ETC_NETNS / assert_ns(name)
    d.mkdir(parents=True, exist_ok=True)
    f = d / "resolv.conf"
    try:
        if f.read_text() == _line(text):
            return d
    except OSError:
        pass
    tmp = d / ".resolv.conf.tmp"
    tmp.write_text(_line(text))
    os.replace(tmp, f)
    return d


def etc_netns_link_many(items: dict[str, str], owner: str) -> None:
    """Lead each namespace's ``/etc/netns/NS`` to a directory holding its resolv.conf (``ip netns
    exec NS`` and the responders bind its files over /etc): every namespace has its own entry,
    never none (which would leave it the host's resolv.conf). The namespaces whose resolv.conf is
    the same text share one directory (``resolv_dir``, recorded by the caller first): the entry
    of the first is a symbolic link to it, the others' are hard links of that symbolic link. A
    directory entry each, no inode: on this ext4 without a journal, a directory and a file per
    namespace cost 0.5-1 ms of CPU after a ``down`` had freed as many."""
    groups: dict[str, tuple[str, list[str]]] = {}
    for ns, text in items.items():
        groups.setdefault(resolv_dir(ns, text, owner), (text, []))[1].append(ns)
    for name, (text, namespaces) in groups.items():
        _write_resolv_dir(name, text)
        source = None
        for ns in namespaces:
            entry = etc_netns_dir(ns)
            if entry.is_symlink() or entry.exists():  # a leftover of a crash: not this namespace's yet
                remove_etc_netns(ns, keep_parent=True)
            if source is not None:
                try:
                    os.link(source, entry, follow_symlinks=False)
                    continue
                except OSError as e:
                    if e.errno != errno.EMLINK:
                        raise
            os.symlink(name, entry)
            source = entry


def relink_resolv_conf(ns: str, text: str, owner: str) -> None:
    """Lead an existing namespace's ``/etc/netns/NS`` to the directory of ``text`` (recorded by
    the caller first), replacing its entry atomically (something may be reading it)."""
    name = resolv_dir(ns, text, owner)
    _write_resolv_dir(name, text)
    entry = etc_netns_dir(ns)
    if entry.is_dir() and not entry.is_symlink():  # a directory of its own (made by an earlier version)
        write_resolv_conf(ns, text)
        return
    tmp = ETC_NETNS / f"{ns}.new"
    if tmp.is_symlink():
        tmp.unlink()
    os.symlink(name, tmp)
    os.replace(tmp, entry)


def remove_resolv_dirs(names: list[str]) -> list[str]:
    """Remove ``resolv_dir`` directories (no namespace leads to them any more); the problems."""
    problems = []
    for name in names:
        d = ETC_NETNS / assert_ns(name)
        try:
            if d.is_dir() and not d.is_symlink():
                shutil.rmtree(d)
        except OSError as e:
            problems.append(f"/etc/netns/{name}: {e.strerror}")
    try:
        ETC_NETNS.rmdir()  # only if now empty
    except OSError:
        pass
    return problems


def _remove_entry(ns: str) -> None:
    """``/etc/netns/NS``: a link to a shared directory (unlinked) or a directory of its own."""
    for d in (etc_netns_dir(ns), ETC_NETNS / f"{ns}.new"):
        if d.is_symlink():
            d.unlink()
        elif d.is_dir():
            shutil.rmtree(d)


def remove_etc_netns_many(names: list[str]) -> list[str]:
    """``remove_etc_netns`` for many namespaces; returns the problems. Links are unlinked at once;
    directories of their own are removed concurrently (each removal waits on the filesystem,
    e.g. a discard-mounted disk: one after the other, 1,000 took seconds)."""
    def one(ns: str) -> str | None:
        try:
            _remove_entry(ns)
        except OSError as e:
            return f"/etc/netns/{ns}: {e.strerror}"
        return None
    dirs = [ns for ns in names if etc_netns_dir(ns).is_dir() and not etc_netns_dir(ns).is_symlink()]
    problems = [p for p in map(one, sorted(set(names) - set(dirs))) if p]
    if dirs:
        with ThreadPoolExecutor(max_workers=16) as ex:
            problems += [p for p in ex.map(one, dirs) if p]
    try:
        ETC_NETNS.rmdir()  # only if now empty
    except OSError:
        pass
    return problems


def remove_etc_netns(ns: str, keep_parent: bool = False) -> None:
    _remove_entry(ns)
    if keep_parent:
        return
    try:
        ETC_NETNS.rmdir()  # only if now empty
    except OSError:
        pass
