// The SQL of the store's tables, version kSqliteSchemaVersion (docs/formats/store.md says
// what every column means; keep the two in step and bump the version on any change).
#pragma once

namespace ocx::store::sqlite {

// Creates every table and index of an empty database. Run inside a transaction.
inline constexpr char kCreateSchemaSql[] = R"sql(
CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE accounts (
  id           INTEGER PRIMARY KEY,
  name         TEXT NOT NULL,
  role         TEXT NOT NULL,
  created_seq  INTEGER NOT NULL,
  created_time INTEGER NOT NULL
) STRICT;

CREATE TABLE balances (
  owner  INTEGER NOT NULL,
  kind   TEXT NOT NULL,
  amount INTEGER NOT NULL,
  PRIMARY KEY (owner, kind)
) STRICT, WITHOUT ROWID;

CREATE TABLE ledger_entries (
  entry      INTEGER PRIMARY KEY,
  seq        INTEGER NOT NULL,
  time       INTEGER NOT NULL,
  from_owner INTEGER NOT NULL,
  from_kind  TEXT NOT NULL,
  to_owner   INTEGER NOT NULL,
  to_kind    TEXT NOT NULL,
  amount     INTEGER NOT NULL,
  kind       TEXT NOT NULL,
  reference  INTEGER NOT NULL
) STRICT;
CREATE INDEX ledger_entries_from ON ledger_entries (from_owner);
CREATE INDEX ledger_entries_to ON ledger_entries (to_owner) WHERE to_owner <> from_owner;

CREATE TABLE machines (
  id               INTEGER PRIMARY KEY,
  owner            INTEGER NOT NULL,
  name             TEXT NOT NULL,
  online           INTEGER NOT NULL,
  registered_seq   INTEGER NOT NULL,
  registered_time  INTEGER NOT NULL,
  last_status_time INTEGER NOT NULL
) STRICT;
CREATE INDEX machines_owner ON machines (owner);

CREATE TABLE orders (
  id            INTEGER PRIMARY KEY,
  market        TEXT NOT NULL,
  side          TEXT NOT NULL,
  account       INTEGER NOT NULL,
  price         INTEGER NOT NULL,
  quantity      INTEGER NOT NULL,
  remaining     INTEGER NOT NULL,
  filled        INTEGER NOT NULL,
  status        TEXT NOT NULL,
  cancel_reason TEXT,
  created_seq   INTEGER NOT NULL,
  created_time  INTEGER NOT NULL,
  updated_seq   INTEGER NOT NULL,
  updated_time  INTEGER NOT NULL
) STRICT;
CREATE INDEX orders_account ON orders (account);
CREATE INDEX orders_account_status ON orders (account, status);

CREATE TABLE order_rejections (
  id       INTEGER PRIMARY KEY,
  seq      INTEGER NOT NULL,
  time     INTEGER NOT NULL,
  market   TEXT NOT NULL,
  command  TEXT NOT NULL,
  order_id INTEGER NOT NULL,
  account  INTEGER NOT NULL,
  side     TEXT NOT NULL,
  price    INTEGER NOT NULL,
  quantity INTEGER NOT NULL,
  reason   TEXT NOT NULL
) STRICT;
CREATE INDEX order_rejections_account ON order_rejections (account);

CREATE TABLE trades (
  id          INTEGER PRIMARY KEY,
  seq         INTEGER NOT NULL,
  time        INTEGER NOT NULL,
  market      TEXT NOT NULL,
  taker_order INTEGER NOT NULL,
  maker_order INTEGER NOT NULL,
  taker_side  TEXT NOT NULL,
  buyer       INTEGER NOT NULL,
  seller      INTEGER NOT NULL,
  price       INTEGER NOT NULL,
  quantity    INTEGER NOT NULL,
  machine     INTEGER NOT NULL,
  lease       INTEGER NOT NULL
) STRICT;
CREATE INDEX trades_market ON trades (market);
CREATE INDEX trades_time ON trades (time);
CREATE INDEX trades_buyer ON trades (buyer);
CREATE INDEX trades_seller ON trades (seller);

CREATE TABLE leases (
  id                    INTEGER PRIMARY KEY,
  buyer                 INTEGER NOT NULL,
  seller                INTEGER NOT NULL,
  machine               INTEGER NOT NULL,
  market                TEXT NOT NULL,
  slots                 INTEGER NOT NULL,
  price                 INTEGER NOT NULL,
  max_hours             INTEGER NOT NULL,
  start_time            INTEGER NOT NULL,
  start_seq             INTEGER NOT NULL,
  escrow                INTEGER NOT NULL,
  buy_order             INTEGER NOT NULL,
  sell_order            INTEGER NOT NULL,
  billed_total          INTEGER NOT NULL,
  billed_seconds        INTEGER NOT NULL,
  reported_wall_seconds INTEGER NOT NULL,
  status                TEXT NOT NULL,
  end_reason            TEXT,
  end_time              INTEGER,
  end_seq               INTEGER,
  refunded              INTEGER
) STRICT;
CREATE INDEX leases_buyer ON leases (buyer);
CREATE INDEX leases_seller ON leases (seller);
CREATE INDEX leases_machine ON leases (machine);

CREATE TABLE usage (
  lease           INTEGER NOT NULL,
  seq             INTEGER NOT NULL,
  time            INTEGER NOT NULL,
  wall_seconds    INTEGER NOT NULL,
  cpu_seconds     INTEGER NOT NULL,
  gpu_seconds     INTEGER NOT NULL,
  peak_memory_mib INTEGER NOT NULL,
  billed_total    INTEGER NOT NULL,
  PRIMARY KEY (lease, seq)
) STRICT, WITHOUT ROWID;

CREATE TABLE tasks (
  lease         INTEGER PRIMARY KEY,
  buyer         INTEGER NOT NULL,
  machine       INTEGER NOT NULL,
  spec          TEXT NOT NULL,
  status        TEXT NOT NULL,
  result        TEXT,
  assigned_seq  INTEGER NOT NULL,
  assigned_time INTEGER NOT NULL,
  finished_seq  INTEGER,
  finished_time INTEGER
) STRICT;
CREATE INDEX tasks_buyer ON tasks (buyer);

CREATE TABLE jobs (
  id             INTEGER PRIMARY KEY,
  owner          INTEGER NOT NULL,
  client_job_id  TEXT NOT NULL,
  market         TEXT NOT NULL,
  slots_per_task INTEGER NOT NULL,
  tasks_count    INTEGER NOT NULL,
  max_price      INTEGER NOT NULL,
  max_hours      INTEGER NOT NULL,
  constraints    TEXT NOT NULL,
  task_spec      TEXT NOT NULL,
  state          TEXT NOT NULL,
  submitted_seq  INTEGER NOT NULL,
  submitted_time INTEGER NOT NULL,
  end_seq        INTEGER,
  end_time       INTEGER
) STRICT;
CREATE INDEX jobs_owner ON jobs (owner, id);

CREATE TABLE job_tasks (
  job      INTEGER NOT NULL,
  idx      INTEGER NOT NULL,
  state    TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  order_id INTEGER NOT NULL,
  lease    INTEGER NOT NULL,
  machine  INTEGER NOT NULL,
  PRIMARY KEY (job, idx)
) STRICT, WITHOUT ROWID;

CREATE TABLE task_blobs (
  sha256 TEXT NOT NULL,
  lease  INTEGER NOT NULL,
  job    INTEGER NOT NULL,
  role   TEXT NOT NULL,
  PRIMARY KEY (sha256, lease, job, role)
) STRICT, WITHOUT ROWID;
)sql";

// Brings a version 3 store to version 4 in place (run inside a transaction): the ledger's
// `time` index goes (a time bound is found by a binary search over entries instead), and
// the `to_owner` index keeps only transfers between two accounts (one within an account, a
// hold or a release, is found through `from_owner`). Every row stays as it is.
inline constexpr char kMigrateFrom3Sql[] = R"sql(
DROP INDEX ledger_entries_time;
DROP INDEX ledger_entries_to;
CREATE INDEX ledger_entries_to ON ledger_entries (to_owner) WHERE to_owner <> from_owner;
UPDATE meta SET value = 4 WHERE key = 'schema_version';
)sql";

// Brings a version 4 store to version 5 in place (run inside a transaction): adds the empty
// `task_blobs` table. The caller then fills it from the `tasks` and `jobs` rows already
// there (their documents are parsed in C++, as the projector does), in the same transaction.
inline constexpr char kMigrateFrom4Sql[] = R"sql(
CREATE TABLE task_blobs (
  sha256 TEXT NOT NULL,
  lease  INTEGER NOT NULL,
  job    INTEGER NOT NULL,
  role   TEXT NOT NULL,
  PRIMARY KEY (sha256, lease, job, role)
) STRICT, WITHOUT ROWID;
UPDATE meta SET value = 5 WHERE key = 'schema_version';
)sql";

}  // namespace ocx::store::sqlite
