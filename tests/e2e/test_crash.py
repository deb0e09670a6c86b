#!/usr/bin/env python3
"""End-to-end tests of `herald run` dying or stopping with requests in flight.

kill -9 mid-request: Feihe cannot de-duplicate, so its in-flight deliveries become 'unknown'
and are never resent on their own; Tencent de-duplicates by MsgRandom, so they are resent with
the same MsgRandom and the provider sees one message. SIGTERM / SIGINT: stop claiming, let what
is in flight finish, record it, exit 0; a second signal stops at once.

    HERALD_BIN=build/herald HERALD_MOCK=build/herald-mock HERALD_SRC=. \
        python3 tests/e2e/test_crash.py
"""
import json
import os
import signal
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import SLOW, wait_until  # noqa: E402
from test_scheduler import FAST, SchedTest, body, by_key  # noqa: E402

from test_scheduler import TIM_SECRET as TIM_SECRET_KEY  # noqa: E402

# How long the mock holds the requests that are in flight when herald dies.
HOLD_MS = 5000


class KillMidFlight(SchedTest):
    """SIGKILL while every claimed request is held by the provider."""

    def start_and_kill(self, mock, key, n):
        """Runs herald until the mock holds n requests and the database shows them 'sending',
        then kills it with SIGKILL."""
        run = self.spawn("run")
        wait_until(lambda: len(mock.requests()) == n, what="%d requests in flight" % n)
        wait_until(lambda: self.counts(key)["sending"] == n, what="%d deliveries sending" % n)
        run.kill()
        self.assertEqual(run.wait(timeout=10 * SLOW), -signal.SIGKILL)
        self.assertEqual(self.counts(key)["sending"], n)  # nothing could record anything
        return run

    def test_feihe_becomes_unknown_and_is_never_resent(self):
        m = self.feihe_mock()
        self.config({"feihe": self.feihe_channel(m, timeout="10s")}, FAST)
        ids = ["oKill%d" % i for i in range(4)]
        m.rules({"provider": "feihe", "delay_ms": HOLD_MS, "times": len(ids)})
        self.due_now("killed", ids)
        self.start_and_kill(m, "killed", len(ids))

        self.ok("run", "--once")
        self.assertEqual(set(self.states("killed").values()), {"unknown"})
        self.ok("run", "--once")  # unknown stays unknown: never resent on its own
        per = by_key(m.requests())
        self.assertEqual(sorted(per), ids)
        self.assertEqual({k: len(v) for k, v in per.items()}, {k: 1 for k in ids})
        for d in self.deliveries("killed"):
            self.assertEqual((d["state"], d["attempts"]), ("unknown", 1), d)
            self.assertIn("in flight", d["last_error"])
        for rid in ids:
            [a] = self.attempts_of("killed", rid)
            self.assertEqual(a["outcome"], "unknown")
            self.assertIsNone(a["http_status"])
        c = self.counts("killed")
        self.assertEqual((c["unknown"], c["pending"], c["sending"]), (4, 0, 0))

        # The operator decides: retry them, and they go (a second time, by Feihe's nature).
        self.ok("retry", "killed", "--state", "unknown")
        self.assertEqual(self.counts("killed")["pending"], 4)
        self.ok("run", "--once")
        self.assertEqual(set(self.states("killed").values()), {"sent"})
        per = by_key(m.requests())
        for rid in ids:
            self.assertEqual(len(per[rid]), 2)
            self.assertEqual(per[rid][1]["verdict"], "accepted")
            self.assertEqual(body(per[rid][1]), body(per[rid][0]))
            self.assertEqual([a["outcome"] for a in self.attempts_of("killed", rid)],
                             ["unknown", "sent"])

    def test_tencent_is_resent_with_the_same_msg_random(self):
        t = self.tim_mock()
        self.config({"desk": self.tim_channel(t, timeout="10s")}, FAST)
        ids = ["timKill%d" % i for i in range(3)]
        t.rules({"provider": "tencent_desk", "delay_ms": HOLD_MS, "times": len(ids)})
        self.due_now("deskkill", ids, channel="desk", msg="{{id}}，您的问题解决了吗？")
        self.start_and_kill(t, "deskkill", len(ids))

        self.ok("run", "--once")
        self.assertEqual(set(self.states("deskkill").values()), {"sent"})
        per = by_key(t.requests())
        self.assertEqual(sorted(per), ids)
        for rid in ids:
            first, second = per[rid]
            self.assertEqual(body(first)["MsgRandom"], body(second)["MsgRandom"], rid)
            self.assertEqual(body(first)["MsgBody"], body(second)["MsgBody"])
            self.assertEqual(body(second)["ToAccount"], rid)
            # The URL's random is per request; MsgRandom is per delivery.
            q1, q2 = (urllib.parse.parse_qs(r["query"]) for r in (first, second))
            self.assertNotEqual(q1["random"], q2["random"])
            # Exactly once accepted: the resend is the provider's duplicate.
            self.assertEqual([first["verdict"], second["verdict"]], ["accepted", "duplicate"])
            self.assertEqual([a["outcome"] for a in self.attempts_of("deskkill", rid)],
                             ["requeued", "sent"])
        stats = t.stats()["providers"]["tencent_desk"]
        self.assertEqual((stats["accepted"], stats["duplicate"]), (3, 3))
        # Nothing more goes later.
        self.ok("run", "--once")
        self.assertEqual(len(t.requests()), 6)


class Signals(SchedTest):
    """SIGTERM / SIGINT with requests in flight."""

    def graceful(self, sig):
        m = self.feihe_mock()
        self.config({"feihe": self.feihe_channel(m, max_in_flight=4, timeout="5s")}, FAST)
        m.rules({"provider": "feihe", "delay_ms": 1000, "times": 4})
        ids = ["oStop%d" % i for i in range(8)]
        self.due_now("stopping", ids)
        run = self.spawn("run")
        wait_until(lambda: len(m.requests()) == 4, what="4 requests in flight")
        wait_until(lambda: self.counts("stopping")["sending"] == 4, what="4 deliveries sending")
        t0 = time.monotonic()
        run.send_signal(sig)
        rc = run.wait(timeout=20 * SLOW)
        took = time.monotonic() - t0
        self.assertEqual(rc, 0, self.stderr_of(run))
        self.assertLess(took, 1.0 + 1.5 * SLOW, "took %.2f s to stop" % took)
        # The four in flight finished and were recorded; nothing new was claimed.
        c = self.counts("stopping")
        self.assertEqual((c["sent"], c["pending"], c["sending"]), (4, 4, 0), c)
        self.assertEqual(len(m.requests()), 4)
        sent = {d["recipient"] for d in self.deliveries("stopping", "--state", "sent")}
        self.assertEqual(sent, {r["key"] for r in m.requests()})
        # The next start sends the rest, and only the rest.
        self.ok("run", "--once")
        self.assertEqual(self.counts("stopping")["sent"], 8)
        per = by_key(m.requests())
        self.assertEqual({k: len(v) for k, v in per.items()}, {k: 1 for k in ids})

    def test_sigterm_finishes_in_flight(self):
        self.graceful(signal.SIGTERM)

    def test_sigint_finishes_in_flight(self):
        self.graceful(signal.SIGINT)

    def test_second_sigterm_stops_at_once(self):
        m = self.feihe_mock()
        self.config({"feihe": self.feihe_channel(m, timeout="10s")}, FAST)
        ids = ["oHard%d" % i for i in range(3)]
        m.rules({"provider": "feihe", "delay_ms": HOLD_MS, "times": len(ids)})
        self.due_now("hardstop", ids)
        run = self.spawn("run")
        wait_until(lambda: len(m.requests()) == 3, what="3 requests in flight")
        wait_until(lambda: self.counts("hardstop")["sending"] == 3, what="3 deliveries sending")
        run.send_signal(signal.SIGTERM)
        wait_until(lambda: "no new claims" in self.stderr_of(run), what="the first signal's effect")
        t0 = time.monotonic()
        run.send_signal(signal.SIGTERM)
        rc = run.wait(timeout=20 * SLOW)
        took = time.monotonic() - t0
        # Well before the held answers come (HOLD_MS): the sanitizer slow-down stretches the
        # bound, never past the hold itself, which would make it meaningless.
        self.assertLess(took, min(HOLD_MS / 1000 / 2 * SLOW, HOLD_MS / 1000 * 0.9),
                        "took %.2f s to stop" % took)
        self.assertEqual(rc, 0, self.stderr_of(run))
        # Whatever was in flight is settled by the next start, as unknown: Feihe cannot tell.
        self.ok("run", "--once")
        c = self.counts("hardstop")
        self.assertEqual((c["unknown"], c["sending"], c["sent"]), (3, 0, 0), c)
        self.assertEqual({k: len(v) for k, v in by_key(m.requests()).items()}, {k: 1 for k in ids})



class KillRepeatedly(SchedTest):
    """kill -9 at twenty points of one run, each restart settling what the last left: every
    delivery ends sent exactly once, or unknown (sent at most once), and nothing is lost;
    Tencent, which de-duplicates, never ends unknown and shows each message once."""

    def test_twenty_kills_lose_and_duplicate_nothing(self):
        import random
        rnd = random.Random(20261130)
        n = 2000 if harness.SANITIZED else 10000  # per channel
        m = self.mock("--feihe-system", "NEW_MEMBER", "--tim-sdkappid", "1400000000",
                      "--tim-identifier", "admin", env={"MOCK_TIM_SECRET": TIM_SECRET_KEY})
        self.config({"feihe": self.feihe_channel(m, max_in_flight=32),
                     "desk": self.tim_channel(m, max_in_flight=32, secret_key=TIM_SECRET_KEY)},
                    {"max_attempts": 50, "backoff_base_ms": 20, "backoff_max_ms": 100})
        fids = ["oK%05d" % i for i in range(n)]
        tids = ["uK%05d" % i for i in range(n)]
        self.due_now("kf", fids)
        self.due_now("kt", tids, channel="desk")
        seen = 0
        for _ in range(20):
            run = self.spawn("run")
            target = seen + rnd.randint(50, max(60, 2 * n // 20))
            # Killed once the provider has seen a random number more requests: mid-flight.
            wait_until(lambda: m.stats()["total"] >= target or run.poll() is not None,
                       timeout=60, interval=0.002, what="requests before the kill")
            run.kill()
            run.wait(timeout=10 * SLOW)
            seen = m.stats()["total"]
        run = self.spawn("run")
        # What is left of 2 x n: a minute is ample alone, a loaded machine may need longer.
        fc, tc = self.settled("kf", n, timeout=120), self.settled("kt", n, timeout=120)
        self.assertEqual(self.stop(run), 0)
        self.assertEqual(fc["sent"] + fc["unknown"], n, fc)
        self.assertEqual(tc["sent"], n, tc)
        accepted = {}
        for r in m.requests():
            if r["verdict"] == "accepted":
                accepted[r["key"]] = accepted.get(r["key"], 0) + 1
        states = self.states("kf")
        for rid in fids:
            got = accepted.get(rid, 0)
            if states[(rid, 1)] == "sent":
                self.assertEqual(got, 1, rid)
            else:
                self.assertLessEqual(got, 1, rid)
        for rid in tids:  # resends carry the same MsgRandom: the provider shows one message
            self.assertEqual(accepted.get(rid, 0), 1, rid)

if __name__ == "__main__":
    harness.main()
