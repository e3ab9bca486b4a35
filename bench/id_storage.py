# /// script
# requires-python = ">=3.13"
# dependencies = ["psycopg[binary]>=3.3", "shortuuid>=1.0.13"]
# ///
"""How do primary-key / public-ID storage choices compare on PostgreSQL 17?

Every Shipshape model gets a public ID that is a short UUID (shortuuid, base57, 22 characters).
This measures what storing it costs, against a plain bigint identity key:

  a   bigint identity primary key (the baseline; not a public ID)
  b   varchar(22) short-UUID primary key, database default collation (what the template ships)
  b2  as b, with COLLATE "C" (byte-wise comparisons)
  b3  as b, with the ICU en-US collation: a stand-in for a linguistic default like en_US.utf8
  c   native uuid primary key (random v4), shown as a short UUID at the edges
  d   bigint identity primary key plus a unique varchar(22) short-UUID public_id column
  e   native uuid primary key, time-ordered (UUIDv7 layout); leaks creation time

Each variant gets its own fresh `parent` and `child` tables (the child has a foreign key to the
parent; both follow the variant's ID scheme, as every model would), in a schema of its own. The
DDL is what Django generates, including the varchar_pattern_ops "_like" indexes Django adds to
indexed varchar columns (--no-like-indexes leaves them out).

Measured: insert throughput (making the IDs in Python included), table and index sizes, point
lookups by public ID, and joins through the foreign key. The machine this runs on may be busy
with other work, so the variants take turns: batch by batch for bulk inserts, statement by
statement for single-row inserts and lookups, run by run for other queries. A burst of
outside load then lands on every variant alike instead of on whichever one was running.

Run: uv run bench/id_storage.py [--rows N] [--lookups N] [--database-url URL]
Without --database-url it starts a throwaway postgres:17 container and removes it afterwards.
"""

import argparse
import contextlib
import functools
import importlib.metadata
import os
import platform
import random
import secrets
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from time import perf_counter

import psycopg
import shortuuid

IMAGE = "postgres:17"
BATCH_ROWS = 10_000  # rows per COPY statement; each COPY is its own transaction
SEED = 1729
# Server settings for the throwaway container: every variant's tables stay in shared buffers
# at once, and no checkpoint is forced by WAL volume in the middle of the timed inserts.
SERVER_SETTINGS = {"shared_buffers": "4GB", "max_wal_size": "16GB", "checkpoint_timeout": "1h"}
# Session settings, applied on any server: no JIT compilation or parallel workers, whose
# start-up costs add noise on a 2-core machine; enough memory for an in-memory hash join.
SESSION_SETTINGS = {"work_mem": "64MB", "jit": "off", "max_parallel_workers_per_gather": "0"}
METHOD = (f"`COPY ... FROM STDIN` (text format, psycopg `Cursor.copy().write_row()`), "
          f"{BATCH_ROWS:,} rows per COPY, one transaction per COPY, indexes in place")


def log(message: str) -> None:
    """Progress goes to stderr so that stdout holds only the report."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- ID generators, as the app would call them ---------------------------------------------

def new_short_uuid() -> str:
    """What shortuuid.django_fields.ShortUUIDField's default does for every new row."""
    return shortuuid.ShortUUID().random(length=22)


def new_uuid7() -> uuid.UUID:
    """A UUIDv7 (RFC 9562) layout: 48-bit Unix time in ms, version, variant, 74 random bits.

    Python 3.13 has no uuid.uuid7(). Keys made in the same millisecond are not ordered among
    themselves, which is enough to keep B-tree inserts at the right-hand edge.
    """
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10))
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # RFC 9562 variant
    return uuid.UUID(int=value)


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    id_type: str | None  # SQL type of the primary key; None: bigint identity
    public_type: str | None = None  # SQL type of a separate public_id column, if any
    new_id: Callable[[], object] | None = None  # makes the Python-generated column's values
    to_url: Callable[[object], str] = str  # stored lookup value -> the public (URL) form
    from_url: Callable[[str], object] = str  # public form -> value the query compares with
    array_type: str = "varchar"  # element type for arrays of lookup values

    @property
    def lookup_column(self) -> str:
        return "public_id" if self.public_type else "id"

    @property
    def generated_columns(self) -> list[str]:
        """The column whose values Python makes; none when the database numbers the rows."""
        if self.new_id is None:
            return []
        return ["public_id" if self.public_type else "id"]


def variants(default_collation: str, has_icu: bool) -> list[Variant]:
    short_edges = dict(to_url=shortuuid.encode, from_url=shortuuid.decode, array_type="uuid")
    found = [
        Variant("a", "bigint identity PK (baseline, not a public ID)", None,
                to_url=str, from_url=int, array_type="bigint"),
        Variant("b", f"varchar(22) short-UUID PK, default collation ({default_collation})",
                "varchar(22)", new_id=new_short_uuid),
        Variant("b2", 'varchar(22) short-UUID PK, COLLATE "C"',
                'varchar(22) COLLATE "C"', new_id=new_short_uuid),
        Variant("b3", 'varchar(22) short-UUID PK, COLLATE "en-US-x-icu"',
                'varchar(22) COLLATE "en-US-x-icu"', new_id=new_short_uuid),
        Variant("c", "uuid v4 PK, short UUID at the edges", "uuid",
                new_id=uuid.uuid4, **short_edges),
        Variant("d", "bigint identity PK + unique varchar(22) short-UUID public_id", None,
                public_type="varchar(22)", new_id=new_short_uuid),
        Variant("e", "uuid v7-like PK, short UUID at the edges (leaks creation time)", "uuid",
                new_id=new_uuid7, **short_edges),
    ]
    return [v for v in found if has_icu or v.key != "b3"]


# --- The database ---------------------------------------------------------------------------

@contextlib.contextmanager
def throwaway_postgres() -> Iterator[tuple[str, str]]:
    """Start a postgres:17 container; yield (URL, how it is reached); always remove it."""
    name = f"shipshape-bench-id-storage-{os.getpid()}-{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(16)
    settings = [arg for k, v in SERVER_SETTINGS.items() for arg in ("-c", f"{k}={v}")]
    log(f"starting container {name}")
    subprocess.run(["docker", "run", "-d", "--rm", "--name", name, "--shm-size", "256m",
                    "-e", f"POSTGRES_PASSWORD={password}", "-p", "127.0.0.1::5432",
                    IMAGE, *settings], check=True, capture_output=True)
    try:
        # -h 127.0.0.1 skips the entrypoint's temporary init server, which listens on no TCP.
        deadline = time.monotonic() + 120
        while subprocess.run(["docker", "exec", name, "pg_isready", "-h", "127.0.0.1"],
                             capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not become ready in 120 s")
            time.sleep(0.5)
        yield reach(name, password)
    finally:
        log(f"removing container {name}")
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def reach(name: str, password: str) -> tuple[str, str]:
    """Prefer the container's bridge address: the published port goes through docker-proxy,
    a userland relay that adds latency to every round trip and competes for the CPUs."""
    def output(*command: str) -> str:
        return subprocess.run(command, check=True, capture_output=True, text=True).stdout
    published = output("docker", "port", name, "5432/tcp").split()[0]  # "127.0.0.1:32771"
    bridge = output("docker", "inspect", "-f",
                    "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", name).split()
    candidates = [(f"{ip}:5432", "the container's bridge address (no docker-proxy)")
                  for ip in bridge[:1]]
    candidates.append((published, "the published port (through docker-proxy)"))
    for address, how in candidates:
        url = f"postgresql://postgres:{password}@{address}/postgres"
        try:
            psycopg.connect(url, connect_timeout=3).close()
        except psycopg.OperationalError:
            continue
        return url, f"{how}, {address}"
    raise RuntimeError(f"cannot connect to {name} at {[a for a, _ in candidates]}")


def connect(url: str, schema: str | None = None) -> psycopg.Connection:
    conn = psycopg.connect(url, autocommit=True)  # autocommit: each COPY commits by itself
    if schema:
        conn.execute(f"SET search_path TO {schema}")
    for name, value in SESSION_SETTINGS.items():
        conn.execute(f"SET {name} = '{value}'")
    return conn


def create_tables(conn: psycopg.Connection, v: Variant, like_indexes: bool) -> None:
    """Create parent and child the way Django's migrations would."""
    id_column = v.id_type or "bigint GENERATED BY DEFAULT AS IDENTITY"
    fk_type = v.id_type or "bigint"
    public = f"public_id {v.public_type} NOT NULL UNIQUE, " if v.public_type else ""
    # Autovacuum is off so that it cannot wake up during a timed step; VACUUM ANALYZE runs
    # explicitly before the measurements instead.
    options = "WITH (autovacuum_enabled = off)"
    ddl = [
        f"CREATE TABLE parent (id {id_column} PRIMARY KEY, {public}"
        f"name varchar(100) NOT NULL, created_at timestamptz NOT NULL DEFAULT now()) {options}",
        # Django's foreign keys are DEFERRABLE INITIALLY DEFERRED and get an index.
        f"CREATE TABLE child (id {id_column} PRIMARY KEY, {public}"
        f"parent_id {fk_type} NOT NULL REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED, "
        f"quantity integer NOT NULL) {options}",
        "CREATE INDEX child_parent_id ON child (parent_id)",
    ]
    if like_indexes:
        # Django adds a varchar_pattern_ops index (for LIKE) to every unique or indexed
        # varchar column, primary and foreign keys included.
        varchar_columns = []
        if (v.id_type or "").startswith("varchar"):
            varchar_columns = [("parent", "id"), ("child", "id"), ("child", "parent_id")]
        if v.public_type:
            varchar_columns += [("parent", "public_id"), ("child", "public_id")]
        ddl += [f"CREATE INDEX {table}_{column}_like ON {table} ({column} varchar_pattern_ops)"
                for table, column in varchar_columns]
    for statement in ddl:
        conn.execute(statement)


# --- Measuring ------------------------------------------------------------------------------

Batch = tuple[int, float, float]  # rows, seconds in all, seconds of which making IDs


@dataclass
class Bench:
    """One variant under test, with its own schema and connection, and what it measured."""
    variant: Variant
    conn: psycopg.Connection
    parent_batches: list[Batch] = field(default_factory=list)
    child_batches: list[Batch] = field(default_factory=list)
    fk_keys: list = field(default_factory=list)  # what children reference, insertion order
    public_keys: list = field(default_factory=list)  # the looked-up column, insertion order
    urls: list[str] = field(default_factory=list)  # public forms of the lookup sample
    values: list = field(default_factory=list)  # the same, as the query compares them
    sizes: dict[str, float] = field(default_factory=dict)  # MB
    index_sizes: dict[str, float] = field(default_factory=dict)  # MB, per index
    lookup_s: list[float] = field(default_factory=list)  # one per point lookup
    insert_s: list[float] = field(default_factory=list)  # one per single-row INSERT
    probe_ms: list[float] = field(default_factory=list)  # server time of all probes, per run
    full_join_s: list[float] = field(default_factory=list)
    subset_join_s: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.variant.key

    @functools.cached_property
    def client(self) -> psycopg.ClientCursor:
        """A cursor that binds parameters on the client, as Django does by default."""
        return psycopg.ClientCursor(self.conn)


def in_turn(benches: list[Bench], turn: int) -> list[Bench]:
    """The benches, starting at a different one each turn, so none is always first or last."""
    turn %= len(benches)
    return benches[turn:] + benches[:turn]


def copy_batch(conn: psycopg.Connection, statement: str, start: int, count: int,
               new_id: Callable[[], object] | None,
               payload: Callable[[int], tuple]) -> tuple[Batch, list]:
    """COPY one batch of rows; return its timing and the IDs made for it.

    The IDs are made just before the COPY, as an app makes them just before it saves; both
    steps count towards the throughput.
    """
    t0 = perf_counter()
    ids = [new_id() for _ in range(count)] if new_id else []
    t1 = perf_counter()
    with conn.cursor() as cur, cur.copy(statement) as copy:
        if new_id:
            for i, key in enumerate(ids, start):
                copy.write_row((key, *payload(i)))
        else:
            for i in range(start, start + count):
                copy.write_row(payload(i))
    return (count, perf_counter() - t0, t1 - t0), ids


def insert_parents(benches: list[Bench], rows: int) -> None:
    for turn, start in enumerate(range(0, rows, BATCH_ROWS)):
        for b in in_turn(benches, turn):
            columns = ", ".join(b.variant.generated_columns + ["name"])
            batch, ids = copy_batch(b.conn, f"COPY parent ({columns}) FROM STDIN", start,
                                    min(BATCH_ROWS, rows - start), b.variant.new_id,
                                    lambda i: (f"parent {i}",))
            b.parent_batches.append(batch)
            b.public_keys += ids
    for b in benches:
        if b.variant.id_type:  # the made IDs are the primary keys
            b.fk_keys = b.public_keys
        else:  # identity: read the numbers back (insertion order is id order)
            b.fk_keys = [row[0] for row in b.conn.execute("SELECT id FROM parent ORDER BY id")]
            b.public_keys = b.public_keys or b.fk_keys


def insert_children(benches: list[Bench], rows: int, parent_of: list[int]) -> None:
    """Every variant's child i references the parent inserted i-th, for the same i."""
    for turn, start in enumerate(range(0, rows, BATCH_ROWS)):
        for b in in_turn(benches, turn):
            columns = ", ".join(b.variant.generated_columns + ["parent_id", "quantity"])
            batch, _ = copy_batch(b.conn, f"COPY child ({columns}) FROM STDIN", start,
                                  min(BATCH_ROWS, rows - start), b.variant.new_id,
                                  lambda i, keys=b.fk_keys: (keys[parent_of[i]], i % 100))
            b.child_batches.append(batch)


def measure_sizes(b: Bench) -> None:
    b.conn.execute("VACUUM ANALYZE parent, child")
    row = b.conn.execute(
        "SELECT pg_relation_size('parent'), pg_indexes_size('parent'),"
        " pg_relation_size('child'), pg_indexes_size('child'),"
        " pg_total_relation_size('parent') + pg_total_relation_size('child')").fetchone()
    mb = 1024 * 1024
    b.sizes = dict(zip(["parent", "parent_idx", "child", "child_idx", "total"],
                       (value / mb for value in row)))
    b.index_sizes = {name: size / mb for name, size in b.conn.execute(
        "SELECT indexrelid::regclass::text, pg_relation_size(indexrelid) FROM pg_index"
        " WHERE indrelid IN ('parent'::regclass, 'child'::regclass) ORDER BY 1")}


def app_lookup(b: Bench, url: str) -> float:
    """One point lookup, as a Django view makes it; seconds.

    Uses client-side parameter binding (Django's default with psycopg 3) and includes
    turning the public form into the stored value (shortuuid.decode for uuid keys).
    """
    t0 = perf_counter()
    b.client.execute(f"SELECT id, name, created_at FROM parent"
                     f" WHERE {b.variant.lookup_column} = %s", (b.variant.from_url(url),))
    row = b.client.fetchone()
    seconds = perf_counter() - t0
    if row is None:
        raise RuntimeError(f"{b.key}: lookup of {url!r} found nothing")
    return seconds


def app_insert(b: Bench, i: int) -> float:
    """One single-row INSERT committed on its own, as Django's save() in autocommit makes
    it; seconds, making the ID included."""
    v = b.variant
    columns = v.generated_columns + ["name"]
    t0 = perf_counter()
    b.client.execute(f"INSERT INTO parent ({', '.join(columns)}) VALUES"
                     f" ({', '.join(['%s'] * len(columns))}) RETURNING id",
                     ((v.new_id(),) if v.new_id else ()) + (f"app {i}",))
    b.client.fetchone()
    return perf_counter() - t0


def server_probes_ms(b: Bench) -> float:
    """Server execution time of looking every sampled key up in one statement.

    A nested loop over the index (forced, so that every variant is measured doing the same
    thing) isolates the probes from round trips and parsing; count(p.name) makes each probe
    visit the row, as a real lookup does.
    """
    query = (f"EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) SELECT count(p.name)"
             f" FROM unnest(%s::{b.variant.array_type}[]) AS k(v)"
             f" JOIN parent p ON p.{b.variant.lookup_column} = k.v")
    with b.conn.transaction():
        b.conn.execute("SET LOCAL enable_hashjoin = off")
        b.conn.execute("SET LOCAL enable_mergejoin = off")
        explained = b.conn.execute(query, (b.values,)).fetchone()[0][0]
    found = explained["Plan"]["Plans"][0]["Actual Rows"]  # the join under count()
    if found != len(b.values):
        raise RuntimeError(f"{b.key}: the probes found {found} of {len(b.values)} rows")
    return explained["Execution Time"]


FULL_JOIN = "SELECT count(*) FROM child c JOIN parent p ON p.id = c.parent_id"


def subset_join(b: Bench, parents: int) -> tuple[str, tuple]:
    """The children of a set of parents named by their public IDs (a list page, a prefetch)."""
    return (f"SELECT count(*), sum(c.quantity) FROM parent p JOIN child c ON c.parent_id = p.id"
            f" WHERE p.{b.variant.lookup_column} = ANY(%s::{b.variant.array_type}[])",
            (b.values[:parents],))


def timed(conn: psycopg.Connection, query: str, params: tuple = ()) -> tuple[float, tuple]:
    t0 = perf_counter()
    result = conn.execute(query, params).fetchone()
    return perf_counter() - t0, result


def join_type(conn: psycopg.Connection, query: str, params: tuple = ()) -> str:
    """The first join node of the query's plan, e.g. "Hash Join"."""
    nodes = [conn.execute(f"EXPLAIN (FORMAT JSON) {query}", params).fetchone()[0][0]["Plan"]]
    while nodes:
        node = nodes.pop(0)
        if "Join" in node["Node Type"] or node["Node Type"] == "Nested Loop":
            return node["Node Type"]
        nodes += node.get("Plans", [])
    return "no join"


def measure_queries(benches: list[Bench], args: argparse.Namespace) -> None:
    """Lookups and joins, the variants taking turns; every query is warmed up first."""
    for b in benches:
        for url in b.urls[:1000]:
            app_lookup(b, url)
        server_probes_ms(b)
        timed(b.conn, FULL_JOIN)
        timed(b.conn, *subset_join(b, args.subset))
    log("point lookups")
    # One lookup per variant in turn: a lookup takes ~0.1 ms, so a burst of outside load
    # lands on every variant alike.
    for i in range(len(benches[0].urls)):
        for b in in_turn(benches, i):
            b.lookup_s.append(app_lookup(b, b.urls[i]))
    log("server-side probes and joins")
    for turn in range(args.query_runs):
        for b in in_turn(benches, turn):
            b.probe_ms.append(server_probes_ms(b))
            seconds, (count,) = timed(b.conn, FULL_JOIN)
            if count != args.child_rows:
                raise RuntimeError(f"{b.key}: the full join counted {count:,} rows")
            b.full_join_s.append(seconds)
            b.subset_join_s.append(timed(b.conn, *subset_join(b, args.subset))[0])
    # Last, so that the rows they add cannot change the figures above.
    log("single-row inserts")
    for b in benches:
        for i in range(100):  # warm-up
            app_insert(b, i)
    for i in range(100, 100 + args.app_inserts):
        for b in in_turn(benches, i):
            b.insert_s.append(app_insert(b, i))
    for b in benches:
        found = timed(b.conn, *subset_join(b, args.subset))[1][0]
        b.notes.append(f"join plans: full {join_type(b.conn, FULL_JOIN)}, subset "
                       f"{join_type(b.conn, *subset_join(b, args.subset))} (found "
                       f"{found:,} children of {args.subset:,} parents)")


# --- The report -----------------------------------------------------------------------------

def batch_rate(batches: list[Batch], without_ids: bool = False) -> float:
    """Rows/s of the median batch: unlike the overall rate, it shrugs off the stalls that
    other processes on a busy machine cause in a few batches."""
    return statistics.median(n / (t - g if without_ids else t) for n, t, g in batches)


def overall_rate(batches: list[Batch]) -> float:
    return sum(n for n, _, _ in batches) / sum(t for _, t, _ in batches)


# (header, the figure, True when more is better, format)
COLUMNS: list[tuple[str, Callable[[Bench], float], bool, str]] = [
    ("Parent insert rows/s", lambda b: batch_rate(b.parent_batches), True, "{:,.0f}"),
    ("Parent insert excl. ID gen rows/s",
     lambda b: batch_rate(b.parent_batches, without_ids=True), True, "{:,.0f}"),
    ("Child insert rows/s", lambda b: batch_rate(b.child_batches), True, "{:,.0f}"),
    ("Single INSERT, app µs", lambda b: statistics.median(b.insert_s) * 1e6, False, "{:,.0f}"),
    ("Parent heap MB", lambda b: b.sizes["parent"], False, "{:,.1f}"),
    ("Parent indexes MB", lambda b: b.sizes["parent_idx"], False, "{:,.1f}"),
    ("Child heap MB", lambda b: b.sizes["child"], False, "{:,.1f}"),
    ("Child indexes MB", lambda b: b.sizes["child_idx"], False, "{:,.1f}"),
    ("Total MB", lambda b: b.sizes["total"], False, "{:,.1f}"),
    ("Lookup, app µs", lambda b: statistics.median(b.lookup_s) * 1e6, False, "{:,.1f}"),
    ("Lookup, server µs",
     lambda b: statistics.median(b.probe_ms) * 1000 / len(b.values), False, "{:,.2f}"),
    ("Full FK join ms", lambda b: statistics.median(b.full_join_s) * 1000, False, "{:,.0f}"),
    ("Subset FK join ms",
     lambda b: statistics.median(b.subset_join_s) * 1000, False, "{:,.2f}"),
]


def markdown(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def relative(value: float, base: float, higher_is_better: bool) -> str:
    """How much worse than the baseline: slower for rates and times, larger for sizes."""
    change = (base / value if higher_is_better else value / base) - 1
    return f"{change:+.0%}"


def id_costs() -> list[list[str]]:
    """The Python-side cost of making and translating IDs, in µs per call."""
    short = shortuuid.encode(uuid.uuid4())
    calls = [("`shortuuid.ShortUUID().random(length=22)` (ShortUUIDField's default)",
              new_short_uuid),
             ("`uuid.uuid4()`", uuid.uuid4),
             ("UUIDv7-like (this script's `new_uuid7()`)", new_uuid7),
             ("`shortuuid.encode(uuid.uuid4())`", lambda: shortuuid.encode(uuid.uuid4())),
             ("`shortuuid.decode(short_id)`", lambda: shortuuid.decode(short))]
    rows = []
    for name, call in calls:
        n = 50_000
        t0 = perf_counter()
        for _ in range(n):
            call()
        rows.append([name, f"{(perf_counter() - t0) * 1e6 / n:.2f}"])
    return rows


def report(benches: list[Bench], facts: list[str]) -> None:
    print("## Primary-key / public-ID storage on PostgreSQL\n")
    for fact in facts:
        print(f"- {fact}")

    base = benches[0]
    headers = ["Variant"] + [c[0] for c in COLUMNS]
    print("\n### Measured\n")
    print(markdown(headers, [[f"{b.key}: {b.variant.label}"]
                             + [fmt.format(get(b)) for _, get, _, fmt in COLUMNS]
                             for b in benches]))
    print(f"\n### Relative to {base.key} (positive = slower or larger)\n")
    print(markdown(headers, [[b.key] + [relative(get(b), get(base), better)
                                        for _, get, better, _ in COLUMNS] for b in benches]))

    print("\n### Notes per variant\n")
    for b in benches:
        batches = b.parent_batches + b.child_batches
        share = sum(g for _, _, g in batches) / sum(t for _, t, _ in batches)
        indexes = ", ".join(f"{name} {size:.1f}" for name, size in b.index_sizes.items())
        print(f"- **{b.key}**: making IDs in Python took {share:.0%} of the insert time; "
              f"overall insert rates (all rows / all time): parent "
              f"{overall_rate(b.parent_batches):,.0f}, child {overall_rate(b.child_batches):,.0f}"
              f" rows/s; child insert excl. ID gen {batch_rate(b.child_batches, True):,.0f} "
              f"rows/s; {'; '.join(b.notes)}; index MB: {indexes}")

    print("\n### Python-side ID costs (µs per call)\n")
    print(markdown(["Call", "µs"], id_costs()))
    print(f"""
Columns: inserts are the rows/s of the median {BATCH_ROWS:,}-row batch (robust to stalls
caused by other processes), making the IDs in Python included; children are checked against
the parent's key by the foreign key. "excl. ID gen" leaves out the time spent making the IDs,
which happens before each batch's COPY. Sizes are after VACUUM ANALYZE: heap is
pg_relation_size, indexes pg_indexes_size, total pg_total_relation_size of both tables.
"Single INSERT, app" is the median time of one `INSERT ... RETURNING id` committed on its own
(as Django's save() in autocommit; making the ID included), into the full parent table.
"Lookup, app" is the median round trip of one `SELECT ... WHERE <public id> = %s` from a
single client (Django's client-side binding; decoding the short ID included for uuid keys).
"Lookup, server" is the server's execution time per index probe when all the lookups run as
one nested-loop statement (EXPLAIN ANALYZE; median of the runs). "Full FK join" is
`SELECT count(*) FROM child JOIN parent` over all rows; "Subset FK join" counts the children
of a set of parents named by public ID. Query times are medians of the timed runs, after a
warm-up run.""")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="parent rows (1,000,000)")
    parser.add_argument("--child-rows", type=int, help="child rows (default: --rows)")
    parser.add_argument("--lookups", type=int, default=10_000, help="point lookups (10,000)")
    parser.add_argument("--app-inserts", type=int, default=2_000,
                        help="single-row INSERTs, each its own transaction (2,000)")
    parser.add_argument("--subset", type=int, default=1_000,
                        help="parents whose children the subset join counts (1,000)")
    parser.add_argument("--query-runs", type=int, default=7,
                        help="timed runs of each query after a warm-up; the median counts (7)")
    parser.add_argument("--variants", default="a,b,b2,b3,c,d,e",
                        help="comma-separated variant keys; a, the baseline, always runs")
    parser.add_argument("--no-like-indexes", dest="like_indexes", action="store_false",
                        help="leave out the varchar_pattern_ops indexes Django adds")
    parser.add_argument("--database-url", help="use this server instead of a container")
    args = parser.parse_args()
    args.child_rows = args.child_rows or args.rows
    args.lookups = min(args.lookups, args.rows)
    args.subset = min(args.subset, args.lookups)

    with contextlib.ExitStack() as stack:
        if args.database_url:
            url, reached = args.database_url, "the given URL"
        else:
            url, reached = stack.enter_context(throwaway_postgres())
        admin = stack.enter_context(connect(url))
        run(admin, url, reached, args, stack)


def wal_position(admin: psycopg.Connection) -> tuple[str, object]:
    """The current WAL position and the time of the last checkpoint (None if not allowed)."""
    lsn = admin.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]
    try:  # the control file is current as soon as CHECKPOINT returns, unlike the statistics
        checkpoint = admin.execute(
            "SELECT checkpoint_time FROM pg_control_checkpoint()").fetchone()[0]
    except psycopg.errors.InsufficientPrivilege:
        checkpoint = None
    return lsn, checkpoint


def run(admin: psycopg.Connection, url: str, reached: str, args: argparse.Namespace,
        stack: contextlib.ExitStack) -> None:
    started = time.monotonic()
    collation, provider = admin.execute(
        "SELECT CASE datlocprovider WHEN 'c' THEN datcollate ELSE datlocale END, datlocprovider"
        " FROM pg_database WHERE datname = current_database()").fetchone()
    default_collation = f"{collation}, {dict(c='libc', i='ICU', b='builtin')[provider]}"
    has_icu = admin.execute(
        "SELECT EXISTS (SELECT FROM pg_collation WHERE collname = 'en-US-x-icu')").fetchone()[0]
    wanted = set(args.variants.split(",")) | {"a"}
    chosen = [v for v in variants(default_collation, has_icu) if v.key in wanted]

    benches = []
    for v in chosen:
        schema = f"bench_id_storage_{os.getpid()}_{v.key}"
        admin.execute(f"CREATE SCHEMA {schema}")
        stack.callback(admin.execute, f"DROP SCHEMA {schema} CASCADE")
        benches.append(Bench(v, stack.enter_context(connect(url, schema))))
        create_tables(benches[-1].conn, v, args.like_indexes)

    rng = random.Random(SEED)
    parent_of = [rng.randrange(args.rows) for _ in range(args.child_rows)]
    sample = rng.sample(range(args.rows), args.lookups)
    load_before = os.getloadavg()[0]
    with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
        admin.execute("CHECKPOINT")  # no dirty buffers from before the run
    wal_before, checkpoint_before = wal_position(admin)

    log(f"inserting {args.rows:,} parents into each of {len(benches)} variants")
    insert_parents(benches, args.rows)
    log(f"inserting {args.child_rows:,} children into each variant")
    insert_children(benches, args.child_rows, parent_of)
    wal_after, checkpoint_after = wal_position(admin)
    wal = admin.execute("SELECT pg_wal_lsn_diff(%s, %s)", (wal_after, wal_before)).fetchone()[0]
    checkpointed = ("unknown" if checkpoint_before is None
                    else "yes" if checkpoint_after != checkpoint_before else "no")
    log("VACUUM ANALYZE and sizes")
    for b in benches:
        measure_sizes(b)
        b.urls = [b.variant.to_url(b.public_keys[i]) for i in sample]
        b.values = [b.variant.from_url(url) for url in b.urls]
        b.fk_keys = b.public_keys = []  # free the memory
    measure_queries(benches, args)

    settings = dict(admin.execute(
        "SELECT name, setting || coalesce(' ' || unit, '') FROM pg_settings WHERE name = ANY(%s)",
        (["shared_buffers", "work_mem", "max_wal_size", "checkpoint_timeout", "jit", "fsync",
          "synchronous_commit", "max_parallel_workers_per_gather"],)).fetchall())
    server = ("throwaway `postgres:17` container, server flags "
              + " ".join(f"`-c {k}={v}`" for k, v in SERVER_SETTINGS.items())
              if not args.database_url else "the server at --database-url")
    report(benches, [
        f"PostgreSQL: {admin.execute('SELECT version()').fetchone()[0]}",
        f"Server: {server}; connected through {reached}; session settings "
        + ", ".join(f"`{k}={v}`" for k, v in SESSION_SETTINGS.items())
        + "; autovacuum off on the bench tables (explicit VACUUM ANALYZE instead)",
        "Settings in effect: " + ", ".join(f"{k}={v}" for k, v in sorted(settings.items())),
        f"Database default collation: {default_collation}"
        + ("" if has_icu else " (no ICU collation en-US-x-icu here: variant b3 skipped)"),
        f"Client: Python {platform.python_version()}, psycopg "
        f"{importlib.metadata.version('psycopg')} (libpq {psycopg.pq.version()}), shortuuid "
        f"{importlib.metadata.version('shortuuid')}; host {os.cpu_count()} CPUs",
        f"Rows: {args.rows:,} parents and {args.child_rows:,} children per variant (child i "
        f"references the same random parent in every variant); {args.lookups:,} point "
        f"lookups of random parents; subset join over {args.subset:,} "
        f"parents; {args.query_runs} timed runs per query after a warm-up; "
        f"{args.app_inserts:,} single-row INSERTs into each parent table at the end",
        f"Insert method: {METHOD}; WAL written by the bulk inserts of all variants: "
        f"{wal / 1024 ** 3:.1f} GB; a checkpoint ran during them: {checkpointed}",
        "DDL as Django generates it: FK `DEFERRABLE INITIALLY DEFERRED` with an index on it"
        + (", plus a `varchar_pattern_ops` `_like` index on every indexed varchar column"
           if args.like_indexes else " (the `_like` varchar_pattern_ops indexes left out)"),
        "Fairness: the variants take turns (batch by batch for bulk inserts, statement by "
        "statement for single-row inserts and lookups, run by run for the other queries), so "
        "outside load falls on all of them alike",
        f"1-minute load average: {load_before:.2f} at the start, {os.getloadavg()[0]:.2f} at "
        f"the end; run time {(time.monotonic() - started) / 60:.1f} min",
    ])


if __name__ == "__main__":
    main()
