"""SQLite state of a lab.

A lab lives in one SQLite file, ``lab.db``, under its home directory (``.vnetlab/`` in the
current directory by default, ``--home DIR`` or ``VNETLAB_HOME`` otherwise). It holds:

- ``topology``: one row, the lab as JSON (the pydantic model). A change is read,
  validated and written back inside one ``BEGIN IMMEDIATE`` transaction, so concurrent
  writers (CLI invocations, API requests) are serialized and a failed change leaves the
  row untouched.
- ``nsg_rules``: the security rules of each NSG, by the NSG's position in the document (whose
  own rules list is then left empty), with a *cover*: a short summary of the flows they may
  match. A large lab is mostly rules (200,000 of them in 75 MB); a question about a few flows
  reads only the NSGs whose cover says they hold a rule for one (``load_stored(wanted)``).
  Written and read in the same transaction as the ``topology`` row.
- ``backend_objects``: what a backend created in the kernel (namespaces, links, nft
  tables, processes), keyed by kind and name, so teardown removes exactly that, even
  after a crash in the middle of ``up``.

Example::

    store = Store.open(home)
    with store.write() as tx:
        doc = tx.load()          # dict or None
        tx.save(doc)             # committed when the block exits without error
    store.record("netns", "vl-ab12-vm-rg1vm1", {"role": "vm"})
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

DEFAULT_HOME = ".vnetlab"
SCHEMA = """
CREATE TABLE IF NOT EXISTS topology (id INTEGER PRIMARY KEY CHECK (id = 1), doc TEXT NOT NULL, version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS backend_objects (
  kind TEXT NOT NULL, name TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (kind, name));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS nsg_rules (nsg INTEGER PRIMARY KEY, cover TEXT NOT NULL, rules TEXT NOT NULL);
"""
STAMP_KEY = "topology_stamp"  # the stamp the document was saved with (WriteTx.save_json)


def resolve_home(home: str | os.PathLike | None = None) -> Path:
    """The lab's home: the argument, else $VNETLAB_HOME, else ./.vnetlab."""
    return Path(home or os.environ.get("VNETLAB_HOME") or DEFAULT_HOME).resolve()


@dataclass(frozen=True)
class StoredLab:
    """The lab as stored: ``core``, its JSON, where the NSGs at the positions ``rules`` holds have an
    empty rules list; ``rules``: NSG position -> the JSON of its rules (those read: all, or those
    ``load_stored(wanted)`` wanted); ``stamp``: what ``save_lab`` was told (``model.stored``)."""
    core: str
    rules: dict[int, str]
    stamp: str | None

    def doc(self) -> dict:
        """The document: ``core`` with the rules read put back in their NSGs."""
        doc = json.loads(self.core)
        nsgs = doc.get("network_security_groups") or []
        for position, text in self.rules.items():
            nsgs[position]["security_rules"] = json.loads(text)
        return doc


@dataclass
class WriteTx:
    conn: sqlite3.Connection

    def load(self) -> dict | None:
        stored = self.load_stored()
        return stored.doc() if stored is not None else None

    def load_stored(self, wanted: Callable[[str], bool] | None = None) -> StoredLab | None:
        """The lab as stored, None when there is none; ``wanted(cover)``: read the rules of only the
        NSGs whose cover (JSON text) it accepts (the others keep an empty list)."""
        row = self.conn.execute("SELECT doc, (SELECT value FROM meta WHERE key = ?) FROM topology WHERE id = 1",
                                (STAMP_KEY,)).fetchone()
        if row is None:
            return None
        if wanted is None:
            rules = self.conn.execute("SELECT nsg, rules FROM nsg_rules").fetchall()
        else:
            keep = [nsg for nsg, cover in self.conn.execute("SELECT nsg, cover FROM nsg_rules") if wanted(cover)]
            rules = [self.conn.execute("SELECT nsg, rules FROM nsg_rules WHERE nsg = ?", (nsg,)).fetchone()
                     for nsg in keep]
        return StoredLab(row[0], dict(rules), row[1])

    def save(self, doc: dict) -> None:
        self.save_json(json.dumps(doc, sort_keys=True))

    def save_json(self, text: str, stamp: str | None = None) -> None:
        """``save`` of a whole document already serialized, its rules inside it. ``stamp``: the document
        is the dump of a validated model by the code of that stamp (``model.stored``); None: unknown."""
        self.save_lab(text, {}, stamp)

    def save_lab(self, core: str, rules: dict[int, tuple[str, str]], stamp: str | None = None) -> None:
        """A new version of the lab: ``core``, its JSON with an empty rules list at each NSG position
        ``rules`` holds; ``rules``: position -> (cover, the JSON of the NSG's rules); ``stamp``: the
        lab is the dump of a model validated by the code of that stamp (``model.stored``), kept with
        it; None: unknown. Pydantic's ``model_dump_json`` is ten times faster than ``json.dumps``."""
        self.conn.execute(
            "INSERT INTO topology (id, doc, version) VALUES (1, ?, 1) "
            "ON CONFLICT(id) DO UPDATE SET doc = excluded.doc, version = version + 1",
            (core,),
        )
        self._put_rules(rules)
        if stamp is None:
            self.conn.execute("DELETE FROM meta WHERE key = ?", (STAMP_KEY,))
        else:
            self.set_stamp(stamp)

    def _put_rules(self, rules: dict[int, tuple[str, str]]) -> None:
        self.conn.execute("DELETE FROM nsg_rules")
        self.conn.executemany("INSERT INTO nsg_rules (nsg, cover, rules) VALUES (?, ?, ?)",
                              [(position, cover, text) for position, (cover, text) in rules.items()])

    def stamp(self) -> str | None:
        """The stamp the document was saved with (``save_json``)."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (STAMP_KEY,)).fetchone()
        return row[0] if row else None

    def set_stamp(self, stamp: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (STAMP_KEY, stamp))

    def rewrite_lab(self, core: str, rules: dict[int, tuple[str, str]], stamp: str) -> None:
        """The same lab in this code's words (``save_lab``'s arguments): the version stays, the lab
        did not change."""
        self.conn.execute("UPDATE topology SET doc = ? WHERE id = 1", (core,))
        self._put_rules(rules)
        self.set_stamp(stamp)

    def delete(self) -> None:
        self.conn.execute("DELETE FROM topology")
        self.conn.execute("DELETE FROM nsg_rules")
        self.conn.execute("DELETE FROM meta WHERE key = ?", (STAMP_KEY,))

    def version(self) -> int:
        row = self.conn.execute("SELECT version FROM topology WHERE id = 1").fetchone()
        return row[0] if row else 0


def _use_wal(conn: sqlite3.Connection, attempts: int = 50) -> None:
    """WAL is persistent in the file: set it once. Switching modes can fail with "database is locked"
    without waiting on the busy handler (another process still holds the file), so retry."""
    for attempt in range(attempts):
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.1)


class Store:
    def __init__(self, home: Path):
        self.home = home
        self.path = home / "lab.db"

    @classmethod
    def open(cls, home: str | os.PathLike | None = None) -> "Store":
        store = cls(resolve_home(home))
        store.home.mkdir(parents=True, exist_ok=True)
        conn = store._connect()
        _use_wal(conn)
        conn.executescript(SCHEMA)
        # Kept open for the store's life: closing the last connection to a WAL database checkpoints
        # it, which made every short-lived connection's close cost a fsync.
        store._keeper = conn
        return store

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    @contextmanager
    def _immediate(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    @contextmanager
    def write(self) -> Iterator[WriteTx]:
        """One serialized read-modify-write of the topology; rolled back on any error."""
        with self._immediate() as conn:
            yield WriteTx(conn)

    def load(self) -> dict | None:
        stored = self.load_stored()
        return stored.doc() if stored is not None else None

    def load_stored(self, wanted: Callable[[str], bool] | None = None) -> StoredLab | None:
        """``WriteTx.load_stored``, in one read transaction (the lab and its rules of one version)."""
        conn = self._connect()
        try:
            conn.execute("BEGIN")
            return WriteTx(conn).load_stored(wanted)
        finally:
            conn.close()

    def has_lab(self) -> bool:
        conn = self._connect()
        try:
            return conn.execute("SELECT 1 FROM topology WHERE id = 1").fetchone() is not None
        finally:
            conn.close()

    def version(self) -> int:
        conn = self._connect()
        try:
            row = conn.execute("SELECT version FROM topology WHERE id = 1").fetchone()
            return row[0] if row else 0
        finally:
            conn.close()

    # -- what backends created ---------------------------------------------------------
    def record(self, kind: str, name: str, data: dict[str, Any] | None = None) -> None:
        with self._immediate() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO backend_objects (kind, name, data) VALUES (?, ?, ?)",
                (kind, name, json.dumps(data or {}, sort_keys=True)),
            )

    def record_many(self, kind: str, items: dict[str, dict[str, Any] | None]) -> None:
        """``record`` for many names in ONE transaction (one commit instead of one per name)."""
        if not items:
            return
        with self._immediate() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO backend_objects (kind, name, data) VALUES (?, ?, ?)",
                [(kind, name, json.dumps(data or {}, sort_keys=True)) for name, data in items.items()],
            )

    def forget(self, kind: str, name: str) -> None:
        with self._immediate() as conn:
            conn.execute("DELETE FROM backend_objects WHERE kind = ? AND name = ?", (kind, name))

    def forget_many(self, kind: str, names: list[str]) -> None:
        """``forget`` for many names in ONE transaction."""
        if not names:
            return
        with self._immediate() as conn:
            conn.executemany("DELETE FROM backend_objects WHERE kind = ? AND name = ?",
                             [(kind, name) for name in names])

    def records(self, kind: str | None = None) -> list[tuple[str, str, dict]]:
        conn = self._connect()
        try:
            sql = "SELECT kind, name, data FROM backend_objects"
            rows = conn.execute(sql + (" WHERE kind = ?" if kind else "") + " ORDER BY kind, name",
                                (kind,) if kind else ()).fetchall()
        finally:
            conn.close()
        return [(k, n, json.loads(d)) for k, n, d in rows]

    def get_meta(self, key: str) -> str | None:
        conn = self._connect()
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            return row[0] if row else None
        finally:
            conn.close()

    def set_meta(self, key: str, value: str) -> None:
        with self._immediate() as conn:
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
