#!/bin/sh
# Records the pgoutput (protocol version 1) fixtures of tests/fixtures/pgoutput/ from a
# throwaway PostgreSQL cluster (wal_level = logical). Run as root (the cluster runs as the OS
# user postgres); writes <out>/<name>.txt, one message a line: "<lsn> <xid> <hex bytes>".
# Usage: scripts/record-pgoutput.sh [out-dir]
set -eu
OUT=$(realpath "${1:-tests/fixtures/pgoutput}")
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
DIR=$(mktemp -d)
chown postgres "$DIR"
as_pg() { su postgres -s /bin/sh -c "$*"; }
as_pg "$BIN/initdb -D $DIR/data -A trust -U postgres >/dev/null"
as_pg "$BIN/pg_ctl -D $DIR/data -l $DIR/log -o '-p 5499 -k $DIR -c listen_addresses= -c wal_level=logical -c fsync=off' -w start >/dev/null"
trap 'as_pg "$BIN/pg_ctl -D $DIR/data -m immediate stop" >/dev/null; rm -rf "$DIR"' EXIT
psql() { as_pg "$BIN/psql -h $DIR -p 5499 -U postgres -d postgres -v ON_ERROR_STOP=1 -qAt" ; }

psql <<'SQL'
CREATE TYPE mood AS ENUM ('sad', 'happy');
CREATE TABLE parent (id int PRIMARY KEY, name text, feel mood);
CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent ON DELETE CASCADE ON UPDATE CASCADE, note text);
CREATE TABLE nokey (a int, b text);
ALTER TABLE nokey REPLICA IDENTITY FULL;
CREATE TABLE big (id int PRIMARY KEY, blob text, n int);
CREATE TABLE seq_t (id serial PRIMARY KEY, v int);
CREATE TABLE pt (id int, k int, v text, PRIMARY KEY (id, k)) PARTITION BY RANGE (k);
CREATE TABLE pt1 PARTITION OF pt FOR VALUES FROM (0) TO (10);
CREATE TABLE pt2 PARTITION OF pt FOR VALUES FROM (10) TO (20);
CREATE PUBLICATION pgdr_fx FOR TABLE parent, child, nokey, big, seq_t, pt
  WITH (publish_via_partition_root = true);
SELECT 'slot' FROM pg_create_logical_replication_slot('fx', 'pgoutput');
SELECT 'slotb' FROM pg_create_logical_replication_slot('fxb', 'pgoutput');
SQL

psql <<'SQL'
INSERT INTO parent VALUES (1, 'one', 'happy'), (2, NULL, 'sad');
INSERT INTO child VALUES (10, 1, 'c10'), (11, 2, 'c11');
BEGIN; INSERT INTO nokey VALUES (1, 'x'); SAVEPOINT s; INSERT INTO nokey VALUES (2, 'rolled back'); ROLLBACK TO s; INSERT INTO nokey VALUES (3, 'y'); COMMIT;
UPDATE parent SET name = 'uno' WHERE id = 1;
UPDATE parent SET id = 3 WHERE id = 2;
UPDATE nokey SET b = 'z' WHERE a = 3;
INSERT INTO big SELECT 1, string_agg(md5(i::text), ''), 0 FROM generate_series(1, 600) i;
UPDATE big SET n = 1 WHERE id = 1;
DELETE FROM parent WHERE id = 1;
DELETE FROM nokey WHERE a = 1;
INSERT INTO pt VALUES (1, 5, 'low');
UPDATE pt SET k = 15 WHERE id = 1;
BEGIN; INSERT INTO seq_t (v) VALUES (1); SELECT 'm' FROM pg_logical_emit_message(true, 'pgdr.mark', 'in-txn'); COMMIT;
SELECT 'm' FROM pg_logical_emit_message(false, 'pgdr.heartbeat', '1');
TRUNCATE parent, child RESTART IDENTITY CASCADE;
TRUNCATE nokey;
ALTER TABLE nokey ADD COLUMN c int;
INSERT INTO nokey VALUES (4, 'w', 7);
SELECT 'o' FROM pg_replication_origin_create('fx_origin');
SQL
psql <<'SQL'
SELECT 'o' FROM pg_replication_origin_session_setup('fx_origin');
BEGIN; SELECT 'o' FROM pg_replication_origin_xact_setup('0/AB', now()); INSERT INTO seq_t (v) VALUES (2); COMMIT;
SQL

dump() { # slot name options
  echo "SELECT lsn, xid, encode(data, 'hex') FROM pg_logical_slot_get_binary_changes('$1', NULL, NULL, 'proto_version', '1', 'publication_names', 'pgdr_fx', 'messages', 'true'$3);" \
    | psql | tr '|' ' ' > "$OUT/$2.txt"
}
dump fx pg15-workload ""
dump fxb pg15-workload-binary ", 'binary', 'true'"
as_pg "$BIN/postgres --version" > "$OUT/RECORDED-WITH"
echo "recorded into $OUT: $(wc -l < "$OUT/pg15-workload.txt") messages"
