/* SPDX-License-Identifier: MIT
 *
 * The store's schema, one numbered step at a time. A step, once committed to main, is never
 * edited: databases in the field have already applied it. Change the schema by appending a step
 * with the next number. Each implementation (SQL dialect) has its own list; the lists describe
 * the same tables.
 *
 * Timestamps are wall-clock milliseconds since the epoch (INTEGER). Names are TEXT compared
 * byte-wise. Percentiles and other REAL columns are NULL when the value was NaN ("no data").
 */
#include "store_impl.h"

const struct qv_store_migration qv__store_sqlite_migrations[] = {
    {1, "initial schema",
     /* Every model version the server has seen, with its last lifecycle state. */
     "CREATE TABLE versions ("
     "  model TEXT NOT NULL,"
     "  version INTEGER NOT NULL,"
     "  sha256 TEXT NOT NULL DEFAULT '',"
     "  state TEXT NOT NULL,"
     "  reason TEXT NOT NULL DEFAULT '',"
     "  first_seen_ms INTEGER NOT NULL,"
     "  updated_ms INTEGER NOT NULL,"
     "  PRIMARY KEY (model, version)"
     ");"
     /* One route document per model, and the one it replaced (for rollback). */
     "CREATE TABLE routes ("
     "  model TEXT PRIMARY KEY,"
     "  doc TEXT NOT NULL,"
     "  prev_doc TEXT,"
     "  updated_ms INTEGER NOT NULL"
     ");"
     "CREATE TABLE labels ("
     "  model TEXT NOT NULL,"
     "  label TEXT NOT NULL,"
     "  version INTEGER NOT NULL,"
     "  updated_ms INTEGER NOT NULL,"
     "  PRIMARY KEY (model, label)"
     ");"
     /* The audit log. AUTOINCREMENT: ids are never reused, even after deletes. */
     "CREATE TABLE events ("
     "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
     "  ts_ms INTEGER NOT NULL,"
     "  model TEXT NOT NULL DEFAULT '',"
     "  who TEXT NOT NULL,"
     "  what TEXT NOT NULL,"
     "  old_value TEXT,"
     "  new_value TEXT"
     ");"
     "CREATE INDEX events_model_ts ON events (model, ts_ms, id);"
     "CREATE INDEX events_ts ON events (ts_ms, id);"
     /* Metric history: one row per version per controller window. */
     "CREATE TABLE history ("
     "  model TEXT NOT NULL,"
     "  version INTEGER NOT NULL,"
     "  ts_ms INTEGER NOT NULL,"
     "  requests INTEGER NOT NULL,"
     "  errors INTEGER NOT NULL,"
     "  p50_ms REAL,"
     "  p95_ms REAL,"
     "  p99_ms REAL,"
     "  mean_ms REAL,"
     "  cpu_ms_per_req REAL,"
     "  memory_bytes INTEGER NOT NULL,"
     "  queue_depth INTEGER NOT NULL,"
     "  weight REAL,"
     "  PRIMARY KEY (model, ts_ms, version)"
     ") WITHOUT ROWID;"
     "CREATE INDEX history_ts ON history (ts_ms);"
     /* Small persistent state of the controller and the router (bandit, rollout, ...). */
     "CREATE TABLE kv ("
     "  ns TEXT NOT NULL,"
     "  key TEXT NOT NULL,"
     "  value TEXT NOT NULL,"
     "  updated_ms INTEGER NOT NULL,"
     "  PRIMARY KEY (ns, key)"
     ");"},
    {2, "route history stack",
     /* Every route document a change replaced, newest on top: a rollback pops one, so
      * rolling back twice goes back two changes. Each document has a revision, counted
      * per model from 1 and never reused (last_revision). */
     "ALTER TABLE routes ADD COLUMN revision INTEGER NOT NULL DEFAULT 1;"
     "ALTER TABLE routes ADD COLUMN last_revision INTEGER NOT NULL DEFAULT 1;"
     "CREATE TABLE route_history ("
     "  model TEXT NOT NULL,"
     "  seq INTEGER NOT NULL,"
     "  revision INTEGER NOT NULL,"
     "  doc TEXT NOT NULL,"
     "  replaced_ms INTEGER NOT NULL,"
     "  PRIMARY KEY (model, seq)"
     ");"
     "INSERT INTO route_history (model, seq, revision, doc, replaced_ms)"
     "  SELECT model, 1, 0, prev_doc, updated_ms FROM routes WHERE prev_doc IS NOT NULL;"},
    {0, NULL, NULL},
};

/* The same tables for PostgreSQL: BIGINT for every INTEGER column (milliseconds and counters
 * are 64-bit), DOUBLE PRECISION for REAL, an identity column for the audit log's ids. */
const struct qv_store_migration qv__store_pg_migrations[] = {
    {1, "initial schema",
     "CREATE TABLE versions ("
     "  model TEXT NOT NULL,"
     "  version BIGINT NOT NULL,"
     "  sha256 TEXT NOT NULL DEFAULT '',"
     "  state TEXT NOT NULL,"
     "  reason TEXT NOT NULL DEFAULT '',"
     "  first_seen_ms BIGINT NOT NULL,"
     "  updated_ms BIGINT NOT NULL,"
     "  PRIMARY KEY (model, version)"
     ");"
     "CREATE TABLE routes ("
     "  model TEXT PRIMARY KEY,"
     "  doc TEXT NOT NULL,"
     "  prev_doc TEXT,"
     "  updated_ms BIGINT NOT NULL"
     ");"
     "CREATE TABLE labels ("
     "  model TEXT NOT NULL,"
     "  label TEXT NOT NULL,"
     "  version BIGINT NOT NULL,"
     "  updated_ms BIGINT NOT NULL,"
     "  PRIMARY KEY (model, label)"
     ");"
     "CREATE TABLE events ("
     "  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
     "  ts_ms BIGINT NOT NULL,"
     "  model TEXT NOT NULL DEFAULT '',"
     "  who TEXT NOT NULL,"
     "  what TEXT NOT NULL,"
     "  old_value TEXT,"
     "  new_value TEXT"
     ");"
     "CREATE INDEX events_model_ts ON events (model, ts_ms, id);"
     "CREATE INDEX events_ts ON events (ts_ms, id);"
     "CREATE TABLE history ("
     "  model TEXT NOT NULL,"
     "  version BIGINT NOT NULL,"
     "  ts_ms BIGINT NOT NULL,"
     "  requests BIGINT NOT NULL,"
     "  errors BIGINT NOT NULL,"
     "  p50_ms DOUBLE PRECISION,"
     "  p95_ms DOUBLE PRECISION,"
     "  p99_ms DOUBLE PRECISION,"
     "  mean_ms DOUBLE PRECISION,"
     "  cpu_ms_per_req DOUBLE PRECISION,"
     "  memory_bytes BIGINT NOT NULL,"
     "  queue_depth BIGINT NOT NULL,"
     "  weight DOUBLE PRECISION,"
     "  PRIMARY KEY (model, ts_ms, version)"
     ");"
     "CREATE INDEX history_ts ON history (ts_ms);"
     "CREATE TABLE kv ("
     "  ns TEXT NOT NULL,"
     "  key TEXT NOT NULL,"
     "  value TEXT NOT NULL,"
     "  updated_ms BIGINT NOT NULL,"
     "  PRIMARY KEY (ns, key)"
     ");"},
    {2, "route history stack",
     "ALTER TABLE routes ADD COLUMN revision BIGINT NOT NULL DEFAULT 1;"
     "ALTER TABLE routes ADD COLUMN last_revision BIGINT NOT NULL DEFAULT 1;"
     "CREATE TABLE route_history ("
     "  model TEXT NOT NULL,"
     "  seq BIGINT NOT NULL,"
     "  revision BIGINT NOT NULL,"
     "  doc TEXT NOT NULL,"
     "  replaced_ms BIGINT NOT NULL,"
     "  PRIMARY KEY (model, seq)"
     ");"
     "INSERT INTO route_history (model, seq, revision, doc, replaced_ms)"
     "  SELECT model, 1, 0, prev_doc, updated_ms FROM routes WHERE prev_doc IS NOT NULL;"},
    {3, "requests answered",
     /* Cluster mode: which version answered a request id, written by the answering node in
      * batches, read by the node a feedback reaches; pruned by age. PostgreSQL only. */
     "CREATE TABLE requests ("
     "  id TEXT PRIMARY KEY,"
     "  model TEXT NOT NULL,"
     "  version BIGINT NOT NULL,"
     "  cls INTEGER NOT NULL,"
     "  ts_ms BIGINT NOT NULL"
     ");"
     "CREATE INDEX requests_ts ON requests (ts_ms);"},
    {4, "feedback once per cluster",
     /* Cluster mode: a request id's feedback is claimed once for the whole cluster (pruned with
      * the requests), and the rewards accepted on every node add up per version. */
     "CREATE TABLE feedback_claims ("
     "  id TEXT PRIMARY KEY,"
     "  ts_ms BIGINT NOT NULL"
     ");"
     "CREATE INDEX feedback_claims_ts ON feedback_claims (ts_ms);"
     "CREATE TABLE feedback_totals ("
     "  model TEXT NOT NULL,"
     "  version BIGINT NOT NULL,"
     "  count BIGINT NOT NULL,"
     "  reward_sum DOUBLE PRECISION NOT NULL,"
     "  PRIMARY KEY (model, version)"
     ");"},
    {0, NULL, NULL},
};
