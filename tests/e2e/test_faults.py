#!/usr/bin/env python3
"""End-to-end tests of the faults of SPEC 5.5 and 5.9-5.11: the real herald binary, long-running,
against the real herald-mock scripted to fail as providers and networks do. Every test checks
what the provider saw (the mock's records) as well as what Herald recorded: no request twice
where a second could duplicate a message, nothing lost, an honest state for each delivery.

The README's fault matrix names the test that proves each row.
"""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import SLOW, main, wait_until  # noqa: E402
from test_scheduler import FAST, SchedTest, by_key, local, now_ms, text  # noqa: E402


def form_members(record):
    """The uuids of an APIUSB BulkSend record."""
    import urllib.parse
    f = dict(urllib.parse.parse_qsl(record["body"], keep_blank_values=True))
    return sorted(f["chat_message_to_uuid"].split(","))


class FaultTest(SchedTest):

    def apiusb_channel(self, m, **extra):
        ch = {"provider": "apiusb", "base_url": m.url, "access_token": "e2e-token",
              "timeout": "1s"}
        ch.update(extra)
        return ch

    def tanmarket_channel(self, m, **extra):
        ch = {"provider": "tanmarket", "base_url": m.url, "app_id": "e2e-app",
              "app_key": "e2e-tanmarket-key", "timeout": "1s"}
        ch.update(extra)
        return ch

    def sainiu_channel(self, m, **extra):
        ch = {"provider": "sainiu", "base_url": m.url, "timeout": "1s"}
        ch.update(extra)
        return ch

    def due_now_with(self, key, ids, channel, message):
        """A one-step campaign with this message object, due at the start of this minute."""
        date, hhmm = local(now_ms())
        return self.campaign(key, [{"day": 1, "time": hhmm, "message": message}],
                             [{"id": i} for i in ids], date, channel=channel)

    def db_state(self, key, rid):
        """A delivery's state read straight from the database: cheap enough to poll tightly."""
        rows = self.sql("SELECT d.state FROM deliveries d JOIN recipients r ON r.id = d.recipient_id "
                        "JOIN campaigns c ON c.id = d.campaign_id WHERE c.key = ? AND r.rid = ?",
                        key, rid)
        return rows[0][0] if rows else None

    def channel(self, name):
        return {c["name"]: c for c in self.json("channels")["channels"]}[name]


class BatchesRetriedWhole(FaultTest):
    """SPEC 5.9: a request that carried several deliveries is retried as the same request."""

    def test_tanmarket_sop_retried_as_one_request(self):
        m = self.mock()
        self.config({"groups": self.tanmarket_channel(m)}, FAST)
        m.rules({"provider": "tanmarket", "status": 503, "times": 1})
        date, _ = local(now_ms())
        groups = [{"chat_id": "wrGroup%02d" % i, "chat_owner": "owner%d" % i} for i in range(3)]
        steps = [{"day": 1, "time": "23:59", "message": {"contents": [{"type": 1, "content": "一"}]}},
                 {"day": 2, "time": "10:00", "message": {"contents": [{"type": 1, "content": "二"}]}}]
        self.campaign("sop", steps, groups, date, channel="groups")
        run = self.spawn("run")
        counts = self.settled("sop", 6)
        self.assertEqual(counts["sent"], 6, counts)
        self.unchanged(lambda: len(m.requests("tanmarket")), 1.0)
        reqs = m.requests("tanmarket")
        self.assertEqual([r["verdict"] for r in reqs], ["scripted", "accepted"])
        bodies = [json.loads(r["body"]) for r in reqs]
        self.assertEqual(bodies[0], bodies[1], "the retry is the same SOP")
        chats = sorted(g["chatId"] for g in bodies[1]["groupInfos"])
        self.assertEqual(chats, ["wrGroup00", "wrGroup01", "wrGroup02"])
        self.assertEqual(len(bodies[1]["sopContents"]), 2)
        for g in groups:  # two steps each: both retried once, both sent by the one SOP
            a = self.attempts_of("sop", g["chat_id"])
            self.assertEqual(sorted(x["outcome"] for x in a), ["retrying"] * 2 + ["sent"] * 2, a)
        self.assertEqual(self.stop(run), 0)

    def test_apiusb_batch_retried_with_the_same_members(self):
        m = self.mock()
        self.config({"members": self.apiusb_channel(m)}, FAST)
        m.rules({"provider": "apiusb", "status": 503, "times": 2})
        ids = ["%032x" % (0xabc0 + i) for i in range(6)]
        self.due_now_with("bulk", ids, "members", {"type": "text", "data": "会员日快乐"})
        run = self.spawn("run")
        counts = self.settled("bulk", 6)
        self.assertEqual(counts["sent"], 6, counts)
        self.unchanged(lambda: len(m.requests("apiusb")), 1.0)
        reqs = m.requests("apiusb")
        self.assertEqual([r["verdict"] for r in reqs], ["scripted", "scripted", "accepted"])
        for r in reqs:
            self.assertEqual(form_members(r), sorted(ids))
        # One backoff for the request: each retry came as one call, not member by member.
        for rid in ids:
            self.assertEqual([x["outcome"] for x in self.attempts_of("bulk", rid)],
                             ["retrying", "retrying", "sent"])
        self.assertEqual(self.stop(run), 0)


class AmbiguousOutcomes(FaultTest):
    """SPEC 5.10: a request that may have been accepted is never resent blindly."""

    def test_unanswered_requests_are_sent_once(self):
        m = self.mock()
        self.config({"feihe": self.feihe_channel(m), "members": self.apiusb_channel(m),
                     "groups": self.tanmarket_channel(m), "shop": self.sainiu_channel(m)}, FAST)
        # Every request arrives and is answered too late: the client times out after sending.
        m.rules({"provider": "*", "delay_ms": 2500, "times": 0})
        date, hhmm = local(now_ms())
        self.due_now("f", ["oFeihe"])
        self.due_now_with("a", ["%032x" % 7], "members", {"type": "text", "data": "hi"})
        self.campaign("t", [{"day": 1, "time": "23:59",
                             "message": {"contents": [{"type": 1, "content": "晚安"}]}}],
                      [{"chat_id": "wrAmbiguous", "chat_owner": "o1"}], date, channel="groups")
        self.due_now("s", ["shop-nick"], channel="shop", msg="上新啦")
        run = self.spawn("run")
        for key in ("f", "a", "t", "s"):
            counts = self.settled(key, 1)
            self.assertEqual(counts["unknown"], 1, (key, counts))
        self.unchanged(lambda: len(m.requests()), 1.5)
        per = {}
        for r in m.requests():
            per[r["provider"]] = per.get(r["provider"], 0) + 1
        self.assertEqual(per, {"feihe": 1, "apiusb": 1, "tanmarket": 1, "sainiu": 1})
        for key in ("f", "a", "t", "s"):
            d = self.deliveries(key)[0]
            self.assertEqual((d["state"], d["attempts"]), ("unknown", 1), key)
            self.assertIn("not resent", d["last_error"])
        # The SaiNiu call may have been accepted: it counts for the 7 days (SPEC 5.3, 5.10).
        self.due_now("s2", ["shop-nick"], channel="shop", msg="再上新")
        wait_until(lambda: self.deliveries("s2")[0]["state"] == "deferred", what="s2 deferred")
        self.assertEqual(len(m.requests("sainiu")), 1)
        self.assertEqual(self.stop(run), 0)

    def test_tencent_unanswered_is_resent_with_the_same_msg_random(self):
        m = self.tim_mock("--close")
        self.config({"desk": self.tim_channel(m, timeout="1s")}, FAST)
        m.rules({"provider": "tencent_desk", "drop": True, "times": 1})
        self.due_now("t", ["user-a"], channel="desk")
        run = self.spawn("run")
        counts = self.settled("t", 1)
        self.assertEqual(counts["sent"], 1, counts)
        reqs = m.requests("tencent_desk")
        self.assertEqual([r["verdict"] for r in reqs], ["scripted", "accepted"])
        randoms = {json.loads(r["body"])["MsgRandom"] for r in reqs}
        self.assertEqual(len(randoms), 1, "a resend carries the same MsgRandom")
        self.assertEqual([x["outcome"] for x in self.attempts_of("t", "user-a")],
                         ["retrying", "sent"])
        self.assertEqual(self.stop(run), 0)

    def test_libcurl_never_resends_to_a_provider_that_cannot_deduplicate(self):
        """libcurl resends a request by itself, up to five times, over other pooled connections
        when a reused one dies before any answer. For a provider that cannot de-duplicate the
        body is one libcurl cannot rewind, so a request dropped on a kept-alive connection
        reaches the provider exactly once and ends unknown."""
        m = self.feihe_mock()  # keep-alive: connections would be reused
        self.config({"feihe": self.feihe_channel(m, max_in_flight=4)}, FAST)
        m.rules({"provider": "feihe", "match": "oDrop", "drop": True, "times": 0})
        self.due_now("warm", ["oWarm%d" % i for i in range(8)])
        run = self.spawn("run")
        self.assertEqual(self.settled("warm", 8)["sent"], 8)
        self.due_now("cold", ["oDrop"])
        self.assertEqual(self.settled("cold", 1)["unknown"], 1)
        self.unchanged(lambda: len(m.requests("feihe")), 1.0)
        self.assertEqual(len(by_key(m.requests("feihe"))["oDrop"]), 1, "sent exactly once")
        att = self.attempts_of("cold", "oDrop")
        self.assertEqual([x["outcome"] for x in att], ["unknown"])
        # libcurl did try to resend it on another connection: the warm ones were kept alive.
        self.assertIn("kept-alive connection closed", att[0]["provider_message"])
        self.assertEqual(self.stop(run), 0)

    def test_retry_after_is_honoured(self):
        """Retry-After holds the whole channel (it is the provider asking), and stretches the
        retry past the backoff."""
        m = self.feihe_mock()
        self.config({"soon": self.feihe_channel(m, max_in_flight=1),
                     "later": self.feihe_channel(m)}, FAST)
        m.rules([{"provider": "feihe", "match": "oSoon", "status": 429, "retry_after": "2"},
                 {"provider": "feihe", "match": "oLater", "status": 503, "retry_after": "3600"}])
        self.due_now("ra", ["oSoon", "oSoon2"], channel="soon")
        self.due_now("rl", ["oLater"], channel="later")
        run = self.spawn("run")
        self.assertEqual(self.settled("ra", 2)["sent"], 2)
        per = by_key(m.requests("feihe"))
        first = per["oSoon"][0]["received_at_ms"]
        self.assertGreaterEqual(per["oSoon"][1]["received_at_ms"] - first, 2000,
                                "the backoff (50 ms) gave way to Retry-After")
        self.assertGreaterEqual(per["oSoon2"][0]["received_at_ms"] - first, 2000,
                                "the channel was held, not just the delivery")
        self.assertEqual(self.deliveries("rl")[0]["state"], "retrying")
        nxt = self.status("rl")["next_due_at"]
        import datetime
        at = datetime.datetime.fromisoformat(nxt).timestamp() * 1000
        self.assertGreater(at, now_ms() + 3500 * 1000, nxt)
        self.assertEqual(len(per["oLater"]), 1)
        self.assertEqual(self.stop(run), 0)

    def test_accepted_answers_without_details(self):
        """APIUSB's own sample answer has no data.item: accepted, no message id. Tanmarket's
        answer without a code but with success: false is a refusal, not a success."""
        m = self.mock()
        self.config({"members": self.apiusb_channel(m), "groups": self.tanmarket_channel(m)}, FAST)
        m.rules([{"provider": "apiusb", "body": '{"ret":200,"data":{"id":"2"},"msg":""}', "times": 0},
                 {"provider": "tanmarket", "body": '{"success":false,"msg":"群不存在"}', "times": 0}])
        date, hhmm = local(now_ms())
        ids = ["%032x" % i for i in range(3)]
        self.due_now_with("a", ids, "members", {"type": "text", "data": "hi"})
        self.campaign("t", [{"day": 1, "time": "23:59",
                             "message": {"contents": [{"type": 1, "content": "x"}]}}],
                      [{"chat_id": "wrGone", "chat_owner": "o"}], date, channel="groups")
        run = self.spawn("run")
        self.assertEqual(self.settled("a", 3)["sent"], 3)
        for d in self.deliveries("a"):
            self.assertIsNone(d["provider_message_id"])
        t = self.settled("t", 1)
        self.assertEqual(t["failed"], 1, t)
        self.assertIn("群不存在", self.deliveries("t")[0]["last_error"])
        self.assertEqual(self.stop(run), 0)


class ChannelSuspension(FaultTest):
    """SPEC 5.11: account faults suspend the channel, not the deliveries."""

    def test_rejected_token_suspends_until_a_probe_goes_through(self):
        m = self.mock()
        self.config({"members": self.apiusb_channel(m, batch_size=50, probe_every="1s"),
                     "feihe": self.feihe_channel(m)}, FAST)
        ids = ["%032x" % (0x1000 + i) for i in range(150)]
        date, hhmm = local(now_ms())
        # The first three BulkSends (one claim's worth) and the first probe meet ret 406.
        m.rules({"provider": "apiusb", "code": 406, "message": "非法请求：access_token校验不通过",
                 "times": 4})
        self.due_now_with("bulk", ids, "members", {"type": "text", "data": "hi"})
        run = self.spawn("run")
        wait_until(lambda: self.channel("members")["state"] == "suspended", what="suspension")
        ch = self.channel("members")
        self.assertIn("406", ch["reason"])
        self.assertIsNotNone(ch["next_probe_at"])
        st = self.status("bulk")
        self.assertIn("waiting: channel members suspended", st["last_error"])
        # Another channel keeps sending meanwhile.
        self.due_now("other", ["oOther"])
        self.assertEqual(self.settled("other", 1)["sent"], 1)
        counts = self.settled("bulk", 150)
        self.assertEqual((counts["sent"], counts["failed"]), (150, 0), counts)
        self.assertEqual(self.channel("members")["state"], "active")
        reqs = m.requests("apiusb")
        verdicts = [r["verdict"] for r in reqs]
        self.assertEqual(verdicts.count("scripted"), 4, verdicts)
        # While suspended, each probe was one request of at most one batch, the wait doubling.
        probes = [r for r in reqs[3:5]]
        self.assertEqual([len(form_members(p)) for p in probes], [50, 50])
        first_probe_gap = probes[1]["received_at_ms"] - probes[0]["received_at_ms"]
        self.assertGreaterEqual(first_probe_gap, 1900, "the second probe waits twice probe_every")
        accepted = [u for r in reqs if r["verdict"] == "accepted" for u in form_members(r)]
        self.assertEqual(sorted(accepted), sorted(ids), "each member accepted exactly once")
        for d in self.deliveries("bulk"):
            self.assertEqual(d["attempts"], 1, d)
        log = self.stderr_of(run)
        self.assertIn("channel members suspended", log)
        # Three requests in flight met the fault, then a probe did: one line says why.
        self.assertEqual(log.count("error: channel members suspended"), 1, log)
        self.assertIn("the suspension is over", log)
        self.assertEqual(self.stop(run), 0)

    def test_resume_channel_ends_a_suspension_at_once(self):
        m = self.mock()
        self.config({"members": self.apiusb_channel(m, probe_every="10m")}, FAST)
        m.rules({"provider": "apiusb", "code": 407, "times": 1})
        ids = ["%032x" % (0x2000 + i) for i in range(3)]
        self.due_now_with("bulk", ids, "members", {"type": "text", "data": "hi"})
        run = self.spawn("run")
        wait_until(lambda: self.channel("members")["state"] == "suspended", what="suspension")
        self.assertEqual(self.counts("bulk")["pending"], 3)
        self.unchanged(lambda: len(m.requests("apiusb")), 1.0)
        self.ok("resume", "--channel", "members")
        self.assertEqual(self.settled("bulk", 3)["sent"], 3)
        self.assertEqual(len(m.requests("apiusb")), 2)
        self.assertEqual(self.stop(run), 0)

    def test_pause_channel_holds_every_campaign_on_it(self):
        m = self.feihe_mock()
        self.config({"feihe": self.feihe_channel(m)}, FAST)
        self.ok("migrate")
        self.ok("pause", "--channel", "feihe")
        self.due_now("held", ["oHeld"])
        run = self.spawn("run")
        self.unchanged(lambda: len(m.requests()), 1.5)
        self.assertEqual(self.channel("feihe")["state"], "paused")
        self.assertEqual(self.channel("feihe")["waiting"], 1)
        self.ok("resume", "--channel", "feihe")
        self.assertEqual(self.settled("held", 1)["sent"], 1)
        self.assertEqual(self.stop(run), 0)

    def test_consecutive_failures_suspend(self):
        m = self.feihe_mock()
        self.config({"feihe": self.feihe_channel(m, suspend_after=3, probe_every="10m",
                                                 max_in_flight=1)}, FAST)
        m.rules({"provider": "feihe", "status": 503, "times": 0})
        self.due_now("down", ["oA", "oB", "oC", "oD", "oE"])
        run = self.spawn("run")
        wait_until(lambda: self.channel("feihe")["state"] == "suspended", what="suspension")
        self.assertIn("3 consecutive failed requests", self.channel("feihe")["reason"])
        self.unchanged(lambda: len(m.requests()), 1.0)
        self.assertEqual(len(m.requests()), 3)
        self.assertEqual(self.counts("down")["failed"], 0)
        self.assertEqual(self.stop(run), 0)


class RunnerLease(FaultTest):
    """SPEC 5.5: a runner that stops renewing its lease loses its claims, and when it wakes it
    starts none of them."""

    def test_stopped_runner_is_fenced(self):
        m = self.feihe_mock()
        self.config({"feihe": self.feihe_channel(m, rate_per_sec=1, timeout="10s")},
                    dict(FAST, lease="2s"))
        # o1 is answered late, so it is in flight when its runner stops.
        m.rules({"provider": "feihe", "match": "o1", "delay_ms": 1500})
        self.due_now("lease", ["o1", "o2", "o3"])
        a = self.spawn("run")
        # Under the rate limit the next claim waits in a's queue for its token.
        wait_until(lambda: len(m.requests("feihe")) == 1 and self.db_state("lease", "o2") == "sending",
                   interval=0.005, what="o1 in flight and o2 claimed")
        os.kill(a.pid, signal.SIGSTOP)
        try:
            b = self.spawn("run")
            wait_until(lambda: self.db_state("lease", "o2") == "unknown", timeout=15,
                       what="b to take a's claims")
            wait_until(lambda: self.db_state("lease", "o3") == "sent", timeout=15, what="o3 sent")
        finally:
            os.kill(a.pid, signal.SIGCONT)
        wait_until(lambda: "lease lost" in self.stderr_of(a), what="a to notice")
        self.unchanged(lambda: len(m.requests("feihe")), 1.5)
        per = by_key(m.requests("feihe"))
        self.assertEqual(sorted(per), ["o1", "o3"], "o2 never left: a was fenced")
        self.assertEqual(len(per["o1"]), 1)
        states = self.states("lease")
        # o1's answer reached the stopped runner after b had settled it as unknown: "accepted"
        # is the better knowledge, so it ends sent (a retry of unknowns cannot resend it).
        self.assertEqual(states, {("o1", 1): "sent", ("o2", 1): "unknown", ("o3", 1): "sent"})
        self.assertEqual([a["outcome"] for a in self.attempts_of("lease", "o1")],
                         ["unknown", "sent"])
        self.assertIn("lease ran out", self.attempts_of("lease", "o1")[1]["provider_message"])
        self.assertEqual(self.stop(a), 0)
        self.assertEqual(self.stop(b), 0)


class StopWithQueuedRequests(FaultTest):
    """A stop that cannot wait (a second signal) leaves what never left waiting, not unknown."""

    def test_second_signal_requeues_what_never_left(self):
        m = self.feihe_mock()
        self.config({"feihe": self.feihe_channel(m, rate_per_sec=1)}, FAST)
        # o1's answer holds the channel for a minute: o2, claimed for the next token, waits.
        # The answer comes after 400 ms, so o2 is claimed first (the loop claims again at once
        # while o1 is out; the hold would stop that claim), and before o2's token (1 s).
        m.rules({"provider": "feihe", "match": "o1", "status": 429, "retry_after": "60",
                 "delay_ms": 400})
        self.due_now("q", ["o1", "o2"])
        run = self.spawn("run")
        wait_until(lambda: self.db_state("q", "o1") == "retrying" and
                   self.db_state("q", "o2") == "sending", what="o2 queued behind the hold")
        run.send_signal(signal.SIGTERM)
        wait_until(lambda: "no new claims" in self.stderr_of(run), what="the first signal")
        self.assertEqual(self.stop(run, sig=signal.SIGTERM), 0)
        d = {x["recipient"]: x for x in self.deliveries("q")}
        self.assertEqual((d["o2"]["state"], d["o2"]["attempts"]), ("pending", 0))
        self.assertEqual([a["outcome"] for a in self.attempts_of("q", "o2")], ["requeued"])
        self.assertEqual(sorted(by_key(m.requests("feihe"))), ["o1"], "o2 never left")


class HostileAnswers(FaultTest):
    """Issue: what a provider says reaches the database, the log and the terminal."""

    SIG = "e2e-configured-usersig-5c1f9a7e3b"
    TOKEN = "e2e-apiusb-token-8d2b4e6f"
    SIGN = "e2e-sainiu-sign-key-0a9c7e5d"

    def test_echoed_secrets_are_masked_everywhere(self):
        m = self.mock("--tim-sdkappid", "1400000000", "--tim-identifier", "admin",
                      "--tim-usersig", self.SIG, "--apiusb-token", self.TOKEN,
                      "--sainiu-sign-key", self.SIGN)
        desk = self.tim_channel(m, usersig=self.SIG)
        del desk["secret_key"]
        self.config({"desk": desk, "members": self.apiusb_channel(m, access_token=self.TOKEN),
                     "shop": self.sainiu_channel(m, sign_key=self.SIGN)}, FAST)
        cut = self.SIG[:12]  # a provider cutting its echo short still gives it away
        m.rules([
            {"provider": "tencent_desk", "code": 90001,
             "message": "bad sig " + self.SIG + " / " + cut, "times": 0},
            {"provider": "apiusb", "status": 400,
             "body": '{"ret":400,"msg":"token ' + self.TOKEN + ' bad"}', "times": 0},
            {"provider": "sainiu", "body": '{"code":400,"msg":"key=' + self.SIGN + '"}', "times": 0},
        ])
        self.due_now("t", ["user-a"], channel="desk")
        self.due_now_with("a", ["%032x" % 3], "members", {"type": "text", "data": "hi"})
        self.due_now("s", ["shop-nick"], channel="shop", msg="上新")
        run = self.spawn("run", "--verbose")
        for key in ("t", "a", "s"):
            self.assertEqual(self.settled(key, 1)["failed"], 1, key)
        self.assertEqual(self.stop(run), 0)
        seen = self.ok("attempts", "t", "--json") + self.ok("attempts", "a", "--json") + \
            self.ok("attempts", "s", "--json") + self.ok("status", "--json") + \
            self.ok("deliveries", "t") + self.stderr_of(run)
        seen += repr(self.sql("SELECT * FROM attempts"))
        seen += repr(self.sql("SELECT last_error FROM deliveries"))
        seen += repr(self.sql("SELECT last_error FROM campaigns"))
        for secret in (self.SIG, cut, self.TOKEN, self.SIGN):
            self.assertNotIn(secret, seen)
        self.assertIn("bad sig ***", self.attempts("t")[0]["provider_message"])

    def test_control_characters_never_reach_the_terminal_or_log(self):
        m = self.feihe_mock()
        self.config({"feihe": self.feihe_channel(m)}, FAST)
        evil = "\u001b[2J\u001b]0;owned\u0007\nFAKE herald error: forged\u009b31m"
        m.rules({"provider": "feihe", "code": 40003, "message": evil})
        self.due_now("cc", ["oEvil"])
        run = self.spawn("run")
        self.assertEqual(self.settled("cc", 1)["failed"], 1)
        self.assertEqual(self.stop(run), 0)
        log = self.stderr_of(run)
        table = self.ok("attempts", "cc") + self.ok("deliveries", "cc") + self.ok("status")
        for out in (log, table):
            self.assertNotIn("\x1b", out)
            self.assertNotIn("\x07", out)
            self.assertNotIn("\u009b", out)
            self.assertIn("\\x1b[2J", out)
        self.assertFalse(any(l.startswith("FAKE") for l in log.splitlines()), log)
        # JSON keeps the text exact: it escapes it itself.
        self.assertIn("\x1b[2J", self.attempts("cc")[0]["provider_message"])


class SaiNiuReadmission(FaultTest):
    """A SaiNiu call that comes later than its admitted send time allows (a channel held by a
    Retry-After, a slow queue) is admitted again with a fresh send time, never refused and never
    past due + expire_after. The scheduling clock is set back with --now, so the call the
    claim admits reaches the build (on the real clock) later than its margin."""

    def campaign_at(self, key, nick, due_ms, expire_after):
        date, hhmm = local(due_ms)
        return self.campaign(key, [{"day": 1, "time": hhmm, "message": text("上新")}],
                             [{"id": nick}], date, channel="shop", expire_after=expire_after)

    def test_late_call_is_admitted_again(self):
        m = self.mock()
        self.config({"shop": self.sainiu_channel(m)}, FAST)
        real = now_ms()
        due = (real // 60000 + 61) * 60000
        self.campaign_at("late", "seller-late", due, "24h")
        virtual = real - 30 * 60000
        self.ok("run", "--once", "--now", str(virtual))
        d = self.deliveries("late")[0]
        self.assertEqual(d["state"], "sent", d)
        calls = m.requests("sainiu")
        self.assertEqual([c["verdict"] for c in calls], ["accepted"])
        import urllib.parse
        data = json.loads(dict(urllib.parse.parse_qsl(calls[0]["body"]))["data"])
        sendtime = int(data["sendtime"])
        self.assertGreaterEqual(sendtime, calls[0]["received_at_ms"] + 2 * 3600 * 1000)
        self.assertLessEqual(sendtime, due + 24 * 3600 * 1000)

    def test_too_late_to_admit_again_expires(self):
        m = self.mock()
        self.config({"shop": self.sainiu_channel(m)}, FAST)
        real = now_ms()
        due = (real // 60000 + 11) * 60000
        self.campaign_at("gone", "seller-gone", due, "1h")
        self.ok("run", "--once", "--now", str(real - 60 * 60000))
        d = self.deliveries("gone")[0]
        self.assertEqual(d["state"], "expired", d)
        self.assertIn("too late", d["last_error"])
        self.assertEqual(m.requests("sainiu"), [])
        self.assertEqual(self.attempts("gone"), [], "no request left: no attempt")


class StoreFaults(FaultTest):
    """The network never waits on the store, and a store that fails loses nothing."""

    @harness.sqlite_only("SQLite's write lock")
    def test_answers_are_read_while_another_process_holds_the_lock(self):
        m = self.feihe_mock()
        self.config({"feihe": self.feihe_channel(m, timeout="2s")}, FAST)
        m.rules([{"provider": "feihe", "match": "oFast", "delay_ms": 300},
                 {"provider": "feihe", "match": "oSlow", "delay_ms": 1000}])
        self.due_now("lock", ["oFast", "oSlow"])
        run = self.spawn("run")
        wait_until(lambda: len(m.requests("feihe")) == 2, interval=0.005, what="both requests")
        # Hold the write lock longer than the request timeout while both answers arrive.
        con = sqlite3.connect(self.db, timeout=10, isolation_level=None)
        con.execute("BEGIN IMMEDIATE")
        held = time.monotonic()
        wait_until(lambda: time.monotonic() - held > 4, interval=0.1, what="the hold")
        con.execute("ROLLBACK")
        con.close()
        counts = self.settled("lock", 2)
        self.assertEqual(counts["sent"], 2, counts)
        self.unchanged(lambda: len(m.requests("feihe")), 1.0)
        self.assertEqual(len(m.requests("feihe")), 2, "nothing was resent")
        slow = self.attempts_of("lock", "oSlow")
        self.assertEqual([a["outcome"] for a in slow], ["sent"])
        self.assertLess(slow[0]["duration_ms"], 2000 * SLOW)
        self.assertEqual(self.stop(run), 0)

    @harness.sqlite_only("a full disk under the file")
    def test_a_full_disk_loses_nothing_and_duplicates_nothing(self):
        mnt = os.path.join(self.dir, "small")
        os.mkdir(mnt)
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", mnt]).returncode != 0:
            self.skipTest("cannot mount a tmpfs here")
        self.addCleanup(lambda: subprocess.run(["umount", "-l", mnt]))
        self.db = os.path.join(mnt, "herald.db")
        m = self.feihe_mock()
        self.config({"feihe": self.feihe_channel(m, timeout="5s")}, FAST)
        ids = ["oDisk%02d" % i for i in range(20)]
        m.rules({"provider": "feihe", "delay_ms": 800, "times": 0})
        self.due_now("disk", ids)
        # Start with an empty WAL, so the results have to grow it.
        con = sqlite3.connect(self.db)
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.close()
        run = self.spawn("run")
        wait_until(lambda: len(m.requests("feihe")) == len(ids), what="every request out")
        filler = os.path.join(mnt, "filler")
        # Unbuffered: a buffered file would raise ENOSPC again when it is closed.
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * 65536)
        except OSError:
            pass
        finally:
            os.close(fd)
        wait_until(lambda: "cannot record results" in self.stderr_of(run), timeout=10,
                   what="the full disk to refuse the results")
        os.unlink(filler)
        counts = self.settled("disk", len(ids))
        self.assertEqual(counts["sent"], len(ids), counts)
        self.assertIn("the database answers again", self.stderr_of(run))
        self.unchanged(lambda: len(m.requests("feihe")), 1.0)
        self.assertEqual(sorted(by_key(m.requests("feihe"))), sorted(ids))
        self.assertEqual(len(m.requests("feihe")), len(ids), "nothing sent twice")
        for rid in ids[:3]:
            self.assertEqual([a["outcome"] for a in self.attempts_of("disk", rid)], ["sent"])
        self.assertEqual(self.stop(run), 0)

    def test_an_answer_over_the_cap_is_ambiguous(self):
        m = self.mock()
        self.config({"members": self.apiusb_channel(m, timeout="5s")}, FAST)
        # 2 MiB of an answer: a body repeated over, as a rule cannot be posted that big.
        m.rules({"provider": "apiusb", "body": "x" * (512 * 1024), "repeat": 4, "times": 0})
        self.due_now_with("big", ["%032x" % 9], "members", {"type": "text", "data": "hi"})
        run = self.spawn("run")
        counts = self.settled("big", 1)
        self.assertEqual(counts["unknown"], 1, counts)
        self.unchanged(lambda: len(m.requests("apiusb")), 1.0)
        self.assertEqual(len(m.requests("apiusb")), 1, "an oversized answer is never resent")
        self.assertIn("larger than 1 MiB", self.deliveries("big")[0]["last_error"])
        self.assertEqual(self.stop(run), 0)


if __name__ == "__main__":
    main()
