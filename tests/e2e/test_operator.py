#!/usr/bin/env python3
"""End-to-end tests of the operator's day-to-day commands (SPEC §1): `show`, `export` (CSV with
a BOM and RFC 4180 quoting, JSON Lines, streamed in flat memory), read commands that never create
a database (66 naming the path), a failed import that leaves no file behind, `cancel` refused on
a completed campaign, `retry` refused on a cancelled one, and `herald-mock --help`.

    HERALD_BIN=build/herald HERALD_MOCK=build/herald-mock HERALD_SRC=. \\
        python3 tests/e2e/test_operator.py
"""
import csv
import io
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

COLUMNS = ["recipient", "step", "due_at", "state", "attempts", "last_error", "provider_message_id"]
BOM = "\ufeff"


def definition(key, recipients=("a", "b", "c"), steps=None, **extra):
    d = {
        "key": key, "name": "新会员欢迎", "channel": "fh", "start_date": "2026-11-23",
        "steps": steps or [
            {"day": 1, "time": "10:00", "message": {"type": "text", "text": "欢迎 {{id}}"}},
            {"day": 3, "time": "20:30", "message": {"type": "text", "text": "{{nick|朋友}}, 再见"}}],
        "recipients": [{"id": r} for r in recipients],
    }
    d.update(extra)
    return {k: v for k, v in d.items() if v is not None}


class OperatorTest(harness.HeraldTest):

    def setUp(self):
        super().setUp()
        self.config({"fh": {"provider": "feihe", "base_url": "http://127.0.0.1:9"}})


    def imp(self, key, **kw):
        return self.ok("import", self.write(key + ".json", definition(key, **kw)))

    def fails(self, code, *args, stdin=None):
        rc, out, err = self.herald(*args, stdin=stdin)
        self.assertEqual(rc, code, "herald %s: stdout %r stderr %r" % (" ".join(args), out, err))
        self.assertTrue(err.strip(), "no message on stderr")
        return err

    def db_files(self):
        return sorted(f for f in os.listdir(self.dir) if f.startswith("herald.db"))

    # ---- no database is created by a command that only reads or changes rows -----------------

    @harness.sqlite_only("files made or not made")
    def test_read_commands_never_create_a_database(self):
        for args in (["status"], ["status", "k"], ["deliveries", "k"], ["attempts", "k"],
                     ["show", "k"], ["show", "k", "--json"], ["export", "k"],
                     ["export", "k", "--format", "jsonl"], ["pause", "k"], ["resume", "k"],
                     ["cancel", "k"], ["retry", "k"], ["retry", "k", "--state", "unknown"]):
            err = self.fails(66, *args)
            self.assertIn(self.db, err, args)
            self.assertIn("no such database", err, args)
            self.assertEqual(self.db_files(), [], args)

    @harness.sqlite_only("files made or not made")
    def test_an_empty_file_is_not_turned_into_a_database(self):
        open(self.db, "w").close()
        for args in (["status"], ["deliveries", "k"], ["channels"]):
            err = self.fails(66, *args)
            self.assertIn("an empty file", err, args)
            self.assertEqual(os.path.getsize(self.db), 0, args)

    @harness.sqlite_only("files made or not made")
    def test_missing_directory_is_66_too(self):
        db = os.path.join(self.dir, "nowhere", "h.db")
        rc, _, err = self.herald("--db", db, "status")
        self.assertEqual(rc, 66, err)
        self.assertIn(db, err)
        self.assertFalse(os.path.exists(os.path.dirname(db)))

    def test_read_commands_work_on_an_existing_database(self):
        self.imp("k")
        self.assertEqual(self.json("status")["campaigns"][0]["key"], "k")
        self.assertEqual(len(self.deliveries("k")), 6)

    # ---- a failed import leaves no file behind ---------------------------------------------------

    def test_failed_import_on_a_fresh_path_leaves_no_file(self):
        cases = [
            (66, self.dir + "/no-such-campaign.json"),
            (65, self.write("broken.json", '{"key": ')),
            (65, self.write("badchan.json", definition("x", channel="nope"))),
            # Fails only while recipients are written, inside the transaction.
            (65, self.write("badvar.json", definition("x", steps=[
                {"day": 1, "time": "10:00", "message": {"type": "text", "text": "{{nick}}"}}]))),
            (66, self.write("nofile.json", definition("x", recipients_file="absent.csv"))),
        ]
        for code, path in cases:
            self.fails(code, "import", path)
            self.assertEqual(self.db_files(), [], path)
        self.fails(65, "import", "-", stdin=b"[]")
        self.assertEqual(self.db_files(), [])

    def test_config_error_on_import_leaves_no_file(self):
        self.write("herald.json", "{")
        self.fails(78, "import", self.write("k.json", definition("k")))
        self.assertEqual(self.db_files(), [])

    def test_failed_import_keeps_an_existing_database(self):
        self.imp("k")
        before = self.db_snapshot()
        self.fails(65, "import", self.write("broken.json", '{"key": '))
        self.assertEqual(self.db_snapshot(), before)
        self.assertEqual(self.counts("k")["pending"], 6)

    @harness.sqlite_only("files made or not made")
    def test_successful_import_creates_the_database(self):
        self.assertEqual(self.db_files(), [])
        self.imp("k")
        self.assertIn("herald.db", self.db_files())

    # ---- cancel and retry refusals ---------------------------------------------------------------

    def test_cancel_on_a_completed_campaign_is_refused(self):
        self.imp("k")
        self.sql("UPDATE deliveries SET state = 'sent'")
        self.sql("UPDATE delivery_counts SET n = CASE state WHEN 'sent' THEN 6 ELSE 0 END")
        self.assertEqual(self.status("k")["state"], "completed")
        before = self.db_snapshot()
        err = self.fails(65, "cancel", "k")
        self.assertIn("nothing left to cancel", err)
        self.assertIn('"k"', err)
        self.assertEqual(self.db_snapshot(), before)
        self.assertEqual(self.status("k")["state"], "completed")

    def test_cancel_with_something_left_works(self):
        self.imp("k")
        self.sql("UPDATE deliveries SET state = 'sent' WHERE step = 1")
        out = self.ok("cancel", "k")
        self.assertIn("3 deliveries cancelled", out)
        self.assertEqual(self.status("k")["state"], "cancelled")

    def test_retry_on_a_cancelled_campaign_is_refused(self):
        self.imp("k")
        self.sql("UPDATE deliveries SET state = 'failed', last_error = 'x' WHERE step = 1")
        self.ok("cancel", "k")
        before = self.db_snapshot()
        for state in ("failed", "unknown", "expired"):
            err = self.fails(65, "retry", "k", "--state", state)
            self.assertIn("cancelled", err)
        for cmd in ("pause", "resume"):
            self.fails(65, cmd, "k")
        self.assertEqual(self.db_snapshot(), before)
        self.assertEqual(sum(d["state"] == "failed" for d in self.deliveries("k")), 3)

    def test_retry_on_an_active_campaign_still_works(self):
        self.imp("k")
        self.sql("UPDATE deliveries SET state = 'failed' WHERE step = 1")
        self.assertIn("3 failed deliveries back to pending", self.ok("retry", "k"))

    # ---- show -----------------------------------------------------------------------------------

    def test_show_json(self):
        self.imp("k", recipients=("a", "b", "c", "d"), expire_after="2h30m",
                 timezone="Europe/Berlin")
        got = self.json("show", "k")
        self.assertEqual(got["key"], "k")
        self.assertEqual(got["name"], "新会员欢迎")
        self.assertEqual(got["channel"], "fh")
        self.assertEqual(got["provider"], "feihe")
        self.assertEqual(got["state"], "active")
        self.assertEqual(got["timezone"], "Europe/Berlin")
        self.assertEqual(got["anchor"], "start_date")
        self.assertEqual(got["start_date"], "2026-11-23")
        self.assertEqual(got["expire_after"], "2h30m")
        self.assertEqual(got["recipients"], 4)
        self.assertEqual(got["steps"], [
            {"step": 1, "day": 1, "time": "10:00",
             "message": {"type": "text", "text": "欢迎 {{id}}"}},
            {"step": 2, "day": 3, "time": "20:30",
             "message": {"type": "text", "text": "{{nick|朋友}}, 再见"}}])

    def test_show_follows_reimports_and_state(self):
        self.imp("k")
        self.imp("k", recipients=("a",), steps=[
            {"day": 2, "time": "09:15", "message": {"type": "text", "text": "only"}}])
        self.ok("pause", "k")
        got = self.json("show", "k")
        self.assertEqual(got["recipients"], 1)
        self.assertEqual([(s["step"], s["day"], s["time"]) for s in got["steps"]], [(1, 2, "09:15")])
        self.assertEqual(got["state"], "paused")

    def test_show_text(self):
        self.imp("k", anchor="enrollment", start_date=None,
                 recipients=(), recipients_file=self.write("m.csv", "id,enrolled_at\nx,2026-11-20\n"))
        out = self.ok("show", "k")
        self.assertRegex(out, r"(?m)^key:\s+k$")
        self.assertRegex(out, r"(?m)^channel:\s+fh \(feihe\)$")
        self.assertRegex(out, r"(?m)^time zone:\s+Asia/Shanghai$")
        self.assertRegex(out, r"(?m)^anchor:\s+enrollment$")
        self.assertRegex(out, r"(?m)^recipients:\s+1$")
        self.assertRegex(out, r"(?m)^expire after:\s+1d$")
        self.assertIn('1. day 1 10:00  {"type":"text","text":"欢迎 {{id}}"}', out)
        self.assertIn("2. day 3 20:30", out)

    def test_show_unknown_key(self):
        self.imp("k")
        self.assertIn('"nope"', self.fails(65, "show", "nope"))
        self.fails(64, "show")
        self.fails(64, "show", "k", "--bogus")

    # ---- export ---------------------------------------------------------------------------------

    def test_export_csv_quoting_and_bom(self):
        self.imp("k", recipients=("plain", "com,ma", 'quo"te', "新会员"))
        tricky = 'line one\r\nline "two", end'
        self.sql("UPDATE deliveries SET state = 'failed', attempts = 3, last_error = ? WHERE "
                 "step = 1 AND recipient_id = (SELECT id FROM recipients WHERE rid = 'com,ma')",
                 tricky)
        self.sql("UPDATE deliveries SET state = 'sent', attempts = 1, provider_message_id = 'm-1' "
                 "WHERE step = 2 AND recipient_id = (SELECT id FROM recipients WHERE rid = '新会员')")
        rc = subprocess.run([harness.HERALD, "--db", self.db, "export", "k"], capture_output=True)
        self.assertEqual(rc.returncode, 0, rc.stderr)
        raw = rc.stdout
        self.assertTrue(raw.startswith(b"\xef\xbb\xbf"), raw[:10])
        text = raw.decode("utf-8")
        rows = list(csv.reader(io.StringIO(text[1:], newline="")))
        self.assertEqual(rows[0], COLUMNS)
        self.assertEqual(len(rows), 1 + 8)
        self.assertTrue(text.endswith("\r\n"))
        by = {(r[0], r[1]): dict(zip(COLUMNS, r)) for r in rows[1:]}
        self.assertEqual(set(k[0] for k in by), {"plain", "com,ma", 'quo"te', "新会员"})
        bad = by[("com,ma", "1")]
        self.assertEqual(bad["last_error"], tricky)
        self.assertEqual((bad["state"], bad["attempts"]), ("failed", "3"))
        sent = by[("新会员", "2")]
        self.assertEqual((sent["state"], sent["provider_message_id"]), ("sent", "m-1"))
        self.assertEqual(sent["due_at"], "2026-11-25T20:30:00+08:00")
        self.assertEqual(by[("plain", "1")]["last_error"], "")
        # The same rows as `deliveries --json`, in the same order.
        want = [(d["recipient"], str(d["step"]), d["due_at"], d["state"]) for d in self.deliveries("k")]
        self.assertEqual([tuple(r[:4]) for r in rows[1:]], want)

    def test_export_state_filter_and_jsonl(self):
        self.imp("k")
        self.sql("UPDATE deliveries SET state = 'failed', last_error = 'boom' WHERE step = 2")
        out = self.ok("export", "k", "--state", "failed", "--format", "jsonl")
        lines = out.splitlines()
        self.assertEqual(len(lines), 3)
        for line in lines:
            o = json.loads(line)
            self.assertEqual(list(o), COLUMNS)
            self.assertEqual((o["state"], o["step"], o["last_error"]), ("failed", 2, "boom"))
            self.assertIsNone(o["provider_message_id"])
        self.assertEqual([json.loads(l) for l in lines],
                         self.deliveries("k", "--state", "failed"))
        csv_out = self.ok("export", "k", "--state", "pending", "--format", "csv")
        self.assertEqual(len(csv_out.splitlines()), 1 + 3)
        self.assertEqual(self.ok("export", "k", "--state", "sent"),
                         BOM + ",".join(COLUMNS) + "\r\n")

    def test_export_usage_errors(self):
        self.imp("k")
        self.fails(64, "export", "k", "--format", "xlsx")
        self.fails(64, "export", "k", "--state", "done")
        self.fails(64, "export")
        self.fails(65, "export", "nope")

    def test_export_to_a_closed_pipe_stops(self):
        self.imp("k", recipients=["r%05d" % i for i in range(20000)])
        p = subprocess.Popen([harness.HERALD, "--db", self.db, "export", "k"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        p.stdout.readline()
        p.stdout.close()
        rc = p.wait(timeout=60 * harness.SLOW)
        err = p.stderr.read().decode()
        p.stderr.close()
        self.assertEqual(rc, 1, err)
        self.assertIn("writing the export", err)

    def export_rss(self, key, n):
        out_path = os.path.join(self.dir, key + ".csv")
        with open(out_path, "wb") as out:
            p = subprocess.Popen([harness.HERALD, "--db", self.db, "export", key], stdout=out,
                                 stderr=subprocess.PIPE)
            _, status, usage = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)
        err = p.stderr.read()
        p.stderr.close()
        self.assertEqual(p.returncode, 0, err)
        with open(out_path, encoding="utf-8-sig") as f:
            self.assertEqual(sum(1 for _ in f), 1 + n)
        return usage.ru_maxrss  # KiB

    def test_export_streams_in_flat_memory(self):
        rows = lambda n, p: "id,nick\n" + "".join("%s%06d,昵称%d\n" % (p, i, i) for i in range(n))
        self.write("small.csv", rows(2000, "s"))
        self.write("big.csv", rows(100000, "b"))
        one = [{"day": 1, "time": "10:00", "message": {"type": "text", "text": "hi {{nick}}"}}]
        self.ok("import", self.write("small.json", definition("small", recipients=(), steps=one,
                                                               recipients_file="small.csv")))
        self.ok("import", self.write("big.json", definition("big", recipients=(), steps=one,
                                                             recipients_file="big.csv")),
                timeout=300)
        small = self.export_rss("small", 2000)
        big = self.export_rss("big", 100000)
        # Sanitizer builds hold freed memory in quarantine, so their RSS grows with the work
        # done, not with what is live: only a plain build can show the memory is flat.
        if not harness.SANITIZED:
            self.assertLess(big - small, 4096, "export RSS %d KiB for 100k rows vs %d KiB for 2k"
                            % (big, small))

    # ---- help ----------------------------------------------------------------------------------

    def test_help_lists_the_new_commands(self):
        out = self.ok("--help")
        self.assertIn("herald show KEY [--json]", out)
        self.assertIn("herald export KEY [--state STATE] [--format csv|jsonl]", out)
        self.assertIn("UTF-8 BOM", self.ok("export", "--help"))
        self.assertIn("recipient count", self.ok("show", "--help"))


class MockHelpTest(harness.HeraldTest):

    def test_mock_help_documents_every_flag(self):
        p = subprocess.run([harness.MOCK, "--help"], capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout.decode()
        with open(os.path.join(harness.SRC, "tests", "mock", "mock_main.c")) as f:
            src = f.read()
        # Every long option the parser takes...
        table = src[src.index("static const struct option options[]"):]
        table = table[:table.index("};")]
        flags = re.findall(r'\{\s*"([a-z-]+)"', table)
        self.assertGreater(len(flags), 10)
        for flag in flags:
            # ...is described on a line of its own, not just named in the synopsis.
            self.assertRegex(out, r"(?m)^\s+--%s\b.*\S" % re.escape(flag), flag)
        for env in re.findall(r"MOCK_[A-Z_]+", src):
            self.assertIn(env, out)
        for word in ("/_mock/rules", "/_mock/reset", "/_mock/requests", "/_mock/clock",
                     "delay_ms", "drop", "omit", "times"):
            self.assertIn(word, out)

    def test_mock_bad_flag_is_64(self):
        p = subprocess.run([harness.MOCK, "--bogus"], capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 64)
        self.assertIn("usage", p.stderr.decode())


if __name__ == "__main__":
    harness.main()
