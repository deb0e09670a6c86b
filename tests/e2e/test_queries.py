#!/usr/bin/env python3
"""End-to-end tests of the commands that read and steer campaigns (SPEC §1, §4): status (table
and JSON), deliveries, attempts, pause / resume / cancel, retry, migrate, --help, --version,
usage errors, and the database path defaults. Delivery states the scheduler would reach are set
up by writing the SQLite file directly.

    HERALD_BIN=build/herald HERALD_MOCK=build/herald-mock HERALD_SRC=. \
        python3 tests/e2e/test_queries.py
"""
import json
import os
import re
import sqlite3
import subprocess
import sys
import unicodedata

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

STATES = ["pending", "sending", "sent", "retrying", "deferred", "failed", "expired", "cancelled",
          "unknown", "suppressed"]
COMMANDS = ["import", "status", "deliveries", "attempts", "pause", "resume", "cancel", "retry",
            "run", "migrate"]
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def definition(key, name="新会员欢迎", recipients=("a", "b", "c"), steps=None):
    return {
        "key": key, "name": name, "channel": "fh", "start_date": "2026-11-23",
        "steps": steps or [
            {"day": 1, "time": "10:00", "message": {"type": "text", "text": "欢迎 {{id}}"}},
            {"day": 3, "time": "20:30", "message": {"type": "text", "text": "再见"}}],
        "recipients": [{"id": r} for r in recipients],
    }


def width(s):
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in s)


def column_starts(line):
    """Display column where each whitespace-separated token of line starts."""
    return [width(line[:m.start()]) for m in re.finditer(r"\S+", line)]


class QueriesTest(harness.HeraldTest):

    def setUp(self):
        super().setUp()
        self.config({"fh": {"provider": "feihe", "base_url": "http://127.0.0.1:9"}})

    def sql(self, query, *params):
        rows = super().sql(query, *params)
        return rows, self.last_rowcount

    def imp(self, key, **kw):
        self.ok("import", self.write(key + ".json", definition(key, **kw)))

    def set_state(self, key, recipient, step, state):
        _, n = self.sql("UPDATE deliveries SET state = ? WHERE step = ? AND recipient_id = "
                        "(SELECT r.id FROM recipients r JOIN campaigns c ON c.id = r.campaign_id "
                        "WHERE c.key = ? AND r.rid = ?)", state, step, key, recipient)
        self.assertEqual(n, 1)

    def states(self, key):
        return {(d["recipient"], d["step"]): d["state"] for d in self.deliveries(key)}

    def fails(self, code, *args):
        rc, out, err = self.herald(*args)
        self.assertEqual(rc, code, "herald %s: stdout %r stderr %r" % (" ".join(args), out, err))
        self.assertTrue(err.strip(), "no message on stderr")
        return err

    # ---- status -------------------------------------------------------------------------

    def test_status_table_aligns_chinese_names(self):
        names = {"k1": "新会员欢迎", "k2": "Ab", "k3": "混合Mix名字",
                 "k4": "一二三四五六七八九十一二三四五六七八九十", "k5": "ｆｕｌｌ－width"}
        for key, name in names.items():
            self.imp(key, name=name)
        out = self.ok("status")
        lines = out.rstrip("\n").split("\n")
        self.assertEqual(len(lines), 1 + len(names), out)
        self.assertTrue(lines[0].startswith("KEY"), lines[0])
        for h in ("NAME", "CHANNEL", "PROVIDER", "STATE", "PENDING", "SENT", "FAILED", "CANCELLED",
                  "UNKNOWN"):
            self.assertIn(h, lines[0])
        self.assertEqual([ln.split()[0] for ln in lines[1:]], sorted(names))
        starts = [column_starts(ln) for ln in lines]
        for col in (1, 2, 3, 4):   # NAME, CHANNEL, PROVIDER, STATE
            self.assertEqual(len({s[col] for s in starts}), 1,
                             "column %d misaligned:\n%s" % (col, out))
        for ln in lines[1:]:
            self.assertEqual(ln.split()[2:5], ["fh", "feihe", "active"], ln)
            self.assertFalse(ln.endswith(" "), "trailing blanks: %r" % ln)
        self.assertIn("新会员欢迎", out)
        self.assertIn("一二三四", out)

    def test_status_json_shape(self):
        self.imp("b-camp", name="乙")
        self.imp("a-camp", name="甲")
        doc = self.json("status")
        self.assertEqual(list(doc), ["campaigns"])
        self.assertEqual([c["key"] for c in doc["campaigns"]], ["a-camp", "b-camp"])
        for c in doc["campaigns"]:
            self.assertEqual(list(c), ["key", "name", "channel", "provider", "state", "counts",
                                       "next_due_at", "last_error"])
            self.assertEqual(list(c["counts"]), STATES)
            for v in c["counts"].values():
                self.assertIs(type(v), int)
            self.assertEqual(c["counts"]["pending"], 6)
            self.assertEqual(sum(c["counts"].values()), 6)
            self.assertEqual((c["channel"], c["provider"], c["state"]), ("fh", "feihe", "active"))
            self.assertRegex(c["next_due_at"], ISO)
            self.assertEqual(c["next_due_at"], "2026-11-23T10:00:00+08:00")
            self.assertIsNone(c["last_error"])
        self.assertEqual(doc["campaigns"][0]["name"], "甲")
        one = self.json("status", "b-camp")
        self.assertEqual([c["key"] for c in one["campaigns"]], ["b-camp"])
        # next send follows what is still waiting; the latest error shows
        for r in "abc":
            self.set_state("a-camp", r, 1, "sent")
        self.sql("UPDATE campaigns SET last_error = ? WHERE key = 'a-camp'", "HTTP 503 服务繁忙")
        c = self.status("a-camp")
        self.assertEqual(c["next_due_at"], "2026-11-25T20:30:00+08:00")
        self.assertEqual(c["last_error"], "HTTP 503 服务繁忙")
        self.assertEqual((c["counts"]["pending"], c["counts"]["sent"]), (3, 3))

    def test_status_empty_and_unknown(self):
        self.ok("migrate")
        self.assertEqual(self.json("status"), {"campaigns": []})
        err = self.fails(65, "status", "no-such-key")
        self.assertIn("no-such-key", err)
        self.fails(65, "status", "no-such-key", "--json")
        self.imp("k1")
        self.fails(65, "status", "K1")

    def test_completed_when_nothing_left(self):
        self.imp("k1", recipients=("a", "b"))
        for r, step, state in (("a", 1, "sent"), ("a", 2, "failed"), ("b", 1, "expired")):
            self.set_state("k1", r, step, state)
        self.assertEqual(self.status("k1")["state"], "active")
        self.set_state("k1", "b", 2, "retrying")
        self.assertEqual(self.status("k1")["state"], "active")
        self.set_state("k1", "b", 2, "sent")
        c = self.status("k1")
        self.assertEqual(c["state"], "completed")
        self.assertIsNone(c["next_due_at"])
        self.assertIn("completed", self.ok("status"))
        # something in flight is not completed
        self.set_state("k1", "b", 2, "sending")
        self.assertEqual(self.status("k1")["state"], "active")

    # ---- deliveries and attempts ----------------------------------------------------------

    def test_deliveries(self):
        self.imp("k1")
        out = self.json("deliveries", "k1", "--state", "pending", "--limit", "2")
        self.assertEqual(list(out), ["deliveries", "next"])
        self.assertEqual(len(out["deliveries"]), 2)
        self.assertIsInstance(out["next"], str)      # a third pending one remains
        for d in out["deliveries"]:
            self.assertEqual(list(d), ["recipient", "step", "due_at", "state", "attempts",
                                       "last_error", "provider_message_id"])
            self.assertEqual((d["step"], d["due_at"], d["state"], d["attempts"]),
                             (1, "2026-11-23T10:00:00+08:00", "pending", 0))
            self.assertIsNone(d["last_error"])
            self.assertIsNone(d["provider_message_id"])
        all_ = self.deliveries("k1")
        self.assertEqual(len(all_), 6)
        self.assertEqual([d["due_at"] for d in all_], sorted(d["due_at"] for d in all_))
        self.assertEqual({d["step"] for d in all_}, {1, 2})
        self.set_state("k1", "b", 2, "failed")
        self.sql("UPDATE deliveries SET last_error = 'code 45015: 回复时间超过限制', "
                 "provider_message_id = 'm-9' WHERE state = 'failed'")
        failed = self.deliveries("k1", "--state=failed")
        self.assertEqual([(d["recipient"], d["step"], d["last_error"], d["provider_message_id"])
                          for d in failed], [("b", 2, "code 45015: 回复时间超过限制", "m-9")])
        self.assertEqual(self.deliveries("k1", "--state", "unknown"), [])
        table = self.ok("deliveries", "k1")
        lines = table.rstrip("\n").split("\n")
        self.assertEqual(len(lines), 7)
        for h in ("RECIPIENT", "STEP", "DUE", "STATE", "ATTEMPTS"):
            self.assertIn(h, lines[0])
        self.assertIn("回复时间超过限制", table)
        lines = self.ok("deliveries", "k1", "--limit", "1").rstrip("\n").split("\n")
        self.assertEqual(len(lines), 3)
        self.assertRegex(lines[2], r"^more: herald deliveries k1 --after \S+$")
        self.assertEqual(self.json("deliveries", "k1")["next"], None)
        self.fails(65, "deliveries", "nope")
        self.fails(64, "deliveries", "k1", "--state", "lost")
        self.fails(64, "deliveries", "k1", "--limit", "0")
        self.fails(64, "deliveries", "k1", "--limit", "two")
        self.fails(64, "deliveries", "k1", "--limit")
        self.fails(64, "deliveries")

    # ---- deliveries, a page at a time ------------------------------------------------------

    def page_all(self, key, limit, *args, between=None):
        """Every page of `deliveries KEY --limit N` (JSON), following "next"; between(i, seen)
        runs before each following page. Returns the rows in the order seen."""
        rows, cursor, pages = [], None, 0
        while True:
            extra = ["--after", cursor] if cursor else []
            doc = self.json("deliveries", key, "--limit", str(limit), *(list(args) + extra))
            self.assertLessEqual(len(doc["deliveries"]), limit)
            rows += doc["deliveries"]
            pages += 1
            cursor = doc["next"]
            if cursor is None:
                return rows, pages
            self.assertEqual(len(doc["deliveries"]), limit, "a short page with a next one")
            if between:
                between(pages, rows)

    def test_deliveries_pages_see_each_row_once(self):
        """--after walks (due time, id): states changing between pages, on rows already seen
        and rows still ahead, neither repeat nor skip a delivery."""
        ids = ["r%02d" % i for i in range(40)]
        self.imp("pg", recipients=ids)         # 80 deliveries; 40 share each due time
        everything = {(d["recipient"], d["step"]) for d in self.deliveries("pg")}
        self.assertEqual(len(everything), 80)
        states = ["sent", "failed", "retrying", "sending", "cancelled", "deferred", "pending"]

        def churn(page, seen):
            # some rows behind the cursor and some ahead change state, as a scheduler would
            self.sql("UPDATE deliveries SET state = ?, attempts = attempts + 1 WHERE id IN "
                     "(SELECT id FROM deliveries ORDER BY (id * 7 + ?) % 11 LIMIT 9)",
                     states[page % len(states)], page)
        rows, pages = self.page_all("pg", 7, between=churn)
        seen = [(d["recipient"], d["step"]) for d in rows]
        self.assertEqual(len(seen), len(set(seen)), "a delivery shown twice")
        self.assertEqual(set(seen), everything)
        self.assertEqual(pages, 12)
        self.assertEqual([d["due_at"] for d in rows], sorted(d["due_at"] for d in rows))
        self.assertGreater(len({d["state"] for d in rows}), 2, "the churn changed nothing")
        # a state filter pages the same way
        self.sql("UPDATE deliveries SET state = 'failed' WHERE id % 3 = 0")
        failed = self.deliveries("pg", "--state", "failed")
        rows, _ = self.page_all("pg", 4, "--state", "failed")
        self.assertEqual(rows, failed)
        # limits that divide the total exactly end with next = null, not an empty page
        rows, pages = self.page_all("pg", 8)
        self.assertEqual((len(rows), pages), (80, 10))
        # the table prints the command for the next page, --state kept
        out = self.ok("deliveries", "pg", "--state", "failed", "--limit", "5")
        last = out.rstrip("\n").split("\n")[-1]
        m = re.fullmatch(r"more: herald deliveries pg --state failed --after (\S+)", last)
        self.assertTrue(m, last)
        doc = self.json("deliveries", "pg", "--state", "failed", "--after", m.group(1))
        self.assertEqual(doc["deliveries"], failed[5:])
        for bad in ("", "zz", "1-", "-1-2", "12-34-56", "12 34"):
            self.fails(64, "deliveries", "pg", "--after", bad)

    def test_deliveries_pages_while_the_scheduler_sends(self):
        """Paging through while a real `herald run` moves rows from pending to sent."""
        mock = self.mock()
        mock.rules([{"provider": "feihe", "times": 0, "delay_ms": 5}])
        self.config({"fh": {"provider": "feihe", "base_url": mock.url, "max_in_flight": 2}})
        ids = ["s%03d" % i for i in range(150)]
        self.imp("live", recipients=ids)
        run = self.spawn("run", "--once", "--now", "2026-11-23T10:00:30+08:00")
        passes = []
        while True:
            running = run.poll() is None
            rows, _ = self.page_all("live", 13)
            passes.append(rows)
            if not running:
                break
        self.assertEqual(run.wait(timeout=60 * harness.SLOW), 0)
        self.assertGreaterEqual(len(passes), 2, "no pass began while the scheduler ran")
        for rows in passes:
            seen = [(d["recipient"], d["step"]) for d in rows]
            self.assertEqual(len(seen), 300)
            self.assertEqual(len(set(seen)), 300)
        self.assertEqual(self.counts("live")["sent"], 150)

    def test_deliveries_default_limit_on_a_terminal(self):
        """A terminal gets a screenful (its rows - 3) and the cursor line; a pipe gets all."""
        import fcntl
        import pty
        import struct
        import termios
        self.imp("tty", recipients=["t%02d" % i for i in range(30)])
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 12, 100, 0, 0))
        p = subprocess.Popen([harness.HERALD, "--db", self.db, "deliveries", "tty"],
                             stdout=slave, stderr=subprocess.PIPE, cwd=self.dir)
        os.close(slave)
        out = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:            # EIO: the terminal's other side has closed
                break
            if not chunk:
                break
            out += chunk
        os.close(master)
        self.assertEqual(p.wait(timeout=30 * harness.SLOW), 0, p.stderr.read())
        p.stderr.close()
        lines = out.decode().replace("\r\n", "\n").rstrip("\n").split("\n")
        self.assertEqual(len(lines), 1 + 9 + 1, lines)   # header, 12 - 3 rows, cursor line
        self.assertTrue(lines[-1].startswith("more: herald deliveries tty --after "), lines[-1])
        self.assertEqual(len(self.ok("deliveries", "tty").rstrip("\n").split("\n")), 61)

    def test_attempts(self):
        self.imp("k1")
        self.assertEqual(self.json("attempts", "k1"), {"attempts": []})
        self.assertEqual(self.json("attempts", "k1", "--recipient", "a"), {"attempts": []})
        header = self.ok("attempts", "k1").split("\n")[0]
        for h in ("RECIPIENT", "STEP", "HTTP", "OUTCOME"):
            self.assertIn(h, header)
        self.fails(65, "attempts", "nope")
        self.fails(64, "attempts")
        self.fails(64, "attempts", "k1", "--recipient")

    # ---- pause, resume, cancel, retry --------------------------------------------------

    def test_pause_resume(self):
        self.imp("k1")
        self.ok("pause", "k1")
        c = self.status("k1")
        self.assertEqual(c["state"], "paused")
        self.assertEqual(c["counts"]["pending"], 6)   # kept
        self.assertIn("paused", self.ok("status"))
        self.ok("resume", "k1")
        self.assertEqual(self.status("k1")["state"], "active")
        self.fails(65, "pause", "nope")
        self.fails(65, "resume", "nope")
        self.fails(64, "pause")
        self.fails(64, "pause", "k1", "k2")

    def test_cancel(self):
        self.imp("k1")
        self.imp("k2")
        self.set_state("k1", "a", 1, "sent")
        self.set_state("k1", "b", 1, "failed")
        self.set_state("k1", "c", 1, "retrying")
        self.set_state("k1", "c", 2, "deferred")
        self.ok("cancel", "k1")
        c = self.status("k1")
        self.assertEqual(c["state"], "cancelled")
        self.assertIsNone(c["next_due_at"])
        self.assertEqual({k: v for k, v in c["counts"].items() if v},
                         {"sent": 1, "failed": 1, "cancelled": 4})
        st = self.states("k1")
        self.assertEqual((st[("a", 1)], st[("b", 1)], st[("c", 1)], st[("c", 2)]),
                         ("sent", "failed", "cancelled", "cancelled"))
        self.assertEqual(self.status("k2")["counts"]["pending"], 6)   # others untouched
        # a cancelled campaign stays cancelled
        before = self.db_snapshot()
        self.fails(65, "resume", "k1")
        self.fails(65, "pause", "k1")
        self.assertEqual(self.db_snapshot(), before)
        self.assertEqual(self.status("k1")["state"], "cancelled")
        self.fails(65, "cancel", "nope")

    def test_retry(self):
        self.imp("k1")
        self.set_state("k1", "a", 1, "failed")
        self.set_state("k1", "a", 2, "unknown")
        self.set_state("k1", "b", 1, "expired")
        self.set_state("k1", "b", 2, "failed")
        self.set_state("k1", "c", 1, "sent")
        out = self.ok("retry", "k1")
        self.assertIn("2", out)
        st = self.states("k1")
        self.assertEqual((st[("a", 1)], st[("b", 2)]), ("pending", "pending"))
        self.assertEqual((st[("a", 2)], st[("b", 1)], st[("c", 1)]), ("unknown", "expired", "sent"))
        self.ok("retry", "k1", "--state", "unknown")
        self.assertEqual(self.states("k1")[("a", 2)], "pending")
        self.ok("retry", "k1", "--state=expired")
        st = self.states("k1")
        self.assertEqual((st[("b", 1)], st[("c", 1)]), ("pending", "sent"))
        c = self.status("k1")["counts"]
        self.assertEqual((c["pending"], c["sent"], c["failed"], c["unknown"], c["expired"]),
                         (5, 1, 0, 0, 0))
        before = self.db_snapshot()
        self.ok("retry", "k1")       # nothing failed now: changes nothing
        self.assertEqual(self.db_snapshot(), before)
        self.fails(64, "retry", "k1", "--state", "sent")
        self.fails(64, "retry", "k1", "--state", "pending")
        self.fails(65, "retry", "nope")
        self.fails(64, "retry")

    # ---- migrate, help, version, usage ------------------------------------------------------

    @harness.sqlite_only("the file and its pragmas")
    def test_migrate(self):
        out = self.ok("migrate")
        self.assertTrue(self.db_exists())
        con = sqlite3.connect(self.db)
        version = con.execute("PRAGMA user_version").fetchone()[0]
        con.close()
        self.assertGreaterEqual(version, 1)
        self.assertRegex(out, r"\b%d\b" % version)
        before = self.db_snapshot()
        self.assertEqual(self.ok("migrate"), out)
        self.assertEqual(self.db_snapshot(), before)
        self.fails(64, "migrate", "extra")

    def test_help_for_every_command(self):
        for cmd in COMMANDS:
            rc, out, err = self.herald(cmd, "--help")
            self.assertEqual(rc, 0, "%s --help: %s" % (cmd, err))
            self.assertIn("usage", out.lower())
            self.assertIn("herald " + cmd, out)
            rc, out2, _ = self.herald(cmd, "-h")
            self.assertEqual((rc, out2), (0, out))
        for args in (("--help",), ("help",)):
            rc, out, err = self.herald(*args)
            self.assertEqual(rc, 0, err)
            self.assertIn("usage", out.lower())
            for cmd in COMMANDS:
                self.assertIn("herald " + cmd, out)
        self.assertFalse(self.db_exists(), "--help touched the database")

    def test_version(self):
        rc, out, err = self.herald("--version")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out.strip(), r"^herald \d+\.\d+\.\d+")

    def test_usage_errors(self):
        err = self.fails(64, "frobnicate")
        self.assertIn("frobnicate", err)
        self.fails(64)
        for cmd in COMMANDS:
            err = self.fails(64, cmd, "--no-such-option")
            self.assertIn("--no-such-option", err)
        self.fails(64, "import")
        self.fails(64, "import", "a.json", "b.json")
        self.fails(64, "status", "a", "b")
        self.fails(64, "status", "--json=yes")
        rc, _, err = self.herald("status", "--db")
        self.assertEqual(rc, 64, err)
        self.assertFalse(self.db_exists(), "a usage error touched the database")

    @harness.sqlite_only("./herald.db by default")
    def test_database_path_defaults(self):
        """--db wins; then $HERALD_DB; then ./herald.db in the working directory."""
        def run(args, env_extra):
            env = dict(os.environ)
            env.pop("HERALD_DB", None)
            env.pop("HERALD_CONFIG", None)
            env.update(env_extra)
            p = subprocess.run([harness.HERALD] + args, env=env, capture_output=True,
                               cwd=self.dir, timeout=60 * harness.SLOW)
            err = p.stderr.decode()
            self.assertNotIn("runtime error", err)
            self.assertNotIn("Sanitizer", err)
            self.assertEqual(p.returncode, 0, err)
            return p.stdout.decode()

        run(["import", self.write("k.json", definition("k1"))], {})
        self.assertTrue(os.path.exists(os.path.join(self.dir, "herald.db")))
        env_db = os.path.join(self.dir, "env.db")
        run(["migrate"], {"HERALD_DB": env_db})
        self.assertTrue(os.path.exists(env_db))
        self.assertEqual(json.loads(run(["status", "--json"], {"HERALD_DB": env_db})),
                         {"campaigns": []})
        self.assertEqual(len(json.loads(run(["status", "--json"], {}))["campaigns"]), 1)
        flag_db = os.path.join(self.dir, "flag.db")
        # status never creates a database (SPEC §1), so migrate shows --db beating $HERALD_DB.
        run(["migrate", "--db", flag_db], {"HERALD_DB": env_db})
        self.assertTrue(os.path.exists(flag_db))


if __name__ == "__main__":
    harness.main()
