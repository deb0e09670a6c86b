#!/usr/bin/env python3
"""The benchmark's own correctness, so its fast path is never a wrong path: 2,000 deliveries
(1,000 Feihe, 1,000 Tencent) dispatched through exactly the functions bench/bench.py measures
with, then checked one by one.

- Herald: every delivery ends `sent`, and the mock accepted each recipient exactly once
  (nothing rejected, nothing duplicated, nobody missing).
- The limit compares like with like: the raw client's requests are the bodies Herald sends
  (Tencent's MsgRandom and the URL's random aside, which are random by design), and the mock
  accepts every one of them exactly once.
- The import limit writes the rows `herald import` writes.

Paths come from ctest (HERALD_BIN, HERALD_MOCK, HERALD_SRC); the raw programs are looked for in
bench/ next to herald and their checks are skipped when the benchmark was not built.
"""
import collections
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import unittest
import urllib.parse

SRC = os.environ.get("HERALD_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "bench"))
import bench  # noqa: E402

HERALD = os.environ.get("HERALD_BIN", "herald")
MOCK = os.environ.get("HERALD_MOCK", "herald-mock")
RAW_DIR = os.path.join(os.path.dirname(os.path.abspath(HERALD)), "bench")
RAW_INSERT = os.path.join(RAW_DIR, "bench-raw-insert")
RAW_HTTP = os.path.join(RAW_DIR, "bench-raw-http")
MEASURE = os.path.join(RAW_DIR, "bench-measure")
HAVE_RAW = all(os.access(p, os.X_OK) for p in (RAW_INSERT, RAW_HTTP, MEASURE))
N = 1000  # per provider


def read_log(path, start=0):
    """The mock's request records from line `start` on."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f.readlines()[start:]]


def accepted_per_key(records):
    return collections.Counter(r["key"] for r in records if r["verdict"] == "accepted")


class BenchShort(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="herald-bench-short-")
        self.env = bench.Env(HERALD, MOCK, RAW_INSERT, RAW_HTTP, self.dir,
                             measure=MEASURE if HAVE_RAW else None)
        self.log = os.path.join(self.dir, "mock.log")
        self.mock = bench.Mock(MOCK, self.dir, record=False, threads=2, log_file=self.log)

    def tearDown(self):
        self.mock.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_dispatch_sends_each_delivery_exactly_once(self):
        template, config, reqs, feihe, tim = bench.setup_dispatch(self.env, N, N, self.mock.url)
        c, counts, _, accepted, db = bench.dispatch_herald_once(
            self.env, template, config, self.mock, ("bench-feihe", "bench-tim"))
        self.assertFalse(c.capped)
        for key in ("bench-feihe", "bench-tim"):
            want = dict.fromkeys(counts[key], 0)
            want["sent"] = N
            self.assertEqual(counts[key], want, key)
        self.assertEqual(bench.check_durable(counts, 2 * N, False), 2 * N)
        self.assertEqual(accepted, 2 * N)
        records = read_log(self.log)
        self.assertEqual([r for r in records if r["verdict"] != "accepted"], [])
        per_key = accepted_per_key(records)
        self.assertEqual(set(per_key), {rid for rid, _ in feihe + tim})
        self.assertEqual(set(per_key.values()), {1})
        con = sqlite3.connect(db)
        try:
            self.assertEqual(con.execute("SELECT count(*), count(DISTINCT delivery_id) FROM attempts "
                                         "WHERE outcome = 'sent'").fetchone(), (2 * N, 2 * N))
        finally:
            con.close()

        if not HAVE_RAW:
            return
        # The raw client sends what Herald sent, and the mock takes all of it, once each.
        herald_sent = {}
        for r in records:
            query = dict(urllib.parse.parse_qsl(r["query"] or ""))
            query.pop("random", None)
            body = json.loads(r["body"])
            body.pop("MsgRandom", None)
            herald_sent[r["key"]] = (r["path"], query, body, r["headers"].get("system"))
        start = len(records)
        rc, _, accepted = bench.dispatch_raw_once(self.env, reqs, self.mock, 64)
        self.assertEqual(accepted, 2 * N)
        raw_records = read_log(self.log, start)
        self.assertEqual(accepted_per_key(raw_records), per_key)
        for r in raw_records:
            query = dict(urllib.parse.parse_qsl(r["query"] or ""))
            query.pop("random", None)
            body = json.loads(r["body"])
            body.pop("MsgRandom", None)
            self.assertEqual((r["path"], query, body, r["headers"].get("system")),
                             herald_sent[r["key"]], r["key"])

    @unittest.skipUnless(HAVE_RAW, "benchmark programs not built")
    def test_raw_insert_writes_the_rows_import_writes(self):
        csv_name = bench.prepare_import(self.env, 2 * N, "rows")
        dbs = {}
        for side in (True, False):
            bench.import_once(self.env, csv_name, 2 * N, 3, side, keep_as="rows-%d.db" % side)
            dbs[side] = self.env.path("rows-%d.db" % side)
        rows = {}
        for side, db in dbs.items():
            con = sqlite3.connect(db)
            try:
                rows[side] = (
                    con.execute("SELECT rid, data, active FROM recipients ORDER BY rid").fetchall(),
                    con.execute("SELECT r.rid, d.step, d.due_at_ms, d.next_at_ms, d.expires_at_ms, "
                                "d.state, d.attempts FROM deliveries d JOIN recipients r "
                                "ON r.id = d.recipient_id ORDER BY 1, 2").fetchall(),
                    con.execute("SELECT state, n FROM delivery_counts").fetchall())
            finally:
                con.close()
        self.assertEqual(len(rows[True][1]), 6 * N)
        self.assertEqual(rows[True], rows[False])


if __name__ == "__main__":
    unittest.main(verbosity=2)
