#!/usr/bin/env python3
"""End-to-end tests of the audience rules (SPEC 5.12): the opt-out list, per-channel frequency
caps, quiet hours and recipients in their own time zone. The real herald binary on real SQLite
files against the real mock; virtual time (`run --once --now`) where the rule is about hours.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import main, wait_until  # noqa: E402
from test_scheduler import FAST, SchedTest, by_key, text  # noqa: E402


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
        self.assertFalse(os.path.exists(self.db))
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
        self.assertFalse(os.path.exists(self.db))
        bad = self.write("bad.txt", "o1\n\no2\r\n o3\no4\n")
        rc, _, err = self.herald("suppress", "import", "feihe", bad)
        self.assertEqual(rc, 65, err)
        self.assertIn("bad.txt: line 4:", err)
        self.assertFalse(os.path.exists(self.db), "a failed import left a database")
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
        self.assertEqual(self.herald("suppress", "frob", "x")[0], 64)
        self.assertEqual(self.herald("suppress", "add", "x")[0], 64)


if __name__ == "__main__":
    main()
