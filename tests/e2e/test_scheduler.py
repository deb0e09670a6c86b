#!/usr/bin/env python3
"""End-to-end tests of `herald run`: the real scheduler against the real mock provider.

What is checked is what the provider saw (the mock's records: bodies, counts, arrival times)
and what herald recorded (status, deliveries, attempts). Feihe carries most tests (one openId
per request, the simplest wire format). test_crash.py reuses SchedTest for kills and signals.

    HERALD_BIN=build/herald HERALD_MOCK=build/herald-mock HERALD_SRC=. \
        python3 tests/e2e/test_scheduler.py
"""
import datetime
import json
import os
import signal
import subprocess
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import HeraldTest, SLOW, wait_until  # noqa: E402

SHANGHAI = datetime.timezone(datetime.timedelta(hours=8))  # no DST since 1991
FEIHE_SYSTEM = "NEW_MEMBER"
TIM_SDKAPPID = 1400000000
TIM_IDENTIFIER = "admin"
TIM_SECRET = "e2e-tim-secret-0b9f3c51d7a24e86a1c4f2d9e7b3a605"
# A fast scheduler for tests: retries within a fraction of a second.
FAST = {"max_attempts": 4, "backoff_base_ms": 50, "backoff_max_ms": 200}


def now_ms():
    return int(time.time() * 1000)


def local(ms):
    """(YYYY-MM-DD, HH:mm) of an instant in Asia/Shanghai."""
    t = datetime.datetime.fromtimestamp(ms / 1000, SHANGHAI)
    return t.strftime("%Y-%m-%d"), t.strftime("%H:%M")


def text(t):
    return {"type": "text", "text": t}


def body(record):
    return json.loads(record["body"])


def by_key(records):
    """Records grouped by the mock's key (Feihe: openId; Tencent: ToAccount)."""
    out = {}
    for r in records:
        out.setdefault(r["key"], []).append(r)
    return out


class SchedTest(HeraldTest):
    """HeraldTest plus channels on the mock, campaign imports, and a check that no herald
    output of the test (stdout and stderr, every process) holds a secret: the Tencent secret
    key or any UserSig the mock was sent."""

    def setUp(self):
        super().setUp()
        self.outputs = []         # (what, text) of every herald process of the test

    def herald(self, *args, **kw):
        rc, out, err = super().herald(*args, **kw)
        self.outputs.append(("herald " + " ".join(args), out + err))
        return rc, out, err

    def stop(self, p, sig=signal.SIGTERM, timeout=10):
        """Signals a spawned herald and waits for it; returns its exit status."""
        p.send_signal(sig)
        return p.wait(timeout=timeout * SLOW)

    def tearDown(self):
        try:
            for p in self.procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            for p in self.procs:
                self.outputs.append(("herald (spawned)", self.stdout_of(p) + self.stderr_of(p)))
            # The mock masks UserSigs in its records, so the generated ones cannot be looked
            # up here; the key they derive from can.
            secrets = [TIM_SECRET]
            for what, out in self.outputs:
                self.assertNotRegex(out, r"Sanitizer|runtime error:", what)
                for s in secrets:  # whole or cut short; the failure must not print it either
                    self.assertFalse(s[:16] in out, "%s printed a secret" % what)
        finally:
            super().tearDown()

    # ---- set-up helpers ----

    def feihe_mock(self, *extra):
        return self.mock("--feihe-system", FEIHE_SYSTEM, *extra)

    def tim_mock(self, *extra):
        return self.mock("--tim-sdkappid", str(TIM_SDKAPPID), "--tim-identifier", TIM_IDENTIFIER,
                         *extra, env={"MOCK_TIM_SECRET": TIM_SECRET})

    @staticmethod
    def feihe_channel(m, **extra):
        ch = {"provider": "feihe", "base_url": m.url, "system": FEIHE_SYSTEM, "timeout": "1s"}
        ch.update(extra)
        return ch

    @staticmethod
    def tim_channel(m, **extra):
        ch = {"provider": "tencent_desk", "base_url": m.url, "sdkappid": TIM_SDKAPPID,
              "identifier": TIM_IDENTIFIER, "secret_key": TIM_SECRET,
              "from_account": "@customer_service", "timeout": "2s"}
        ch.update(extra)
        return ch

    def campaign(self, key, steps, recipients, start_date, channel="feihe", **extra):
        """Imports a campaign definition; returns it."""
        doc = {"key": key, "name": key, "channel": channel, "timezone": "Asia/Shanghai",
               "start_date": start_date, "anchor": "start_date", "steps": steps,
               "recipients": recipients}
        doc.update(extra)
        path = self.write(key + ".json", doc)
        self.ok("import", path)
        return doc

    def due_now(self, key, ids, channel="feihe", msg="{{id}} 您好", **extra):
        """A one-step campaign for ids whose step fell due at the start of this minute."""
        date, hhmm = local(now_ms())
        return self.campaign(key, [{"day": 1, "time": hhmm, "message": text(msg)}],
                             [{"id": i} for i in ids], date, channel=channel, **extra)

    def states(self, key):
        """{(recipient, step): state} of a campaign."""
        return {(d["recipient"], d["step"]): d["state"] for d in self.deliveries(key)}

    def settled(self, key, total, timeout=30):
        """Waits until no delivery of the campaign is waiting or in flight; returns counts."""
        def done():
            c = self.counts(key)
            busy = c["pending"] + c["sending"] + c["retrying"] + c["deferred"]
            return c if busy == 0 and sum(c.values()) == total else None
        return wait_until(done, timeout=timeout, interval=0.05, what="campaign %s to settle" % key)

    def attempts_of(self, key, rid):
        return self.attempts(key, "--recipient", rid)

    def unchanged(self, probe, seconds):
        """Asserts probe() keeps its value for `seconds` (an absence can only be observed over
        a window); returns the value."""
        first = probe()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.assertEqual(probe(), first)
            time.sleep(0.05)
        return first


class RunOnce(SchedTest):
    """`herald run --once [--now]`: one pass over what is due."""

    def test_walks_through_the_days(self):
        m = self.feihe_mock()
        self.config({"feihe": self.feihe_channel(m)}, FAST)
        self.campaign("walk", [
            {"day": 1, "time": "10:00", "message": text("{{nickname|朋友}}，欢迎加入飞鹤会员！")},
            {"day": 2, "time": "10:00", "message": text("{{nickname|朋友}}，{{city|您的城市}}门店有礼")},
            {"day": 5, "time": "18:30", "message": text("会员 {{id}}：您的优惠券明天到期")},
        ], [
            {"id": "oWalk1", "vars": {"nickname": "小王", "city": "哈尔滨"}},
            {"id": "oWalk2", "vars": {"nickname": "陈\"小\"明"}},
            {"id": "oWalk3"},
        ], "2026-03-02")
        want = {
            1: {"oWalk1": "小王，欢迎加入飞鹤会员！", "oWalk2": "陈\"小\"明，欢迎加入飞鹤会员！",
                "oWalk3": "朋友，欢迎加入飞鹤会员！"},
            2: {"oWalk1": "小王，哈尔滨门店有礼", "oWalk2": "陈\"小\"明，您的城市门店有礼",
                "oWalk3": "朋友，您的城市门店有礼"},
            3: {r: "会员 %s：您的优惠券明天到期" % r for r in ("oWalk1", "oWalk2", "oWalk3")},
        }

        # A second before the first step: nothing is due yet.
        self.ok("run", "--once", "--now", "2026-03-02T09:59:59+08:00")
        self.assertEqual(m.requests(), [])
        self.assertEqual(self.counts("walk")["pending"], 9)

        passes = [("2026-03-02T10:00:01+08:00", 1), ("2026-03-03T10:00:01+08:00", 2),
                  ("2026-03-06T18:30:01+08:00", 3)]
        seen = 0
        for now, step in passes:
            self.ok("run", "--once", "--now", now)
            reqs = m.requests("feihe")[seen:]
            seen += len(reqs)
            self.assertEqual(len(reqs), 3, "step %d: one request per recipient" % step)
            for r in reqs:
                self.assertEqual(r["verdict"], "accepted", r)
                self.assertEqual(r["headers"]["system"], FEIHE_SYSTEM)
            self.assertEqual(sorted((body(r)["openId"], body(r)["msg"]) for r in reqs),
                             sorted(want[step].items()))
            states = self.states("walk")
            for (rid, s), state in states.items():
                self.assertEqual(state, "sent" if s <= step else "pending", (rid, s, now))
            if step < 3:
                self.assertEqual(self.status("walk")["state"], "active")

        st = self.status("walk")
        self.assertEqual(st["state"], "completed")
        self.assertEqual(st["counts"]["sent"], 9)
        self.assertEqual(sum(st["counts"].values()), 9)
        self.assertIsNone(st["next_due_at"])
        for d in self.deliveries("walk"):
            self.assertEqual(d["attempts"], 1, d)
        self.assertEqual(
            sorted({d["due_at"] for d in self.deliveries("walk")}),
            ["2026-03-02T10:00:00+08:00", "2026-03-03T10:00:00+08:00", "2026-03-06T18:30:00+08:00"])
        self.assertEqual([a["outcome"] for a in self.attempts("walk")], ["sent"] * 9)

        # Everything is sent: later passes, virtual or real time, send nothing more.
        self.ok("run", "--once", "--now", "2026-03-06T18:30:02+08:00")
        self.ok("run", "--once", "--now", "2026-03-09T12:00:00+08:00")
        self.ok("run", "--once")
        self.assertEqual(len(m.requests()), 9)
        self.assertEqual(len(self.attempts("walk")), 9)

    def test_expired_deliveries_are_never_sent(self):
        m = self.feihe_mock()
        self.config({"feihe": self.feihe_channel(m)}, FAST)
        self.campaign("late", [
            {"day": 1, "time": "10:00", "message": text("day one {{id}}")},
            {"day": 3, "time": "09:00", "message": text("day three {{id}}")},
        ], [{"id": "oLate1"}, {"id": "oLate2"}], "2026-03-02", expire_after="24h")
        # Two days after step 1 was due (past expire_after), an hour after step 2 (within it).
        rc, out, err = self.herald("run", "--once", "--now", "2026-03-04T10:00:00+08:00")
        self.assertEqual(rc, 0, err)
        # The claim expired them itself; the run's summary counts them all the same.
        self.assertRegex(err, r"stopped: 2 sent, 0 failed, 0 unknown, 0 deferred, 2 expired")
        states = self.states("late")
        self.assertEqual(states, {("oLate1", 1): "expired", ("oLate2", 1): "expired",
                                  ("oLate1", 2): "sent", ("oLate2", 2): "sent"})
        self.assertEqual(sorted(body(r)["msg"] for r in m.requests()),
                         ["day three oLate1", "day three oLate2"])
        for d in self.deliveries("late", "--state", "expired"):
            self.assertEqual(d["attempts"], 0)
            self.assertIn("expire", d["last_error"])
        # And in real time: due two days ago, it expires too.
        date, hhmm = local(now_ms() - 2 * 86400 * 1000)
        self.campaign("stale", [{"day": 1, "time": hhmm, "message": text("x")}],
                      [{"id": "oStale"}], date, expire_after="24h")
        self.ok("run", "--once")
        self.assertEqual(self.states("stale"), {("oStale", 1): "expired"})
        self.assertEqual(len(m.requests()), 2)
        self.assertEqual(self.status("stale")["state"], "completed")

    def test_a_retried_delivery_of_a_removed_step_is_never_sent(self):
        m = self.feihe_mock()
        self.config({"feihe": self.feihe_channel(m)}, FAST)
        date, hhmm = local(now_ms())
        one = {"day": 1, "time": hhmm, "message": text("one {{id}}")}
        two = {"day": 1, "time": hhmm, "message": text("two {{id}}")}
        self.campaign("gone", [one, two], [{"id": "oGone"}], date)
        self.sql("UPDATE deliveries SET state = 'failed' WHERE step = 2")
        # The step is removed while its delivery is settled; then the operator retries, and
        # the delivery waits again, with no step to send.
        self.campaign("gone", [one], [{"id": "oGone"}], date)
        self.ok("retry", "gone")
        self.assertEqual(self.states("gone")[("oGone", 2)], "pending")
        self.ok("run", "--once")
        self.assertEqual([body(r)["msg"] for r in m.requests()], ["one oGone"])
        self.assertEqual(self.states("gone"), {("oGone", 1): "sent", ("oGone", 2): "pending"})

    def test_permanent_failure_fails_at_once(self):
        m = self.feihe_mock()
        self.config({"feihe": self.feihe_channel(m)}, FAST)
        m.rules({"provider": "feihe", "match": "oBadOpenId", "code": 40003,
                 "message": "invalid openid rid: 6566a1b2-0c1d", "times": 0})
        self.due_now("perm", ["oBadOpenId", "oGood"])
        self.ok("run", "--once")
        self.ok("run", "--once")  # a failed delivery is not picked up again
        per = by_key(m.requests("feihe"))
        self.assertEqual(len(per["oBadOpenId"]), 1)
        self.assertEqual(len(per["oGood"]), 1)
        self.assertEqual(self.states("perm"), {("oBadOpenId", 1): "failed", ("oGood", 1): "sent"})
        [a] = self.attempts_of("perm", "oBadOpenId")
        self.assertEqual((a["http_status"], a["provider_code"], a["provider_message"], a["outcome"]),
                         (200, "40003", "invalid openid rid: 6566a1b2-0c1d", "failed"))
        [d] = self.deliveries("perm", "--state", "failed")
        self.assertEqual(d["attempts"], 1)
        self.assertIn("40003", d["last_error"])
        self.assertIn("invalid openid rid: 6566a1b2-0c1d", d["last_error"])
        st = self.status("perm")
        self.assertIn("40003", st["last_error"])
        self.assertIn("invalid openid rid: 6566a1b2-0c1d", st["last_error"])
        self.assertEqual(st["state"], "completed")

    def test_json_logs(self):
        m = self.feihe_mock()
        t = self.tim_mock()
        self.config({"feihe": self.feihe_channel(m), "desk": self.tim_channel(t)}, FAST)
        m.rules({"provider": "feihe", "match": "oLogBad", "code": 48001, "message": "api unauthorized"})
        t.rules({"provider": "tencent_desk", "match": "timBad", "code": 90001, "message": "json error"})
        self.due_now("logs", ["oLogGood", "oLogBad"])
        self.due_now("timlogs", ["timGood", "timBad"], channel="desk")
        rc, out, err = self.herald("run", "--once", "--verbose", "--log-format", "json")
        self.assertEqual(rc, 0, err)
        lines = err.splitlines()
        self.assertGreater(len(lines), 2)
        levels = set()
        for line in lines:
            rec = json.loads(line)
            self.assertTrue({"ts", "level", "msg"} <= set(rec), line)
            datetime.datetime.strptime(rec["ts"], "%Y-%m-%dT%H:%M:%S.%fZ")
            self.assertIn(rec["level"], ("debug", "info", "warn", "error"))
            self.assertIsInstance(rec["msg"], str)
            levels.add(rec["level"])
        self.assertIn("warn", levels)  # the two failures
        self.assertEqual(self.states("timlogs"), {("timGood", 1): "sent", ("timBad", 1): "failed"})
        # The UserSig went on the wire (the mock records it masked).
        [good] = [r for r in t.requests() if r["key"] == "timGood"]
        self.assertEqual(urllib.parse.parse_qs(good["query"])["usersig"], ["***"])
        # Text logs too.
        self.due_now("logs2", ["oLogText"])
        rc, out, err = self.herald("run", "--once", "--log-format", "text")
        self.assertEqual(rc, 0, err)
        self.assertRegex(err, r"(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z herald info: ")
        self.assertFalse(TIM_SECRET in json.dumps(self.db_snapshot(), ensure_ascii=False))

    @harness.sqlite_only("the schema read from the file")
    def test_concurrent_first_use(self):
        # Several processes starting at once on a database that does not exist yet all get
        # a created and migrated database.
        m = self.feihe_mock()
        self.config({"feihe": self.feihe_channel(m)}, FAST)
        self.db = os.path.join(self.dir, "alone.db")
        want_version = int(self.ok("migrate").split()[-1])
        want_version_, want_schema, _ = self.schema_of(self.db)
        self.assertEqual(want_version_, want_version)
        self.assertIn("deliveries", [name for _, name, _ in want_schema])
        for round_ in range(3):
            self.db = os.path.join(self.dir, "first-use-%d.db" % round_)
            procs = [subprocess.Popen([harness.HERALD, "--db", self.db, "--config", self.config_path]
                                      + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      cwd=self.dir)
                     for args in (["run", "--once"], ["run", "--once"], ["status"], ["migrate"])]
            done = [(p, p.communicate(timeout=30 * SLOW)) for p in procs]
            for p, (out, err) in done:
                self.outputs.append(("herald", (out + err).decode(errors="replace")))
            for p, (out, err) in done:
                if p.args[5:] == ["status"] and p.returncode == 66:
                    # It looked before anyone created the file; it never creates one itself.
                    # (or found the file another just created, still empty)
                    self.assertRegex(err.decode(), "no such database|an empty file")
                    continue
                self.assertEqual(p.returncode, 0, "%s: %s" % (p.args[5:], err.decode()))
            # Migrated all the way, read before anything else touches the file: the same
            # version and schema as a database one `herald migrate` made alone, and sound.
            version, schema, integrity = self.schema_of(self.db)
            self.assertEqual((version, schema), (want_version, want_schema), "round %d" % round_)
            self.assertEqual(integrity, "ok")
            # And usable: an import, a status, a run that sends it.
            self.due_now("first-%d" % round_, ["oFirst%d" % round_])
            self.assertEqual(self.status("first-%d" % round_)["state"], "active")
            self.ok("run", "--once")
            self.assertEqual(self.counts("first-%d" % round_)["sent"], 1)

    @staticmethod
    def schema_of(path):
        """(user_version, every schema statement, integrity_check) of a database file."""
        import sqlite3
        con = sqlite3.connect(path)
        try:
            version = con.execute("PRAGMA user_version").fetchone()[0]
            schema = sorted((r[0], r[1], r[2] or "") for r in con.execute(
                "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"))
            integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            con.close()
        return version, schema, integrity


class RunForever(SchedTest):
    """A long-running `herald run`."""

    def test_on_time_and_notices_imports(self):
        m = self.feihe_mock()
        self.config({"feihe": self.feihe_channel(m)}, FAST)
        run = self.spawn("run")
        wait_until(lambda: "runner" in self.stderr_of(run), what="the scheduler to start")

        # Due at the next minute boundary at least 3 s ahead (day 1 = that minute's date).
        due = (now_ms() + int(3000 * SLOW) + 59999) // 60000 * 60000
        date, hhmm = local(due)
        self.campaign("ontime", [{"day": 1, "time": hhmm, "message": text("准时 {{id}}")}],
                      [{"id": "oOnTime1"}, {"id": "oOnTime2"}], date)

        # Another process imports a campaign due now: it goes within a second or so.
        imported = now_ms()
        self.due_now("prompt", ["oPrompt"])
        imported = (imported + now_ms()) // 2
        got = wait_until(lambda: by_key(m.requests()).get("oPrompt"), timeout=5,
                         what="the second import's request")
        lag = got[0]["received_at_ms"] - imported
        self.assertLess(lag, 1500 * SLOW, "a new import was noticed %d ms after it" % lag)

        # Sleeping until the due time, not polling: little CPU while it waits.
        def cpu():
            with open("/proc/%d/stat" % run.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        cpu0, wall0 = cpu(), time.monotonic()
        self.assertEqual(by_key(m.requests()).get("oOnTime1"), None)

        def on_time_requests():
            reqs = [r for r in m.requests() if r["key"].startswith("oOnTime")]
            return reqs if len(reqs) == 2 else None
        reqs = wait_until(on_time_requests,
                          timeout=(due - now_ms()) / 1000 + 10, interval=0.05,
                          what="the on-time campaign's requests")
        cpu1, wall1 = cpu(), time.monotonic()
        self.assertEqual(len(reqs), 2)
        for r in reqs:
            late = r["received_at_ms"] - due
            self.assertGreaterEqual(late, 0, "sent %d ms before it was due" % -late)
            self.assertLess(late, 100 * SLOW, "sent %d ms after it was due" % late)
        if wall1 - wall0 > 1:
            self.assertLess((cpu1 - cpu0) / (wall1 - wall0), 0.2 * SLOW, "busy while waiting")
        self.settled("ontime", 2)
        self.assertEqual(self.counts("ontime")["sent"], 2)
        self.assertEqual(self.stop(run), 0)

    def test_safe_failures_are_retried_ambiguous_ones_are_not(self):
        """SPEC 5.10: what certainly did nothing is retried with backoff; what may have been
        accepted (500, garbage, a dropped connection, a timeout after sending) is not resent
        to a provider that cannot de-duplicate: it ends unknown after exactly one request.
        (--close: a request dropped on a reused connection would be sent again by libcurl
        itself; test_faults covers that case.)"""
        m = self.feihe_mock("--close")
        self.config({"feihe": self.feihe_channel(m)}, FAST)
        m.rules([
            {"provider": "feihe", "match": "o429", "status": 429, "times": 2},
            {"provider": "feihe", "match": "o500", "status": 500, "times": 0},
            {"provider": "feihe", "match": "oGarbage", "body": "<html>bad gateway</html>",
             "status": 200, "times": 0},
            {"provider": "feihe", "match": "oDrop", "drop": True, "times": 0},
            {"provider": "feihe", "match": "oSlow", "delay_ms": 2500, "times": 0},
            {"provider": "feihe", "match": "oBusy", "code": -1, "message": "system busy", "times": 1},
            {"provider": "feihe", "match": "oDown", "status": 503, "times": 0},
        ])
        ids = ["o429", "o500", "oGarbage", "oDrop", "oSlow", "oBusy", "oDown"]
        self.due_now("flaky", ids)
        run = self.spawn("run")
        counts = self.settled("flaky", len(ids))
        self.assertEqual((counts["sent"], counts["failed"], counts["unknown"]), (2, 1, 4), counts)
        per = by_key(m.requests("feihe"))
        deliveries = {d["recipient"]: d for d in self.deliveries("flaky")}

        a = self.attempts_of("flaky", "o429")
        self.assertEqual([x["outcome"] for x in a], ["retrying", "retrying", "sent"])
        self.assertEqual([x["http_status"] for x in a], [429, 429, 200])
        self.assertEqual(deliveries["o429"]["attempts"], 3)
        gaps = [b["received_at_ms"] - a_["received_at_ms"] for a_, b in zip(per["o429"], per["o429"][1:])]
        for g in gaps:  # backed off: at least half the base delay (jitter), well under a second
            self.assertGreaterEqual(g, FAST["backoff_base_ms"] // 2, gaps)
        self.assertLess(gaps[0], 1000 * SLOW, gaps)

        busy = self.attempts_of("flaky", "oBusy")
        self.assertEqual([x["outcome"] for x in busy], ["retrying", "sent"])
        self.assertEqual((busy[0]["http_status"], busy[0]["provider_code"]), (200, "-1"))

        for rid in ("o500", "oGarbage", "oDrop", "oSlow"):
            self.assertEqual(len(per[rid]), 1, (rid, per[rid]))
            a = self.attempts_of("flaky", rid)
            self.assertEqual([x["outcome"] for x in a], ["unknown"], (rid, a))
            self.assertEqual(deliveries[rid]["state"], "unknown")
            self.assertEqual(deliveries[rid]["attempts"], 1)
            self.assertIn("not resent", deliveries[rid]["last_error"])
        garbage, drop, slow = (self.attempts_of("flaky", r)[0] for r in ("oGarbage", "oDrop", "oSlow"))
        self.assertEqual(garbage["http_status"], 200)
        self.assertIn("unreadable", garbage["provider_message"])
        self.assertIsNone(drop["http_status"])
        self.assertIsNone(slow["http_status"])
        # At least the timeout (a rule); at most a little over it (speed, so it stretches).
        self.assertGreaterEqual(slow["duration_ms"], 900)
        self.assertLess(slow["duration_ms"], 2400 * SLOW)

        a = self.attempts_of("flaky", "oDown")
        self.assertEqual([x["outcome"] for x in a], ["retrying"] * 3 + ["failed"])
        self.assertEqual([x["http_status"] for x in a], [503] * 4)
        self.assertEqual(len(per["oDown"]), 4)
        self.assertEqual(deliveries["oDown"]["attempts"], 4)
        self.assertTrue(deliveries["oDown"]["last_error"].startswith("gave up after 4 attempts"),
                        deliveries["oDown"]["last_error"])
        self.assertEqual(self.stop(run), 0)

    def test_on_ambiguous_retry_resends(self):
        """A channel that says on_ambiguous: retry takes the risk of a duplicate itself."""
        m = self.feihe_mock("--close")
        self.config({"feihe": self.feihe_channel(m, on_ambiguous="retry")}, FAST)
        m.rules([
            {"provider": "feihe", "match": "o500", "status": 500, "times": 2},
            {"provider": "feihe", "match": "oDrop", "drop": True, "times": 1},
        ])
        self.due_now("bold", ["o500", "oDrop"])
        run = self.spawn("run")
        counts = self.settled("bold", 2)
        self.assertEqual(counts["sent"], 2, counts)
        self.assertEqual([x["outcome"] for x in self.attempts_of("bold", "o500")],
                         ["retrying", "retrying", "sent"])
        self.assertEqual([x["outcome"] for x in self.attempts_of("bold", "oDrop")],
                         ["retrying", "sent"])
        self.assertEqual(self.stop(run), 0)

    def test_two_runners_send_each_delivery_once(self):
        m = self.feihe_mock()
        self.config({"feihe": self.feihe_channel(m, max_in_flight=8)}, FAST)
        # Slow enough answers that one runner alone would take longer than the other needs
        # to notice the import (a second): both have work in flight at the same time.
        m.rules({"provider": "feihe", "delay_ms": 50, "times": 0})
        self.ok("migrate")  # first use racing is test_concurrent_first_use's business
        runs = [self.spawn("run", "--verbose") for _ in range(2)]
        for r in runs:
            wait_until(lambda: "runner" in self.stderr_of(r), what="a scheduler to start")
        ids = ["oTwin%03d" % i for i in range(300)]
        self.due_now("twins", ids)
        counts = self.settled("twins", 300)
        self.assertEqual(counts["sent"], 300, counts)
        reqs = m.requests("feihe")
        self.assertEqual(len(reqs), 300)
        per = by_key(reqs)
        self.assertEqual(sorted(per), ids)
        for rid, rs in per.items():
            self.assertEqual([r["verdict"] for r in rs], ["accepted"], rid)
        self.assertEqual([d["attempts"] for d in self.deliveries("twins")], [1] * 300)
        for r in runs:
            self.assertEqual(self.stop(r), 0)
        for r in runs:  # both took part
            self.assertIn("claimed", self.stderr_of(r))

    def test_a_big_backlog_does_not_starve_a_small_campaign(self):
        """Campaigns sharing a channel take turns at its slots: a small campaign due while a big
        one drains goes out at once, not after the big one."""
        m = self.feihe_mock()
        self.config({"feihe": self.feihe_channel(m, max_in_flight=2)}, FAST)
        m.rules({"provider": "feihe", "delay_ms": 25, "times": 0})
        self.due_now("big", ["oBig%04d" % i for i in range(600)])
        run = self.spawn("run")
        wait_until(lambda: self.counts("big")["sent"] >= 10, what="the big campaign draining")
        self.due_now("small", ["oSmall%d" % i for i in range(5)])
        imported = now_ms()
        self.assertEqual(self.settled("small", 5)["sent"], 5)
        big = self.counts("big")
        self.assertGreater(big["pending"] + big["sending"], 100, "the small one did not wait")
        per = by_key(m.requests("feihe"))
        lag = max(per["oSmall%d" % i][0]["received_at_ms"] for i in range(5)) - imported
        self.assertLess(lag, 2000 * SLOW, lag)
        self.assertEqual(self.stop(run), 0)

    def test_rate_limit_does_not_claim_ahead(self):
        # rate_per_sec spaces the requests out, and deliveries waiting for the rate stay
        # pending (a crash cannot strand them as 'sending'): never more claimed than slots.
        m = self.feihe_mock()
        self.config({"feihe": self.feihe_channel(m, max_in_flight=4, rate_per_sec=10)}, FAST)
        ids = ["oRate%02d" % i for i in range(25)]
        self.due_now("rated", ids)
        run = self.spawn("run")
        peak = 0

        def done():
            nonlocal peak
            c = self.counts("rated")
            peak = max(peak, c["sending"])
            return c["sent"] == 25
        wait_until(done, timeout=20, interval=0.02, what="every rated delivery to go")
        self.assertLessEqual(peak, 4)
        at = [r["received_at_ms"] for r in m.requests()]
        self.assertEqual(len(at), 25)
        # A burst of one second's worth, then 10 a second.
        self.assertGreaterEqual(at[-1] - at[0], (25 - 10) * 100 - 50)
        self.assertEqual(self.stop(run), 0)

    def test_pause_and_resume_from_another_process(self):
        m = self.feihe_mock()
        self.config({"feihe": self.feihe_channel(m, max_in_flight=1)}, FAST)
        m.rules({"provider": "feihe", "delay_ms": 100, "times": 0})
        ids = ["oPause%02d" % i for i in range(30)]
        self.due_now("pausing", ids)
        run = self.spawn("run")
        wait_until(lambda: len(m.requests()) >= 3, what="the first sends")
        self.ok("pause", "pausing")
        # What was in flight finishes; nothing more leaves after a second.
        wait_until(lambda: self.counts("pausing")["sending"] == 0, timeout=3,
                   what="the in-flight send to finish")
        n = self.unchanged(lambda: len(m.requests()), 1.5)
        self.assertLess(n, 30)
        st = self.status("pausing")
        self.assertEqual(st["state"], "paused")
        self.assertEqual(st["counts"]["sent"], n)
        self.assertEqual(st["counts"]["pending"], 30 - n)
        self.ok("resume", "pausing")
        self.settled("pausing", 30)
        self.assertEqual(self.counts("pausing")["sent"], 30)
        per = by_key(m.requests())
        self.assertEqual(sorted(per), ids)
        self.assertTrue(all(len(v) == 1 for v in per.values()))
        self.assertEqual(self.status("pausing")["state"], "completed")
        self.assertEqual(self.stop(run), 0)

    def test_cancel_from_another_process(self):
        m = self.feihe_mock()
        self.config({"feihe": self.feihe_channel(m, max_in_flight=1)}, FAST)
        m.rules({"provider": "feihe", "delay_ms": 100, "times": 0})
        ids = ["oCancel%02d" % i for i in range(30)]
        self.due_now("cancelling", ids)
        run = self.spawn("run")
        wait_until(lambda: len(m.requests()) >= 3, what="the first sends")
        self.ok("cancel", "cancelling")
        wait_until(lambda: self.counts("cancelling")["sending"] == 0, timeout=3,
                   what="the in-flight send to finish")
        n = self.unchanged(lambda: len(m.requests()), 1.5)
        c = self.counts("cancelling")
        self.assertEqual(c["sent"], n)
        self.assertEqual(c["cancelled"], 30 - n)
        self.assertEqual(c["sent"] + c["cancelled"], 30, c)
        self.assertEqual(self.status("cancelling")["state"], "cancelled")
        for d in self.deliveries("cancelling", "--state", "cancelled"):
            self.assertEqual(d["attempts"], 0)
        self.assertEqual(self.stop(run), 0)

    def test_sighup_reloads_the_channels_file(self):
        m = self.feihe_mock()
        # First the channel points at a closed port: every attempt fails and is retried (and
        # suspend_after is out of reach: suspension is test_faults' business).
        self.config({"feihe": self.feihe_channel(m, base_url="http://127.0.0.1:9",
                                                 suspend_after=100000)},
                    {"max_attempts": 1000, "backoff_base_ms": 50, "backoff_max_ms": 100})
        self.due_now("reload", ["oReload1"])
        run = self.spawn("run")
        wait_until(lambda: len(self.attempts_of("reload", "oReload1")) >= 2,
                   what="attempts against the closed port")
        self.assertEqual(m.requests(), [])
        # A broken file is refused and the old configuration kept: still retrying, still alive.
        self.write("herald.json", "{ not json")
        run.send_signal(signal.SIGHUP)
        n = len(self.attempts_of("reload", "oReload1"))
        wait_until(lambda: len(self.attempts_of("reload", "oReload1")) > n + 2,
                   what="retries after a refused reload")
        self.assertIsNone(run.poll())
        # The mended file points at the mock: the next attempt goes there and succeeds.
        self.config({"feihe": self.feihe_channel(m)},
                    {"max_attempts": 1000, "backoff_base_ms": 50, "backoff_max_ms": 100})
        run.send_signal(signal.SIGHUP)
        self.assertEqual(self.settled("reload", 1)["sent"], 1)
        self.assertEqual(len(m.accepted("feihe")), 1)
        self.assertEqual(self.stop(run), 0)
        err = self.stderr_of(run)
        self.assertIn("keeping the old configuration", err)
        self.assertIn("configuration reloaded", err)
        # The run's summary counts across the reload: the retries before it and the send after.
        retries = len(self.attempts_of("reload", "oReload1")) - 1
        self.assertRegex(err, r"stopped: 1 sent, 0 failed, .* %d retries scheduled" % retries)


if __name__ == "__main__":
    harness.main()
