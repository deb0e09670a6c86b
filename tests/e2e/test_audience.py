#!/usr/bin/env python3
"""End-to-end tests of the audience rules (SPEC 5.12): the opt-out list, per-channel frequency
caps, quiet hours and recipients in their own time zone. The real herald binary on real SQLite
files against the real mock; virtual time (`run --once --now`) where the rule is about hours.
"""
import datetime
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import main, wait_until  # noqa: E402
from test_scheduler import FAST, SchedTest, by_key, text  # noqa: E402


def ms_of(iso):
    return int(datetime.datetime.fromisoformat(iso).timestamp() * 1000)


class Suppression(SchedTest):

    def test_added_while_running_stops_a_delivery_due_seconds_later(self):
        """The opt-out is checked where the claim is made: a suppression another process
        commits while `herald run` waits stops a delivery due seconds later (here a retry,
        due 2-4 s after its first attempt), and the same retry of a recipient not listed
        goes out, so the one that did not was stopped by the list."""
        m = self.feihe_mock()
        self.config({"feihe": self.feihe_channel(m)},
                    {"max_attempts": 4, "backoff_base_ms": 4000, "backoff_max_ms": 4000})
        m.rules({"provider": "feihe", "status": 503, "times": 2})
        self.due_now("optout", ["oStop", "oGo"])
        run = self.spawn("run")
        wait_until(lambda: set(self.states("optout").values()) == {"retrying"}, timeout=10,
                   what="both first attempts to fail")
        out = self.ok("suppress", "add", "feihe", "oStop")
        self.assertIn("1 added", out)
        wait_until(lambda: self.states("optout")[("oGo", 1)] == "sent", timeout=10,
                   what="the retry of the recipient not listed")
        wait_until(lambda: self.states("optout")[("oStop", 1)] == "suppressed", timeout=10,
                   what="the listed one to be suppressed")
        per = by_key(m.requests("feihe"))
        self.assertEqual([r["verdict"] for r in per["oGo"]][-1], "accepted")
        self.assertEqual(len(per["oStop"]), 1, "a suppressed recipient got a request")
        d = {x["recipient"]: x for x in self.deliveries("optout")}
        self.assertIn("opt-out list of channel feihe", d["oStop"]["last_error"])
        st = self.status("optout")
        self.assertEqual((st["counts"]["suppressed"], st["counts"]["sent"]), (1, 1))
        self.assertEqual(st["state"], "completed")
        self.assertEqual(self.stop(run), 0)

    def test_every_channel_remove_and_retry(self):
        m = self.feihe_mock()
        self.config({"feihe": self.feihe_channel(m), "other": self.feihe_channel(m)}, FAST)
        # add creates the database: an opt-out may come before any campaign.
        self.assertFalse(self.db_exists())
        self.ok("suppress", "add", "*", "oAll")
        self.ok("suppress", "add", "other", "oElsewhere")
        self.campaign("every", [{"day": 1, "time": "10:00", "message": text("hi")}],
                      [{"id": "oAll"}, {"id": "oElsewhere"}, {"id": "oFine"}], "2026-03-02")
        self.ok("run", "--once", "--now", "2026-03-02T10:00:01+08:00")
        self.assertEqual(self.states("every"), {("oAll", 1): "suppressed",
                                                 ("oElsewhere", 1): "sent",
                                                 ("oFine", 1): "sent"})
        self.assertEqual(sorted(by_key(m.requests("feihe"))), ["oElsewhere", "oFine"])
        listed = self.json("suppress", "list")["suppressions"]
        self.assertEqual([(x["channel"], x["id"]) for x in listed],
                         [("*", "oAll"), ("other", "oElsewhere")])
        self.assertEqual(self.json("suppress", "list", "other")["suppressions"][0]["id"],
                         "oElsewhere")

        out = self.ok("suppress", "remove", "*", "oAll")
        self.assertIn("1 removed", out)
        self.assertIn("already suppressed stay suppressed", out)
        self.ok("run", "--once", "--now", "2026-03-02T10:00:02+08:00")
        self.assertEqual(self.states("every")[("oAll", 1)], "suppressed")
        out = self.ok("retry", "every", "--state", "suppressed")
        self.assertIn("1 suppressed deliveries back to pending", out)
        self.ok("run", "--once")  # retry puts it back due at the real now
        self.assertEqual(self.states("every")[("oAll", 1)], "sent")
        self.assertEqual(len(by_key(m.requests("feihe"))["oAll"]), 1)

    def test_import_and_errors(self):
        self.config({}, None)
        self.assertEqual(self.herald("suppress", "list")[0], 66)
        self.assertEqual(self.herald("suppress", "remove", "x", "a")[0], 66)
        self.assertFalse(self.db_exists())
        bad = self.write("bad.txt", "o1\n\no2\r\n o3\no4\n")
        rc, _, err = self.herald("suppress", "import", "feihe", bad)
        self.assertEqual(rc, 65, err)
        self.assertIn("bad.txt: line 4:", err)
        if harness.POSTGRES:  # the server's database is the operator's: its rows are what counts
            self.assertEqual(self.sql("SELECT count(*) FROM suppressions"), [(0,)])
        else:
            self.assertFalse(self.db_exists(), "a failed import left a database")
        csv = self.write("ids.csv", "\ufeffname,id\nA,o1\nB,\"o,2\"\nC,o3\n")
        self.assertIn("3 ids read, 3 added", self.ok("suppress", "import", "feihe", csv))
        self.assertIn("3 ids read, 0 added, 3 already listed",
                      self.ok("suppress", "import", "feihe", csv))
        badcsv = self.write("bad.csv", "id,x\no5,1\n,2\no6\n")
        before = self.db_snapshot()
        rc, _, err = self.herald("suppress", "import", "feihe", badcsv)
        self.assertEqual(rc, 65, err)
        self.assertIn("line 3:", err)
        self.assertIn("line 4:", err)
        self.assertEqual(self.db_snapshot(), before, "a bad import wrote something")
        lines = self.write("ids.txt", "".join("o%06d\n" % i for i in range(20000)))
        self.assertIn("20000 added", self.ok("suppress", "import", "*", lines))
        self.assertEqual(len(self.json("suppress", "list", "*")["suppressions"]), 20000)
        crlf = self.write("crlf.txt", "\ufeffo7\r\no8\n\no9")
        self.assertIn("3 ids read, 3 added", self.ok("suppress", "import", "feihe", crlf))
        ids = [r["id"] for r in self.json("suppress", "list", "feihe")["suppressions"]]
        self.assertTrue({"o7", "o8", "o9"} <= set(ids), ids)
        self.assertFalse([i for i in ids if i != i.strip()], "an id kept its line ending")
        self.assertEqual(self.herald("suppress", "frob", "x")[0], 64)
        self.assertEqual(self.herald("suppress", "add", "x")[0], 64)


class FrequencyCap(SchedTest):

    def test_defers_to_exactly_the_window_after_the_first_send(self):
        m = self.feihe_mock()
        self.config({"feihe": self.feihe_channel(m, frequency_cap={"max": 1, "per": "24h"})},
                    FAST)
        self.campaign("first", [{"day": 1, "time": "10:00", "message": text("one")}],
                      [{"id": "oCap"}, {"id": "oFree"}], "2026-03-02")
        self.campaign("second", [{"day": 1, "time": "12:00", "message": text("two")}],
                      [{"id": "oCap"}], "2026-03-02")
        self.ok("run", "--once", "--now", "2026-03-02T10:00:01.250+08:00")
        first = ms_of(self.attempts("first", "--recipient", "oCap")[0]["started_at"])
        # The virtual clock runs on from --now, so the send started at or just after it.
        self.assertLess(first - ms_of("2026-03-02T10:00:01.250+08:00"), 1000)
        self.ok("run", "--once", "--now", "2026-03-02T12:00:01+08:00")
        d = self.deliveries("second")[0]
        self.assertEqual(d["state"], "deferred")
        self.assertIn("frequency cap of channel feihe", d["last_error"])
        self.assertEqual(ms_of(self.status("second")["next_due_at"]), first + 86400000)
        self.assertEqual(len(m.requests("feihe")), 2)
        # A second early (the virtual clock runs on from --now), nothing; at the moment the
        # first send leaves the window, it goes.
        self.ok("run", "--once", "--now", str(first + 86400000 - 1000))
        self.assertEqual(len(m.requests("feihe")), 2)
        self.ok("run", "--once", "--now", str(first + 86400000))
        self.assertEqual(self.deliveries("second")[0]["state"], "sent")
        got = by_key(m.requests("feihe"))
        self.assertEqual(len(got["oCap"]), 2)
        self.assertLess(ms_of(self.attempts("second")[-1]["started_at"]) - first - 86400000, 1000)

    def test_a_send_the_provider_refused_does_not_count(self):
        """The claim counts a send against the cap at once; a refusal takes it back, so the
        recipient's next delivery goes at once, while an accepted send keeps counting."""
        m = self.feihe_mock()
        self.config({"feihe": self.feihe_channel(m, frequency_cap={"max": 1, "per": "24h"})},
                    FAST)
        m.rules({"provider": "feihe", "match": "oRefused", "code": 40003,
                 "message": "invalid openid", "times": 1})
        self.campaign("first", [{"day": 1, "time": "10:00", "message": text("one")}],
                      [{"id": "oRefused"}, {"id": "oTaken"}], "2026-03-02")
        self.campaign("second", [{"day": 1, "time": "11:00", "message": text("two")}],
                      [{"id": "oRefused"}, {"id": "oTaken"}], "2026-03-02")
        self.ok("run", "--once", "--now", "2026-03-02T10:00:01+08:00")
        self.assertEqual(self.states("first"), {("oRefused", 1): "failed", ("oTaken", 1): "sent"})
        self.ok("run", "--once", "--now", "2026-03-02T11:00:01+08:00")
        self.assertEqual(self.states("second"),
                         {("oRefused", 1): "sent", ("oTaken", 1): "deferred"})

    def test_two_runners_never_exceed_the_cap(self):
        m = self.feihe_mock()
        self.config({"feihe": self.feihe_channel(m, max_in_flight=4,
                                                 frequency_cap={"max": 2, "per": "24h"})}, FAST)
        m.rules({"provider": "feihe", "delay_ms": 30, "times": 0})
        self.ok("migrate")
        runs = [self.spawn("run", "--verbose") for _ in range(2)]
        for r in runs:
            wait_until(lambda: "runner" in self.stderr_of(r), what="a scheduler to start")
        ids = ["oCap%02d" % i for i in range(30)]
        keys = ["capped%d" % i for i in range(4)]
        for k in keys:
            self.due_now(k, ids)

        def settled():
            cs = [self.counts(k) for k in keys]
            if any(c["pending"] + c["sending"] + c["retrying"] for c in cs):
                return None
            return cs
        cs = wait_until(settled, timeout=30, interval=0.1, what="the capped campaigns")
        self.assertEqual(sum(c["sent"] for c in cs), 60, cs)
        self.assertEqual(sum(c["deferred"] for c in cs), 60, cs)
        per = by_key(m.requests("feihe"))
        self.assertEqual(sorted(per), ids)
        for rid, rs in per.items():
            self.assertEqual([r["verdict"] for r in rs], ["accepted"] * 2, rid)
        for r in runs:
            self.assertEqual(self.stop(r), 0)
        for r in runs:  # both took part
            self.assertIn("claimed", self.stderr_of(r))


class QuietHours(SchedTest):

    def test_across_midnight_on_a_dst_night_in_new_york(self):
        """22:00-08:00 in America/New_York on the night clocks spring forward: a delivery due
        at 23:30 EST goes at 08:00 EDT, 12:00 UTC (a fixed offset would say 13:00). The
        campaign's window overrides the channel's 09:00-10:00, which another campaign on the
        channel keeps."""
        m = self.feihe_mock()
        self.config({"feihe": self.feihe_channel(
            m, quiet_hours={"from": "09:00", "to": "10:00"})}, FAST)
        self.campaign("night", [{"day": 1, "time": "23:30", "message": text("late")}],
                      [{"id": "oNight"}], "2026-03-07", timezone="America/New_York",
                      quiet_hours={"from": "22:00", "to": "08:00"})
        self.campaign("morning", [{"day": 2, "time": "09:30", "message": text("early")}],
                      [{"id": "oMorning"}], "2026-03-07", timezone="America/New_York")
        self.assertEqual(self.json("show", "night")["quiet_hours"], "22:00-08:00")
        self.assertIsNone(self.json("show", "morning")["quiet_hours"])
        self.ok("run", "--once", "--now", "2026-03-07T23:30:01-05:00")
        d = self.deliveries("night")[0]
        self.assertEqual(d["state"], "deferred")
        self.assertIn("quiet hours 22:00-08:00 America/New_York", d["last_error"])
        self.assertEqual(self.status("night")["next_due_at"], "2026-03-08T08:00:00-04:00")
        self.ok("run", "--once", "--now", "2026-03-08T07:59:59-04:00")
        self.assertEqual(m.requests("feihe"), [])
        self.ok("run", "--once", "--now", "2026-03-08T08:00:00-04:00")
        self.assertEqual(self.deliveries("night")[0]["state"], "sent")
        self.assertEqual(len(m.requests("feihe")), 1)
        # The channel's own window holds the other campaign's 09:30 until 10:00.
        self.ok("run", "--once", "--now", "2026-03-08T09:30:01-04:00")
        self.assertEqual(self.status("morning")["next_due_at"], "2026-03-08T10:00:00-04:00")
        self.ok("run", "--once", "--now", "2026-03-08T10:00:00-04:00")
        self.assertEqual(self.deliveries("morning")[0]["state"], "sent")
        self.assertEqual(len(m.requests("feihe")), 2)

    def test_provider_scheduled_steps_inside_the_window_are_invalid(self):
        self.config({"shop": {"provider": "sainiu", "base_url": "http://127.0.0.1:9",
                              "quiet_hours": {"from": "22:00", "to": "08:00"}}})
        path = self.write("sn.json", {
            "key": "sn", "channel": "shop", "start_date": "2026-03-02",
            "steps": [{"day": 1, "time": "10:00", "message": text("ok")},
                      {"day": 2, "time": "23:00", "message": text("too late")}],
            "recipients": [{"id": "seller"}]})
        rc, _, err = self.herald("import", path)
        self.assertEqual(rc, 65, err)
        self.assertIn("$.steps[1].time: 23:00 is inside the quiet hours", err)
        self.assertNotIn("steps[0]", err)
        bad = self.write("badq.json", {
            "key": "bq", "channel": "shop", "start_date": "2026-03-02",
            "quiet_hours": {"from": "25:00", "to": "08:00"},
            "steps": [{"day": 1, "time": "10:00", "message": text("ok")}],
            "recipients": [{"id": "seller"}]})
        rc, _, err = self.herald("import", bad)
        self.assertEqual(rc, 65, err)
        self.assertIn("$.quiet_hours", err)


class RecipientZones(SchedTest):

    def test_berlin_recipient_in_a_shanghai_campaign(self):
        m = self.feihe_mock()
        self.config({"feihe": self.feihe_channel(m)}, FAST)
        self.campaign("zones", [{"day": 1, "time": "10:00", "message": text("早上好")}],
                      [{"id": "oShanghai"}, {"id": "oBerlin", "timezone": "Europe/Berlin"}],
                      "2026-03-02")
        due = {d["recipient"]: d["due_at"] for d in self.deliveries("zones")}
        self.assertEqual(due, {"oShanghai": "2026-03-02T10:00:00+08:00",
                               "oBerlin": "2026-03-02T17:00:00+08:00"})  # 10:00 CET
        self.ok("run", "--once", "--now", "2026-03-02T10:00:01+08:00")
        self.assertEqual(sorted(by_key(m.requests("feihe"))), ["oShanghai"])
        self.ok("run", "--once", "--now", "2026-03-02T17:00:01+08:00")
        self.assertEqual(sorted(by_key(m.requests("feihe"))), ["oBerlin", "oShanghai"])

    def test_quiet_hours_follow_the_recipient(self):
        m = self.feihe_mock()
        self.config({"feihe": self.feihe_channel(m)}, FAST)
        # 16:00 in Shanghai is 09:00 in Berlin: quiet there until 10:00 Berlin time.
        self.campaign("zq", [{"day": 1, "time": "16:00", "message": text("hi")}],
                      [{"id": "oSh"}], "2026-03-02", quiet_hours={"from": "22:00", "to": "10:00"})
        path = self.write("zq.csv", "id,timezone\noSh,\noBe,Europe/Berlin\n")
        doc = {"key": "zq2", "channel": "feihe", "start_date": "2026-03-02",
               "quiet_hours": {"from": "22:00", "to": "10:00"},
               "steps": [{"day": 1, "time": "16:00", "message": text("hi")}],
               "recipients": [{"id": "oFixed", "vars": {}}], "recipients_file": path}
        doc_path = self.write("zq2.json", doc)
        self.ok("import", doc_path)
        # Move Berlin's 16:00 to Shanghai's: hand the same instant to both.
        self.ok("run", "--once", "--now", "2026-03-02T16:00:01+08:00")
        states = self.states("zq2")
        self.assertEqual(states[("oSh", 1)], "sent")
        self.assertEqual(states[("oFixed", 1)], "sent")
        self.assertEqual(states[("oBe", 1)], "pending")  # due 16:00 Berlin, 23:00 Shanghai
        self.ok("run", "--once", "--now", "2026-03-02T23:00:01+08:00")
        self.assertEqual(self.states("zq2")[("oBe", 1)], "sent")

    def test_zone_is_checked_at_import(self):
        self.config({"feihe": {"provider": "feihe", "base_url": "http://127.0.0.1:9"},
                     "groups": {"provider": "tanmarket", "base_url": "http://127.0.0.1:9",
                                "app_id": "a", "app_key": "k"}})
        path = self.write("bad.json", {
            "key": "bz", "channel": "feihe", "start_date": "2026-03-02",
            "steps": [{"day": 1, "time": "10:00", "message": text("x")}],
            "recipients": [{"id": "o1"}, {"id": "o2", "timezone": "Mars/Olympus"}],
            "recipients_file": self.write("bz.csv", "id,timezone\no3,Europe/Nowhere\n")})
        rc, _, err = self.herald("import", path)
        self.assertEqual(rc, 65, err)
        self.assertIn("$.recipients[1]", err)
        self.assertIn("Mars/Olympus", err)
        self.assertIn("bz.csv: line 2", err)
        tm = self.write("tm.json", {
            "key": "tz-tm", "channel": "groups", "start_date": "2026-03-02",
            "steps": [{"day": 1, "time": "10:00",
                       "message": {"contents": [{"type": 1, "content": "hi"}]}}],
            "recipients": [{"chat_id": "g1", "chat_owner": "u1", "timezone": "Asia/Tokyo"}]})
        rc, _, err = self.herald("import", tm)
        self.assertEqual(rc, 65, err)
        self.assertIn("campaign's time zone", err)


if __name__ == "__main__":
    main()
