#!/usr/bin/env python3
"""End-to-end tests of `herald import` (SPEC §1, §3): recipients inline and from CSV / JSON
Lines files, the summary, stdin, --dry-run, time zones and DST, anchors, expiry, placeholders,
re-import semantics, every kind of bad input, and memory that stays flat on a large file.

    HERALD_BIN=build/herald HERALD_MOCK=build/herald-mock HERALD_SRC=. \
        python3 tests/e2e/test_import.py
"""
import datetime
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

UTC = datetime.timezone.utc

STEP1 = {"day": 1, "time": "10:00", "message": {"type": "text", "text": "{{nickname}}，欢迎加入！"}}
STEP2 = {"day": 3, "time": "20:30",
         "message": {"type": "text", "text": "{{nickname|朋友}}，您的优惠券明天到期"}}


def campaign(key="welcome", **fields):
    """A valid feihe campaign definition; fields override (None removes a member)."""
    d = {
        "key": key,
        "name": "新会员欢迎",
        "channel": "fh",
        "timezone": "Asia/Shanghai",
        "start_date": "2026-11-23",
        "steps": [STEP1, STEP2],
        "recipients": [{"id": "oc-a", "vars": {"nickname": "小王"}},
                       {"id": "oc-b", "vars": {"nickname": "小李"}}],
    }
    d.update(fields)
    return {k: v for k, v in d.items() if v is not None}


def summary(out):
    """The numbers and times of an import summary."""
    def grab(pattern):
        m = re.search(pattern, out, re.M)
        return m.group(1) if m else None
    return {
        "recipients": int(grab(r"recipients:\s+(\d+)")),
        "deliveries": int(grab(r"deliveries:\s+(\d+) scheduled")),
        "first": grab(r"first send:\s+(\S+)"),
        "last": grab(r"last send:\s+(\S+)"),
        "unchanged": bool(re.search(r"\bunchanged\b", out)),
    }


def utc(iso):
    return datetime.datetime.fromisoformat(iso).astimezone(UTC)


class ImportTest(harness.HeraldTest):

    def setUp(self):
        super().setUp()
        self.config({
            "fh": {"provider": "feihe", "base_url": "http://127.0.0.1:9"},
            "fh2": {"provider": "feihe", "base_url": "http://127.0.0.1:9"},
            "sn": {"provider": "sainiu", "base_url": "http://127.0.0.1:9"},
            "tan": {"provider": "tanmarket", "base_url": "http://127.0.0.1:9", "app_id": "app",
                    "app_key": "key"},
            "td": {"provider": "tencent_desk", "base_url": "http://127.0.0.1:9",
                   "sdkappid": 1400000000, "identifier": "admin", "usersig": "sig",
                   "from_account": "cs"},
        })

    # ---- helpers ------------------------------------------------------------------------


    def set_state(self, key, recipient, step, state):
        """Puts one delivery in a state directly in the database (test setup)."""
        self.sql("UPDATE deliveries SET state = ? WHERE step = ? AND recipient_id = "
                 "(SELECT r.id FROM recipients r JOIN campaigns c ON c.id = r.campaign_id "
                 "WHERE c.key = ? AND r.rid = ?)", state, step, key, recipient)
        self.assertEqual(self.last_rowcount, 1, "no delivery %s/%s step %d" % (key, recipient, step))

    def import_def(self, definition, name="campaign.json", *args):
        path = self.write(name, definition)
        return self.ok("import", path, *args)

    def by_key(self, key):
        """{(recipient, step): delivery} from `deliveries --json`."""
        return {(d["recipient"], d["step"]): d for d in self.deliveries(key)}

    def rejected(self, definition, *needles, code=65, name="bad.json", files=None):
        """Imports a bad definition: the exit code, stderr naming each needle, nothing written."""
        for fname, content in (files or {}).items():
            self.write(fname, content)
        path = self.write(name, definition)
        before = self.db_snapshot()
        rc, out, err = self.herald("import", path)
        self.assertEqual(rc, code, "stdout: %s\nstderr: %s" % (out, err))
        for n in needles:
            self.assertIn(n, err)
        self.assertEqual(self.db_snapshot(), before, "a rejected import changed the database")
        return err

    def seed(self):
        """A database holding one campaign, so rejected imports are checked against content."""
        self.import_def(campaign("seed"), "seed.json")

    # ---- recipients and the summary ----------------------------------------------------

    def test_inline_recipients_and_summary(self):
        out = self.import_def(campaign())
        s = summary(out)
        self.assertIn("welcome", out)
        self.assertEqual(s["recipients"], 2)
        self.assertEqual(s["deliveries"], 4)
        self.assertEqual(s["first"], "2026-11-23T10:00:00+08:00")
        self.assertEqual(s["last"], "2026-11-25T20:30:00+08:00")
        got = self.by_key("welcome")
        self.assertEqual(set(got), {("oc-a", 1), ("oc-a", 2), ("oc-b", 1), ("oc-b", 2)})
        for (rid, step), d in got.items():
            self.assertEqual(d["state"], "pending")
            self.assertEqual(d["attempts"], 0)
            self.assertEqual(d["due_at"], ["2026-11-23T10:00:00+08:00",
                                           "2026-11-25T20:30:00+08:00"][step - 1])
        st = self.status("welcome")
        self.assertEqual((st["name"], st["channel"], st["provider"]), ("新会员欢迎", "fh", "feihe"))
        self.assertEqual(st["counts"]["pending"], 4)

    def test_summary_times_in_campaign_zone(self):
        out = self.import_def(campaign(timezone="America/New_York", start_date="2026-12-01"))
        s = summary(out)
        self.assertEqual(s["first"], "2026-12-01T10:00:00-05:00")
        self.assertEqual(s["last"], "2026-12-03T20:30:00-05:00")

    def test_csv_bom_crlf_quotes_chinese(self):
        csv = ("\ufeffid,nickname,city\r\n"
               "c1,张三,上海\r\n"
               "c2,\"Li, \"\"Lee\"\"\",\"北京\r\n朝阳\"\r\n"
               "\r\n"
               "c3,王五,\r\n")
        self.write("members.csv", csv.encode("utf-8"))
        out = self.import_def(campaign(recipients=None, recipients_file="members.csv"))
        s = summary(out)
        self.assertEqual((s["recipients"], s["deliveries"]), (3, 6))
        self.assertEqual({r for r, _ in self.by_key("welcome")}, {"c1", "c2", "c3"})
        data = {rid: json.loads(d) for rid, d in self.sql("SELECT rid, data FROM recipients")}
        self.assertEqual(data["c1"]["vars"], {"nickname": "张三", "city": "上海"})
        self.assertEqual(data["c2"]["vars"], {"nickname": "Li, \"Lee\"", "city": "北京\r\n朝阳"})
        self.assertEqual(data["c3"]["vars"]["nickname"], "王五")

    def test_jsonl_recipients_file(self):
        lines = [{"id": "j1", "vars": {"nickname": "甲"}}, {"id": "j2"},
                 {"id": "j3", "vars": {"nickname": "丙", "level": 3}}]
        text = "\ufeff" + "\n".join(json.dumps(x, ensure_ascii=False) for x in lines[:2]) + \
            "\n\n" + json.dumps(lines[2], ensure_ascii=False) + "\r\n"
        self.write("members.jsonl", text.encode("utf-8"))
        # j2 has no nickname: step 1's {{nickname}} needs one, so give step 1 a default too.
        steps = [{"day": 1, "time": "09:00",
                  "message": {"type": "text", "text": "{{nickname|会员}} 您好"}}, STEP2]
        out = self.import_def(campaign(recipients=None, recipients_file="members.jsonl",
                                       steps=steps))
        self.assertEqual(summary(out)["recipients"], 3)
        self.assertEqual({r for r, _ in self.by_key("welcome")}, {"j1", "j2", "j3"})

    def test_inline_and_file_together(self):
        self.write("more.csv", "id,nickname\nf1,文件一\nf2,文件二\n")
        out = self.import_def(campaign(recipients_file="more.csv"))
        s = summary(out)
        self.assertEqual((s["recipients"], s["deliveries"]), (4, 8))
        self.assertEqual({r for r, _ in self.by_key("welcome")}, {"oc-a", "oc-b", "f1", "f2"})

    def test_recipients_file_relative_to_definition(self):
        os.mkdir(os.path.join(self.dir, "defs"))
        self.write("defs/members.csv", "id,nickname\nd1,甲\n")
        path = self.write("defs/c.json", campaign(recipients=None, recipients_file="members.csv"))
        self.ok("import", path)  # herald runs in the temp dir, not in defs/
        self.assertEqual({r for r, _ in self.by_key("welcome")}, {"d1"})

    def test_stdin(self):
        data = json.dumps(campaign("from-stdin"), ensure_ascii=False).encode()
        out = self.ok("import", "-", stdin=data)
        self.assertIn("from-stdin", out)
        self.assertEqual(summary(out)["deliveries"], 4)
        self.assertEqual(len(self.deliveries("from-stdin")), 4)

    def test_dry_run_without_database_creates_nothing(self):
        """No file, or a server database without Herald's tables: a dry run works on a scratch
        store and leaves neither a file nor a schema behind."""
        path = self.write("c.json", campaign())
        out = self.ok("import", path, "--dry-run")
        s = summary(out)
        self.assertEqual((s["recipients"], s["deliveries"]), (2, 4))
        self.assertEqual(s["first"], "2026-11-23T10:00:00+08:00")
        self.assertFalse(self.db_exists())
        if not harness.POSTGRES:
            self.assertEqual([f for f in os.listdir(self.dir) if f.startswith("herald.db")], [])

    @harness.sqlite_only("an empty file")
    def test_dry_run_leaves_an_empty_file_empty(self):
        open(self.db, "wb").close()
        path = self.write("c.json", campaign())
        self.assertEqual(summary(self.ok("import", path, "--dry-run"))["deliveries"], 4)
        self.assertEqual(os.path.getsize(self.db), 0)
        self.assertEqual(sorted(f for f in os.listdir(self.dir) if f.startswith("herald.db")),
                         ["herald.db"])

    def test_dry_run_writes_nothing(self):
        self.import_def(campaign())
        before = self.db_snapshot()
        recips = campaign()["recipients"] + [{"id": "oc-c", "vars": {"nickname": "小张"}}]
        path = self.write("c2.json", campaign(recipients=recips, steps=[STEP1]))
        out = self.ok("import", path, "--dry-run")
        self.assertEqual(summary(out)["recipients"], 3)
        self.assertEqual(self.db_snapshot(), before)
        path = self.write("c3.json", campaign("other"))
        self.ok("import", path, "--dry-run")
        self.assertEqual(self.db_snapshot(), before)
        rc, _, err = self.herald("status", "other")
        self.assertEqual(rc, 65, err)

    # ---- time -----------------------------------------------------------------------------

    def test_default_timezone_is_shanghai(self):
        self.import_def(campaign(timezone=None, steps=[STEP1]))
        d = self.deliveries("welcome")[0]
        self.assertEqual(d["due_at"], "2026-11-23T10:00:00+08:00")
        self.assertEqual(utc(d["due_at"]), datetime.datetime(2026, 11, 23, 2, 0, tzinfo=UTC))
        self.assertEqual(self.sql("SELECT timezone FROM campaigns"), [("Asia/Shanghai",)])

    def test_due_times_across_dst(self):
        def step(day, hhmm):
            return {"day": day, "time": hhmm, "message": {"type": "text", "text": "hi"}}
        cases = [
            # (zone, start_date, day, time, due_at printed, UTC)
            ("Asia/Shanghai", "2026-11-23", 1, "10:00", "2026-11-23T10:00:00+08:00", (11, 23, 2, 0)),
            ("Asia/Shanghai", "2026-11-23", 2, "00:00", "2026-11-24T00:00:00+08:00", (11, 23, 16, 0)),
            ("America/New_York", "2026-03-07", 1, "02:30", "2026-03-07T02:30:00-05:00", (3, 7, 7, 30)),
            # the gap: 02:30 does not exist on 2026-03-08, it moves forward to 03:30 EDT
            ("America/New_York", "2026-03-07", 2, "02:30", "2026-03-08T03:30:00-04:00", (3, 8, 7, 30)),
            ("America/New_York", "2026-03-07", 2, "01:59", "2026-03-08T01:59:00-05:00", (3, 8, 6, 59)),
            ("America/New_York", "2026-03-07", 2, "03:00", "2026-03-08T03:00:00-04:00", (3, 8, 7, 0)),
            ("America/New_York", "2026-03-07", 3, "02:30", "2026-03-09T02:30:00-04:00", (3, 9, 6, 30)),
            # the overlap: 01:30 happens twice on 2026-11-01, the first one (EDT) counts
            ("America/New_York", "2026-10-31", 2, "01:30", "2026-11-01T01:30:00-04:00", (11, 1, 5, 30)),
            ("America/New_York", "2026-10-31", 2, "02:00", "2026-11-01T02:00:00-05:00", (11, 1, 7, 0)),
            ("America/New_York", "2026-10-31", 3, "01:30", "2026-11-02T01:30:00-05:00", (11, 2, 6, 30)),
        ]
        for i, (zone, start, day, hhmm, shown, (mo, dd, hh, mi)) in enumerate(cases):
            key = "dst-%d" % i
            self.import_def(campaign(key, timezone=zone, start_date=start, steps=[step(day, hhmm)],
                                     recipients=[{"id": "r"}]), key + ".json")
            d = self.deliveries(key)
            self.assertEqual(len(d), 1)
            self.assertEqual(d[0]["due_at"], shown, "%s %s day %d %s" % (zone, start, day, hhmm))
            self.assertEqual(utc(d[0]["due_at"]), datetime.datetime(2026, mo, dd, hh, mi, tzinfo=UTC))

    def test_anchor_enrollment(self):
        steps = [{"day": 1, "time": "09:00", "message": {"type": "text", "text": "hi"}},
                 {"day": 2, "time": "21:15", "message": {"type": "text", "text": "again"}}]
        self.write("late.csv", "id,enrolled_at\nf1,2026-12-31\n")
        self.import_def(campaign(anchor="enrollment", start_date=None, steps=steps,
                                 recipients_file="late.csv", recipients=[
                                     {"id": "d", "enrolled_at": "2026-12-01"},
                                     # 23:30 in New York is already the 21st in Shanghai
                                     {"id": "i", "enrolled_at": "2026-11-20T23:30:00-05:00"},
                                     {"id": "z", "enrolled_at": "2026-11-20T15:59:59Z"},
                                     {"id": "m", "enrolled_at": "2026-11-20T16:00:00Z"}]))
        got = {k: d["due_at"] for k, d in self.by_key("welcome").items()}
        self.assertEqual(got, {
            ("d", 1): "2026-12-01T09:00:00+08:00", ("d", 2): "2026-12-02T21:15:00+08:00",
            ("i", 1): "2026-11-21T09:00:00+08:00", ("i", 2): "2026-11-22T21:15:00+08:00",
            ("z", 1): "2026-11-20T09:00:00+08:00", ("z", 2): "2026-11-21T21:15:00+08:00",
            ("m", 1): "2026-11-21T09:00:00+08:00", ("m", 2): "2026-11-22T21:15:00+08:00",
            ("f1", 1): "2026-12-31T09:00:00+08:00", ("f1", 2): "2027-01-01T21:15:00+08:00",
        })

    def test_anchor_enrollment_needs_enrolled_at(self):
        self.seed()
        base = campaign(anchor="enrollment", start_date=None)
        self.rejected(dict(base, recipients=[{"id": "ok", "vars": {"nickname": "x"},
                                              "enrolled_at": "2026-12-01"},
                                             {"id": "no-date", "vars": {"nickname": "y"}}]),
                      "bad.json", "$.recipients[1]", "no-date", "enrolled_at")
        self.rejected(dict(base, recipients=[{"id": "bad-date", "vars": {"nickname": "y"},
                                              "enrolled_at": "2026-13-45"}]),
                      "bad-date", "enrolled_at")
        self.rejected(campaign(anchor="enrollment", start_date=None, recipients=None,
                               recipients_file="e.csv"),
                      "e.csv", "line 3", "enrolled_at", files={"e.csv": "id,nickname,enrolled_at\n"
                                                               "a,x,2026-12-01\nb,y,yesterday\n"})

    def test_expire_after(self):
        cases = {None: 24 * 3600, "90s": 90, "15m": 900, "2h30m": 9000, "7d": 7 * 86400, "1h": 3600}
        for i, (text, seconds) in enumerate(cases.items()):
            key = "exp-%d" % i
            self.import_def(campaign(key, expire_after=text, steps=[STEP1]), key + ".json")
            rows = self.sql("SELECT DISTINCT d.expires_at_ms - d.due_at_ms FROM deliveries d "
                            "JOIN campaigns c ON c.id = d.campaign_id WHERE c.key = ?", key)
            self.assertEqual(rows, [(seconds * 1000,)], "expire_after %r" % text)
        for text in ("soon", "10", "-5m", "1.5h", "", "h", "5x", "2h30"):
            self.rejected(campaign("exp-bad", expire_after=text), "$.expire_after")

    # ---- placeholders --------------------------------------------------------------------

    def test_placeholders_rendered(self):
        """Rendering as the provider receives it: one pass of the scheduler to a mock."""
        mock = self.mock()
        self.config({"fh": {"provider": "feihe", "base_url": mock.url, "system": "NEW_MEMBER"}})
        self.write("m.csv", "\ufeffid,nickname,city\r\n"
                            "c1,张三,上海\r\n"
                            "c2,,\"北京, 朝阳\"\r\n"
                            "c3,\"Li \"\"Lee\"\"\",\r\n")
        text = "{{nickname|朋友}}@{{ city | 某地}}/{{id}} #客户昵称# $userNick$ {{ not a var }}"
        self.import_def(campaign(
            steps=[{"day": 1, "time": "10:00", "message": {"type": "text", "text": text}}],
            recipients=[{"id": "i1", "vars": {"nickname": "小王", "city": "深圳"}},
                        {"id": "i2", "vars": {"n": 1}}],
            recipients_file="m.csv"))
        out = self.ok("run", "--once", "--now", "2026-11-23T10:00:05+08:00")
        del out
        msgs = {}
        for r in mock.accepted("feihe"):
            body = json.loads(r["body"])
            msgs[body["openId"]] = body["msg"]
        tail = " #客户昵称# $userNick$ {{ not a var }}"
        self.assertEqual(msgs, {
            "i1": "小王@深圳/i1" + tail,
            "i2": "朋友@ 某地/i2" + tail,
            "c1": "张三@上海/c1" + tail,
            "c2": "朋友@北京, 朝阳/c2" + tail,
            "c3": "Li \"Lee\"@ 某地/c3" + tail,
        })
        self.assertEqual(self.counts("welcome")["sent"], 5)

    def test_missing_placeholder_value_names_recipient(self):
        self.seed()
        err = self.rejected(campaign(recipients=[{"id": "has", "vars": {"nickname": "x"}},
                                                 {"id": "lacks-nick", "vars": {"other": "y"}}]),
                            "$.recipients[1]", "lacks-nick", "nickname")
        self.assertNotIn('"has"', err)
        # An empty CSV cell has no value either: {{nickname}} without a default fails.
        self.rejected(campaign(recipients=None, recipients_file="blank.csv"),
                      "blank.csv", "line 3", "blank-one", "nickname",
                      files={"blank.csv": "id,nickname\nfull,小王\nblank-one,\n"})

    def test_provider_placeholders_stored_untouched(self):
        tan_msg = {"contents": [{"type": 1, "text": "#客户昵称# 您好，{{x|欢迎}}"},
                                {"type": 3, "url": "https://example.com/a?b=$c$"}]}
        self.import_def(campaign("tan", channel="tan", steps=[
            {"day": 1, "time": "10:00", "message": tan_msg}],
            recipients=[{"chat_id": "wr-1", "chat_owner": "owner-1"}]), "tan.json")
        sn_msg = {"type": "text", "text": "$userNick$，{{nickname|亲}} 您的订单 #订单号# 已发货"}
        self.import_def(campaign("sn", channel="sn", steps=[
            {"day": 1, "time": "10:00", "message": sn_msg}]), "sn.json")
        stored = {k: json.loads(m) for k, m in self.sql(
            "SELECT c.key, s.message FROM steps s JOIN campaigns c ON c.id = s.campaign_id")}
        self.assertEqual(stored["tan"], tan_msg)
        self.assertEqual(stored["sn"], sn_msg)
        self.assertEqual([d["recipient"] for d in self.deliveries("tan")], ["wr-1"])
        self.assertEqual(self.status("tan")["provider"], "tanmarket")

    # ---- re-import (SPEC §3) ------------------------------------------------------------

    def test_reimport_unchanged_changes_nothing(self):
        self.write("m.csv", "id,nickname\nf1,甲\n")
        d = campaign(recipients_file="m.csv", expire_after="2h")
        first = self.import_def(d)
        self.assertFalse(summary(first)["unchanged"])
        before = self.db_snapshot()
        out = self.import_def(d)
        self.assertTrue(summary(out)["unchanged"], out)
        self.assertEqual(self.db_snapshot(), before)

    def test_reimport_new_and_removed_recipients(self):
        r = {rid: {"id": rid, "vars": {"nickname": rid}} for rid in ("a", "b", "c")}
        self.import_def(campaign(recipients=[r["a"], r["b"]]))
        self.set_state("welcome", "b", 1, "sent")
        out = self.import_def(campaign(recipients=[r["a"], r["b"], r["c"]]))
        self.assertIn("new 1", out)
        got = self.by_key("welcome")
        self.assertEqual(got[("c", 1)]["state"], "pending")
        self.assertEqual(got[("c", 2)]["state"], "pending")
        self.assertEqual(got[("b", 1)]["state"], "sent")
        # b leaves: its pending step 2 is cancelled, its sent step 1 stays sent
        out = self.import_def(campaign(recipients=[r["a"], r["c"]]))
        self.assertIn("removed 1", out)
        got = self.by_key("welcome")
        self.assertEqual((got[("b", 1)]["state"], got[("b", 2)]["state"]), ("sent", "cancelled"))
        self.assertEqual(got[("a", 2)]["state"], "pending")
        c = self.counts("welcome")
        self.assertEqual((c["pending"], c["sent"], c["cancelled"]), (4, 1, 1))
        # b comes back: the cancelled delivery is pending again; sent stays sent
        self.import_def(campaign(recipients=[r["a"], r["b"], r["c"]]))
        got = self.by_key("welcome")
        self.assertEqual((got[("b", 1)]["state"], got[("b", 2)]["state"]), ("sent", "pending"))
        c = self.counts("welcome")
        self.assertEqual((c["pending"], c["sent"], c["cancelled"]), (5, 1, 0))

    def test_reimport_removed_from_file(self):
        self.write("m.csv", "id,nickname\nf1,甲\nf2,乙\nf3,丙\n")
        self.import_def(campaign(recipients=None, recipients_file="m.csv"))
        self.write("m.csv", "id,nickname\nf1,甲\nf3,丙\n")
        self.import_def(campaign(recipients=None, recipients_file="m.csv"))
        states = {k: d["state"] for k, d in self.by_key("welcome").items()}
        self.assertEqual(states[("f2", 1)], "cancelled")
        self.assertEqual(states[("f2", 2)], "cancelled")
        self.assertEqual(states[("f1", 1)], "pending")

    def test_reimport_changed_step_reschedules_pending_only(self):
        r = [{"id": x, "vars": {"nickname": x}} for x in ("a", "b", "c", "d", "e")]
        self.import_def(campaign(recipients=r))
        self.set_state("welcome", "a", 1, "sent")
        self.set_state("welcome", "b", 1, "failed")
        self.set_state("welcome", "d", 1, "sending")
        self.set_state("welcome", "e", 1, "retrying")
        untouched = self.sql("SELECT * FROM deliveries WHERE state IN ('sent', 'failed', 'sending') "
                             "ORDER BY id")
        moved = dict(STEP1, time="11:45")
        out = self.import_def(campaign(recipients=r, steps=[moved, STEP2]))
        self.assertFalse(summary(out)["unchanged"])
        got = self.by_key("welcome")
        self.assertEqual(got[("a", 1)]["due_at"], "2026-11-23T10:00:00+08:00")
        self.assertEqual(got[("a", 1)]["state"], "sent")
        self.assertEqual(got[("b", 1)]["due_at"], "2026-11-23T10:00:00+08:00")
        self.assertEqual(got[("b", 1)]["state"], "failed")
        self.assertEqual(got[("d", 1)]["state"], "sending")
        self.assertEqual(got[("c", 1)]["due_at"], "2026-11-23T11:45:00+08:00")
        self.assertEqual(got[("c", 1)]["state"], "pending")
        self.assertEqual(got[("e", 1)]["due_at"], "2026-11-23T11:45:00+08:00")
        for x in "abcde":
            self.assertEqual(got[(x, 2)]["due_at"], "2026-11-25T20:30:00+08:00")
        self.assertEqual(self.sql("SELECT * FROM deliveries WHERE state IN ('sent', 'failed', "
                                  "'sending') ORDER BY id"), untouched)
        # moving the start date moves every waiting delivery, still not the sent ones
        self.import_def(campaign(recipients=r, steps=[moved, STEP2], start_date="2026-12-01"))
        got = self.by_key("welcome")
        self.assertEqual(got[("c", 2)]["due_at"], "2026-12-03T20:30:00+08:00")
        self.assertEqual(got[("a", 1)]["due_at"], "2026-11-23T10:00:00+08:00")

    def test_reimport_fewer_steps_cancels_removed_step(self):
        self.import_def(campaign())
        self.set_state("welcome", "oc-a", 2, "sent")
        self.import_def(campaign(steps=[STEP1]))
        got = self.by_key("welcome")
        self.assertEqual(got[("oc-a", 2)]["state"], "sent")
        self.assertEqual(got[("oc-b", 2)]["state"], "cancelled")
        self.assertEqual(got[("oc-a", 1)]["state"], "pending")
        self.assertEqual(got[("oc-b", 1)]["state"], "pending")
        c = self.counts("welcome")
        self.assertEqual((c["pending"], c["sent"], c["cancelled"]), (2, 1, 1))

    def test_reimport_step_back_revives_its_deliveries(self):
        self.import_def(campaign())
        self.set_state("welcome", "oc-a", 2, "sent")
        self.import_def(campaign(steps=[STEP1]))
        later = dict(STEP2, day=5, time="11:00")
        out = self.import_def(campaign(steps=[STEP1, later]))
        self.assertFalse(summary(out)["unchanged"])
        got = self.by_key("welcome")
        self.assertEqual(got[("oc-b", 2)]["state"], "pending")
        self.assertIsNone(got[("oc-b", 2)]["last_error"])
        self.assertEqual(got[("oc-b", 2)]["due_at"], "2026-11-27T11:00:00+08:00")
        self.assertEqual(got[("oc-a", 2)]["state"], "sent")
        self.assertEqual(got[("oc-a", 2)]["due_at"], "2026-11-25T20:30:00+08:00")

    def test_reimport_fewer_steps_is_not_unchanged(self):
        self.import_def(campaign())
        out = self.import_def(campaign(steps=[STEP1]))
        self.assertFalse(summary(out)["unchanged"], out)

    def test_reimport_changed_vars(self):
        self.import_def(campaign())
        recips = [{"id": "oc-a", "vars": {"nickname": "老王"}}, {"id": "oc-b", "vars": {"nickname": "小李"}}]
        out = self.import_def(campaign(recipients=recips))
        self.assertIn("changed 1", out)
        self.assertFalse(summary(out)["unchanged"])
        data = dict(self.sql("SELECT rid, data FROM recipients"))
        self.assertEqual(json.loads(data["oc-a"])["vars"]["nickname"], "老王")

    def test_reimport_channel_to_other_provider_rejected(self):
        self.import_def(campaign())
        err = self.rejected(campaign(channel="sn"), "$.channel")
        self.assertIn("feihe", err)
        # another channel of the same provider is fine
        self.import_def(campaign(channel="fh2"))
        self.assertEqual(self.status("welcome")["channel"], "fh2")

    def test_reimport_of_a_cancelled_campaign_rejected(self):
        self.import_def(campaign())
        self.ok("cancel", "welcome")
        err = self.rejected(campaign(recipients=[{"id": "oc-new", "vars": {"nickname": "新"}}]),
                            "cancelled")
        self.assertIn("welcome", err)
        self.assertEqual(self.status("welcome")["counts"]["pending"], 0)

    # ---- bad input: 65/66, where, and nothing written -------------------------------------

    def test_invalid_json_line_and_column(self):
        self.seed()
        text = '{\n  "key": "x",\n  "channel": fh\n}\n'
        self.rejected(text, "bad.json", "line 3, column 14")

    def test_wrong_types(self):
        self.seed()
        self.rejected(campaign(key=5), "$.key")
        self.rejected(campaign(name=["a"]), "$.name")
        self.rejected(campaign(steps={"day": 1}), "$.steps")
        self.rejected(campaign(steps=[dict(STEP1, day="1")]), "$.steps[0].day")
        self.rejected(campaign(steps=[STEP1, dict(STEP2, time=1030)]), "$.steps[1].time")
        self.rejected(campaign(steps=[STEP1, dict(STEP2, message="hi")]), "$.steps[1].message")
        self.rejected(campaign(steps=[STEP1, dict(STEP2, message={"type": "text", "text": 5})]),
                      "$.steps[1].message")
        self.rejected(campaign(recipients={"id": "a"}), "$.recipients")
        self.rejected(campaign(recipients=["oc-a"]), "$.recipients[0]")
        self.rejected(campaign(recipients=[{"id": "a", "vars": ["x"]}]), "$.recipients[0]", "vars")
        self.rejected(campaign(recipients_file=7), "$.recipients_file")
        self.rejected(campaign(start_date="23/11/2026"), "$.start_date")
        self.rejected(campaign(anchor="birthday"), "$.anchor")
        self.rejected([campaign()], "bad.json")

    def test_unknown_and_missing_keys(self):
        self.seed()
        self.rejected(campaign(colour="red"), "$.colour")
        self.rejected(campaign(steps=[dict(STEP1, hour=3)]), "$.steps[0].hour")
        self.rejected(campaign(key=None), "$.key")
        self.rejected(campaign(channel=None), "$.channel")
        self.rejected(campaign(steps=[]), "$.steps")
        self.rejected(campaign(recipients=None), "recipients")
        self.rejected(campaign(start_date=None), "$.start_date")

    def test_unknown_channel(self):
        self.seed()
        self.rejected(campaign(channel="nowhere"), "$.channel", "nowhere")

    def test_bad_time_and_day(self):
        self.seed()
        for t in ("24:00", "10:60", "1000", "10:00:00", "ab:cd", "-1:00", ""):
            self.rejected(campaign(steps=[STEP1, dict(STEP2, time=t)]), "$.steps[1].time")
        for day in (0, -1, 1.5):
            self.rejected(campaign(steps=[STEP1, dict(STEP2, day=day)]), "$.steps[1].day")

    def test_unknown_timezone(self):
        self.seed()
        self.rejected(campaign(timezone="Mars/Olympus_Mons"), "$.timezone", "Mars/Olympus_Mons")
        self.rejected(campaign(timezone="../../etc/passwd"), "$.timezone")

    def test_invalid_utf8_in_definition(self):
        self.seed()
        text = json.dumps(campaign(), ensure_ascii=False).encode()
        bad = text.replace("新会员欢迎".encode(), b"\xe6\x96\xb0\xff\xfe", 1)
        self.rejected(b'\n' + bad, "bad.json", "UTF-8", "line 2")

    def test_invalid_utf8_in_csv(self):
        self.seed()
        self.rejected(campaign(recipients=None, recipients_file="u.csv"), "u.csv", "line 3",
                      "UTF-8", files={"u.csv": b"id,nickname\nok,\xe5\xb0\x8f\nbad,\xe5\xb0\n"})

    def test_ragged_csv(self):
        self.seed()
        err = self.rejected(campaign(recipients=None, recipients_file="r.csv"), "r.csv",
                            "line 3", "line 5",
                            files={"r.csv": "id,nickname\na,甲\nb,乙,extra\nc,丙\nd\n"})
        self.assertNotIn("line 2", err)
        self.assertNotIn("line 4", err)

    def test_duplicate_recipient_ids(self):
        self.seed()
        self.rejected(campaign(recipients=[{"id": "x", "vars": {"nickname": "1"}},
                                           {"id": "y", "vars": {"nickname": "2"}},
                                           {"id": "x", "vars": {"nickname": "3"}}]),
                      "$.recipients[2]", '"x"')
        self.rejected(campaign(recipients=None, recipients_file="d.csv"), "d.csv", "line 4", '"p"',
                      files={"d.csv": "id,nickname\np,1\nq,2\np,3\n"})
        self.rejected(campaign(recipients_file="d2.jsonl"), "d2.jsonl", "line 2", '"oc-b"',
                      files={"d2.jsonl": '{"id":"z","vars":{"nickname":"1"}}\n'
                                         '{"id":"oc-b","vars":{"nickname":"2"}}\n'})

    def test_missing_files_66(self):
        self.seed()
        self.rejected(campaign(recipients_file="absent.csv"), "absent.csv", code=66)
        before = self.db_snapshot()
        rc, out, err = self.herald("import", "no-such-campaign.json")
        self.assertEqual(rc, 66, err)
        self.assertIn("no-such-campaign.json", err)
        self.assertEqual(self.db_snapshot(), before)

    def test_tanmarket_needs_start_date_anchor(self):
        self.seed()
        self.rejected(campaign("tan", channel="tan", anchor="enrollment", start_date=None,
                               steps=[{"day": 1, "time": "10:00",
                                       "message": {"contents": [{"type": 1, "text": "hi"}]}}],
                               recipients=[{"chat_id": "g", "chat_owner": "o",
                                            "enrolled_at": "2026-12-01"}]),
                      "$.anchor", "tanmarket")

    def test_several_problems_all_listed(self):
        self.seed()
        d = campaign(colour="red", timezone="Nowhere/City",
                     steps=[dict(STEP1, day=0), dict(STEP2, time="25:00")],
                     expire_after="later")
        self.rejected(d, "$.colour", "$.timezone", "$.steps[0].day", "$.steps[1].time",
                      "$.expire_after")
        self.write("many.csv", "id,nickname\nok,1\nb1\nb2,2,3\nok,dup\n")
        self.rejected(campaign(recipients=[{"id": "i", "vars": {}}], recipients_file="many.csv"),
                      "$.recipients[0]", "line 3", "line 4", "line 5")

    def test_problem_list_is_capped(self):
        self.seed()
        rows = "".join("r%d\n" % i for i in range(500))
        err = self.rejected(campaign(recipients=None, recipients_file="c.csv"),
                            "line 2", files={"c.csv": "id,nickname\n" + rows})
        self.assertLess(err.count("\n"), 200)

    def test_good_row_then_bad_row_writes_nothing(self):
        # a fresh database: the good first row must not be left behind either
        self.ok("migrate")
        self.rejected(campaign(recipients=None, recipients_file="gb.csv"), "gb.csv", "line 3",
                      files={"gb.csv": "id,nickname\ngood,小王\nbad\n"})
        self.assertEqual(self.sql("SELECT count(*) FROM campaigns"), [(0,)])
        # and a bad one of an existing campaign keeps the old one as it was
        self.import_def(campaign())
        self.rejected(campaign(recipients=[{"id": "new", "vars": {"nickname": "x"}}],
                               recipients_file="gb.csv"), "line 3")
        self.assertEqual({r for r, _ in self.by_key("welcome")}, {"oc-a", "oc-b"})

    # ---- what import must refuse (SPEC §5.8) and hostile input -----------------------------

    def test_limits_checked_without_placeholders(self):
        """A message with nothing to render is checked against the provider's limits as is."""
        self.seed()
        text = lambda n: {"type": "text", "text": "x" * n}  # noqa: E731
        fh = lambda n: campaign("fh-limit", steps=[STEP1, {"day": 2, "time": "10:00",  # noqa: E731
                                                           "message": text(n)}])
        err = self.rejected(fh(2049), "$.steps[1].message", "2049 bytes", "2048")
        self.assertNotIn("$.steps[0]", err)
        self.import_def(fh(2048), "fh-limit.json")
        td = lambda n: campaign("td-limit", channel="td", steps=[  # noqa: E731
            {"day": 1, "time": "10:00", "message": text(n)}],
            recipients=[{"id": "user-1"}, {"id": "user-2"}])
        self.rejected(td(13000), "$.steps[0].message", "12 KB")
        self.import_def(td(12000), "td-limit.json")

    def test_rendered_limit_names_step_and_recipient(self):
        self.seed()
        long_name = "长" * 700  # 2100 bytes
        self.write("r.csv", "id,nickname\nshort,小王\nlong-one,%s\n" % long_name)
        err = self.rejected(campaign(recipients=None, recipients_file="r.csv"),
                            "r.csv", "line 3", '"long-one"', "$.steps[0].message", "2048")
        self.assertNotIn('"short"', err)
        # A Tanmarket group is named by its chat_id.
        self.config({"td": {"provider": "tencent_desk", "base_url": "http://127.0.0.1:9",
                            "sdkappid": 1400000000, "identifier": "admin", "usersig": "sig"}})
        self.rejected(campaign("td-big", channel="td", steps=[
            {"day": 1, "time": "10:00", "message": {"type": "text", "text": "{{blob}}"}}],
            recipients=[{"session_id": "s-small", "vars": {"blob": "x"}},
                        {"session_id": "s-big", "vars": {"blob": "x" * 13000}}]),
            "$.recipients[1]", '"s-big"', "$.steps[0].message", "12 KB")

    def test_tanmarket_step_renders_the_same_for_every_group(self):
        self.seed()
        groups = [{"chat_id": "g1", "chat_owner": "o", "vars": {"brand": "好店"}},
                  {"chat_id": "g2", "chat_owner": "o", "vars": {"brand": "好店"}},
                  {"chat_id": "g3", "chat_owner": "o", "vars": {"brand": "别家"}},
                  {"chat_id": "g4", "chat_owner": "o", "vars": {"brand": "又一家"}}]
        steps = [{"day": 1, "time": "10:00", "message": {"contents": [
                     {"type": 1, "text": "#客户昵称# 欢迎来到{{brand|好店}}"}]}},
                 {"day": 2, "time": "10:00", "message": {"contents": [
                     {"type": 1, "text": "#客户昵称# 再见"}]}}]
        tan = lambda recipients, **kw: campaign("tan", channel="tan", steps=steps,  # noqa: E731
                                                recipients=recipients, **kw)
        err = self.rejected(tan(groups), "$.recipients[2]", '"g3"', "$.steps[0].message", '"g1"')
        self.assertNotIn("$.steps[1]", err)
        self.assertNotIn('"g2"', err)
        self.assertNotIn('"g4"', err, "only the first group that differs is named")
        # The same text through a default or a value is the same SOP; groups from a file too.
        self.write("g.csv", "chat_id,chat_owner,brand\ng5,o,好店\ng6,o,\n")
        self.import_def(tan(groups[:2] + [{"chat_id": "g0", "chat_owner": "o"}],
                            recipients_file="g.csv"), "tan.json")
        self.assertEqual(len(self.deliveries("tan")), 5 * 2)
        # {{id}} differs between groups by definition.
        by_id = [{"day": 1, "time": "10:00", "message": {"contents": [
            {"type": 1, "text": "群 {{id}}"}]}}]
        self.rejected(campaign("tan2", channel="tan", steps=by_id, recipients=groups[:2]),
                      '"g2"', "$.steps[0].message")

    def test_placeholders_found_in_decoded_text(self):
        """A placeholder is what the scheduler will render: the decoded string, not its JSON."""
        self.seed()
        step = {"day": 1, "time": "10:00", "message": {"type": "text", "text": "{{\nnickname}}好"}}
        self.rejected(campaign("nl", steps=[step], recipients=[{"id": "no-vars"}]),
                      '"no-vars"', "nickname")
        tab = {"day": 1, "time": "10:00", "message": {"type": "text", "text": "{{\tx|默认\n}}"}}
        self.import_def(campaign("nl", steps=[step, tab],
                                 recipients=[{"id": "v", "vars": {"nickname": "小王"}}]), "nl.json")
        # A backslash and an n are two characters, not a newline: no placeholder, nothing needed.
        lit = {"day": 1, "time": "10:00", "message": {"type": "text", "text": "{{\\nnickname}}"}}
        self.import_def(campaign("lit", steps=[lit], recipients=[{"id": "no-vars"}]), "lit.json")
        # Keys are never rendered, so a key that looks like one is not a placeholder.
        tan = {"day": 1, "time": "10:00", "message": {"contents": [
            {"type": 1, "text": "hi", "{{k}}": "v"}]}}
        self.import_def(campaign("keys", channel="tan", steps=[tan],
                                 recipients=[{"chat_id": "g", "chat_owner": "o"}]), "keys.json")

    def test_a_wrong_enrolled_at_is_refused_even_when_unused(self):
        self.seed()
        self.rejected(campaign("ea", recipients=[{"id": "a", "enrolled_at": "garbage"}]),
                      '"a"', "enrolled_at")
        self.import_def(campaign("ea", recipients=[{"id": "a", "enrolled_at": "2026-11-20",
                                                   "vars": {"nickname": "甲"}}]),
                        "ea.json")

    def test_a_nul_character_in_a_string_is_refused(self):
        """A C string ends at NUL: "k\u0000x" would import as "k", merging two campaigns."""
        self.seed()
        self.rejected(campaign("k\u0000x"), "NUL")
        self.rejected(campaign("nul", steps=[{"day": 1, "time": "10:00", "message": {
            "type": "text", "text": "hello\u0000 secret tail"}}]), "NUL")
        self.rejected(campaign("nul", recipients=None, recipients_file="r.jsonl"), "r.jsonl",
                      "line 2", "NUL", files={"r.jsonl": '{"id": "a"}\n{"id": "a\\u0000b"}\n'})
        # An escaped backslash followed by u0000 is text, not a NUL.
        self.import_def(campaign("lit", steps=[{"day": 1, "time": "10:00", "message": {
            "type": "text", "text": "\\u0000 literally"}}]), "lit.json")

    def test_durations_and_dates_bounded(self):
        self.seed()
        for text in ("106751991167d", "3651d", "87625h", "9223372036854775807ms"):
            self.rejected(campaign("far", expire_after=text), "$.expire_after", "3650d")
        self.import_def(campaign("far", expire_after="3650d"), "far.json")
        rows = self.sql("SELECT DISTINCT d.expires_at_ms - d.due_at_ms FROM deliveries d JOIN "
                        "campaigns c ON c.id = d.campaign_id WHERE c.key = 'far'")
        self.assertEqual(rows, [(3650 * 86400 * 1000,)])
        for date in ("0000-01-01", "1969-12-31"):
            self.rejected(campaign("old", start_date=date), "$.start_date", "1970")
        self.import_def(campaign("late", start_date="9999-12-31"), "late.json")
        for enrolled in ("1969-12-31", "-9223372036854775808", "9223372036854775807",
                         "0001-01-01T00:00:00Z", "99999999999999999"):
            self.rejected(campaign("enr", anchor="enrollment", start_date=None,
                                   recipients=[{"id": "a", "vars": {"nickname": "x"},
                                                "enrolled_at": enrolled}]),
                          "$.recipients[0]", '"a"', "enrolled_at")

    def test_recipients_file_must_be_a_regular_file(self):
        self.seed()
        fifo = os.path.join(self.dir, "pipe.csv")
        os.mkfifo(fifo)
        for path, needle in (("/dev/zero", "/dev/zero"), (fifo, "pipe.csv"),
                             (self.dir, os.path.basename(self.dir))):
            before = self.db_snapshot()
            bad = self.write("bad.json", campaign(recipients=None, recipients_file=path))
            rc, out, err = self.herald("import", bad, timeout=20)
            self.assertEqual(rc, 66, err)
            self.assertIn(needle, err)
            self.assertIn("regular file", err)
            self.assertEqual(self.db_snapshot(), before)

    # ---- SaiNiu's late calls and expire_after ---------------------------------------------

    def test_sainiu_late_call_never_sends_past_expiry(self):
        """SPEC §5.2 with expire_after: a late call's send time moves to the earliest the
        provider takes, but a send time past due + expire_after is an expired delivery."""
        mock = self.mock()
        self.config({"sn": {"provider": "sainiu", "base_url": mock.url}})
        shanghai = datetime.timezone(datetime.timedelta(hours=8))
        # In the future, so the mock's 2 h rule (on the real clock) holds for every send time.
        d1 = datetime.datetime.now(shanghai).date() + datetime.timedelta(days=30)
        due = datetime.datetime.combine(d1, datetime.time(10, 0), shanghai)
        step = {"day": 1, "time": "10:00", "message": {"type": "text", "text": "通知"}}
        # Called 30 min before due: the earliest send time is due + 1h35m.
        self.import_def(campaign("tight", channel="sn", start_date=d1.isoformat(), steps=[step],
                                 expire_after="1h35m", recipients=[{"id": "seller-a"}]), "t.json")
        self.import_def(campaign("loose", channel="sn", start_date=d1.isoformat(), steps=[step],
                                 expire_after="1h36m", recipients=[{"id": "seller-b"}]), "l.json")
        now = due - datetime.timedelta(minutes=30)
        self.ok("run", "--once", "--now", now.isoformat())
        self.assertEqual(self.deliveries("tight")[0]["state"], "expired")
        self.assertEqual(self.deliveries("loose")[0]["state"], "sent")
        calls = mock.requests("sainiu")
        self.assertEqual(len(calls), 1, calls)
        data = json.loads(dict(urllib.parse.parse_qsl(calls[0]["body"]))["data"])
        self.assertEqual(data["userNick"], "seller-b")
        want = int((now + datetime.timedelta(hours=2, minutes=5)).timestamp() * 1000)
        self.assertLessEqual(want, int(data["sendtime"]))
        self.assertLessEqual(int(data["sendtime"]), int((due + datetime.timedelta(
            hours=1, minutes=36)).timestamp() * 1000))
        self.assertEqual(calls[0]["verdict"], "accepted", calls[0])

    def test_sainiu_send_time_moved_into_quiet_hours_goes_to_their_end(self):
        """The step's time (19:00) is outside the quiet hours (22:00-08:00), but a call made
        at 20:30 can ask for no send time before 22:35 (the provider's 2 hours and Herald's
        margin): inside the window, so the notice goes at its end, 08:00 the next day."""
        mock = self.mock()
        self.config({"sn": {"provider": "sainiu", "base_url": mock.url}})
        shanghai = datetime.timezone(datetime.timedelta(hours=8))
        d1 = datetime.datetime.now(shanghai).date() + datetime.timedelta(days=30)
        step = {"day": 1, "time": "19:00", "message": {"type": "text", "text": "通知"}}
        self.import_def(campaign("night", channel="sn", start_date=d1.isoformat(), steps=[step],
                                 quiet_hours={"from": "22:00", "to": "08:00"},
                                 recipients=[{"id": "seller-q"}]), "q.json")
        now = datetime.datetime.combine(d1, datetime.time(20, 30), shanghai)
        self.ok("run", "--once", "--now", now.isoformat())
        self.assertEqual(self.deliveries("night")[0]["state"], "sent")
        calls = mock.requests("sainiu")
        self.assertEqual(len(calls), 1, calls)
        data = json.loads(dict(urllib.parse.parse_qsl(calls[0]["body"]))["data"])
        morning = datetime.datetime.combine(d1 + datetime.timedelta(days=1),
                                            datetime.time(8, 0), shanghai)
        self.assertEqual(int(data["sendtime"]), int(morning.timestamp() * 1000))


    # ---- the write lock: bounded transactions, all or nothing ---------------------------

    def big_campaign(self, key, rows, bad_last=False):
        """A campaign of `rows` CSV recipients and two steps; its definition's path."""
        with open(os.path.join(self.dir, key + ".csv"), "w") as f:
            f.write("id,nickname\n" + "".join("u%07d,会员%d\n" % (i, i) for i in range(rows)))
            if bad_last:
                f.write("bad-last-row\n")
        return self.write(key + ".json", campaign(
            key, recipients=None, recipients_file=key + ".csv", steps=[STEP1, STEP2]))

    def spawn_import(self, path, *args):
        return subprocess.Popen([harness.HERALD, "--db", self.db, "--config", self.config_path,
                                 "import", path] + list(args), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=self.dir)

    @harness.sqlite_only("SQLite's write lock")
    def test_large_import_leaves_the_write_lock_to_others(self):
        """A writer gets the lock again and again while 200,000 recipients go in."""
        self.seed()
        path = self.big_campaign("big", 200000)
        # A short busy timeout, retried at once, as herald run's own busy handler does: the
        # longest wait is then the longest time the import kept the lock from others.
        con = sqlite3.connect(self.db, timeout=0.005, isolation_level=None)
        p = self.spawn_import(path)
        waits, hidden_seen = [], False
        while p.poll() is None:
            t0 = time.monotonic()
            while True:
                try:
                    con.execute("BEGIN IMMEDIATE")
                    break
                except sqlite3.OperationalError:
                    time.sleep(0.001)
            waits.append(time.monotonic() - t0)
            # What the import has written so far is nobody's to see or claim.
            if con.execute("SELECT count(*) FROM deliveries d JOIN campaigns c ON "
                           "c.id = d.campaign_id WHERE c.key = 'big' AND c.state = 'importing'"
                           ).fetchone()[0]:
                hidden_seen = True
                rc, out, err = self.herald("status", "big")
                self.assertEqual(rc, 65, out + err)
            con.execute("COMMIT")
            time.sleep(0.02)
        out, err = p.communicate()
        con.close()
        self.assertEqual(p.returncode, 0, err.decode())
        self.assertEqual(summary(out.decode())["deliveries"], 400000)
        sys.stderr.write("\n  200,000 recipients: %d lock takes, longest wait %.0f ms\n"
                         % (len(waits), max(waits) * 1000))
        self.assertGreater(len(waits), 5)
        self.assertLess(max(waits), 1.0 * harness.SLOW, "the import held the write lock too long")
        self.assertTrue(hidden_seen, "the import was never seen writing")
        self.assertEqual(self.counts("big")["pending"], 400000)

    def test_import_failing_at_its_last_line_writes_nothing(self):
        self.seed()
        self.big_campaign("big", 20000, bad_last=True)
        self.rejected(campaign("big", recipients=None, recipients_file="big.csv"), "line 20002")

    @harness.sqlite_only("the import lock file")
    def test_killed_import_leaves_nothing_and_the_next_succeeds(self):
        self.seed()
        path = self.big_campaign("big", 200000)
        p = self.spawn_import(path)
        con = sqlite3.connect(self.db, timeout=30)
        harness.wait_until(lambda: p.poll() is not None or con.execute(
            "SELECT count(*) FROM recipients r JOIN campaigns c ON c.id = r.campaign_id "
            "WHERE c.key = 'big'").fetchone()[0] > 20000, timeout=60, what="import midway")
        p.kill()
        p.communicate()
        self.assertEqual(p.returncode, -9, "the import finished before the kill")
        # Its rows are there, hidden: no status, no claim, no key.
        self.assertEqual(con.execute("SELECT state FROM campaigns WHERE key = 'big'").fetchall(),
                         [("importing",)])
        con.close()
        self.assertEqual([c["key"] for c in self.json("status")["campaigns"]], ["seed"])
        rc, out, err = self.herald("deliveries", "big")
        self.assertEqual(rc, 65, out + err)
        self.ok("run", "--once", "--now", "2026-11-30T00:00:00+08:00")
        self.assertEqual(self.sql("SELECT count(*) FROM deliveries d JOIN campaigns c ON "
                                  "c.id = d.campaign_id WHERE c.key = 'big' "
                                  "AND d.state <> 'pending'"), [(0,)])
        # The next import sweeps them and writes the campaign whole.
        s = self.ok("import", path)
        self.assertIn("new 200000, changed 0, removed 0", s)
        self.assertIn("400000 scheduled, 400000 written", s)
        self.assertEqual(self.sql("SELECT count(*) FROM campaigns WHERE state = 'importing'"),
                         [(0,)])
        self.assertEqual(self.sql("SELECT count(*) FROM recipients r JOIN campaigns c ON "
                                  "c.id = r.campaign_id WHERE c.key = 'big'"), [(200000,)])
        self.assertEqual(self.counts("big")["pending"], 400000)

    @harness.sqlite_only("SQLite's write lock")
    def test_dry_run_never_waits_for_the_write_lock(self):
        self.import_def(campaign())
        recips = campaign()["recipients"][1:] + [{"id": "oc-c", "vars": {"nickname": "小张"}}]
        path = self.write("c2.json", campaign(recipients=recips, steps=[STEP1, dict(STEP2, day=4)]))
        before = self.db_snapshot()
        for hold in ("BEGIN", "BEGIN IMMEDIATE"):
            con = sqlite3.connect(self.db, isolation_level=None)
            con.execute(hold)
            con.execute("SELECT count(*) FROM deliveries").fetchone()
            t0 = time.monotonic()
            dry = self.ok("import", path, "--dry-run", timeout=5)
            self.assertLess(time.monotonic() - t0, 5 * harness.SLOW, hold)
            con.execute("ROLLBACK")
            con.close()
        self.assertEqual(self.db_snapshot(), before)
        self.assertIn("new 1, changed 0, removed 1", dry)
        real = self.ok("import", path)
        self.assertEqual(dry.replace("dry run, nothing written: ", "")
                            .replace("would be written", "written"), real)

    def test_dry_run_summary_equals_the_import(self):
        cases = [
            campaign(),                                                       # new
            campaign(),                                                       # unchanged
            campaign(recipients=[{"id": "oc-a", "vars": {"nickname": "改"}},
                                 {"id": "oc-d", "vars": {"nickname": "新"}}]),  # changed, new, removed
            campaign(steps=[STEP1]),                                          # a step dropped
            campaign(steps=[STEP1, dict(STEP2, time="21:00")]),                # back, rescheduled
        ]
        for i, d in enumerate(cases):
            path = self.write("c%d.json" % i, d)
            dry = self.ok("import", path, "--dry-run")
            real = self.ok("import", path)
            self.assertEqual(dry.replace("dry run, nothing written: ", "")
                                .replace("would be written", "written"), real, "case %d" % i)

    # ---- memory stays flat -------------------------------------------------------------

    @unittest.skipIf(harness.SANITIZED, "peak RSS is meaningless under sanitizers")
    @harness.sqlite_only("memory against the SQLite inserter")
    def test_large_import_memory_is_flat(self):
        def peak_kb(rows):
            name = "big%d" % rows
            with open(os.path.join(self.dir, name + ".csv"), "w") as f:
                f.write("id,nickname\n" + "".join("u%07d,会员%d\n" % (i, i) for i in range(rows)))
            path = self.write(name + ".json", campaign(
                name, recipients=None, recipients_file=name + ".csv",
                steps=[{"day": 1, "time": "10:00", "message": {"type": "text",
                                                              "text": "{{nickname}} 您好"}}]))
            probe = ("import resource, subprocess, sys\n"
                     "p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)\n"
                     "sys.stderr.write(p.stderr.decode(errors='replace'))\n"
                     "sys.stdout.write(p.stdout.decode(errors='replace'))\n"
                     "print('rc', p.returncode, 'maxrss', "
                     "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
            t0 = time.monotonic()
            p = subprocess.run([sys.executable, "-c", probe, harness.HERALD, "--db",
                                os.path.join(self.dir, name + ".db"), "--config", self.config_path,
                                "import", path], capture_output=True, cwd=self.dir, timeout=1200)
            secs = time.monotonic() - t0
            out = p.stdout.decode()
            m = re.search(r"^rc (\d+) maxrss (\d+)$", out, re.M)
            self.assertIsNotNone(m, out + p.stderr.decode())
            self.assertEqual(m.group(1), "0", out + p.stderr.decode())
            self.assertEqual(summary(out)["deliveries"], rows)
            sys.stderr.write("\n  %d rows: %.1f s, peak RSS %.1f MB\n"
                             % (rows, secs, int(m.group(2)) / 1024))
            os.unlink(os.path.join(self.dir, name + ".csv"))
            return int(m.group(2))
        small = peak_kb(100000)
        large = peak_kb(1000000)
        self.assertLess(large, 64 * 1024, "peak RSS of a 1M-row import")
        self.assertLess(large, small + 10 * 1024, "memory grows with the file (100k: %d KB, "
                        "1M: %d KB)" % (small, large))


if __name__ == "__main__":
    harness.main()
