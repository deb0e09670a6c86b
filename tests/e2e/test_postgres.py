#!/usr/bin/env python3
"""End-to-end tests of several `herald run` nodes on one PostgreSQL database (SPEC §6), and of
`herald copy`: every delivery sent exactly once across nodes, a node killed or cut off
mid-run losing and duplicating nothing, SaiNiu's 7 days and a frequency cap holding across
nodes. They run as e2e.pg.test_postgres (HERALD_BACKEND=postgres); on SQLite they skip.

    HERALD_BACKEND=postgres HERALD_TEST_PG=$(scripts/pg start /tmp/hpg) \\
        HERALD_BIN=build/herald HERALD_MOCK=build/herald-mock HERALD_SRC=. \\
        python3 tests/e2e/test_postgres.py
"""
import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import SLOW, wait_until  # noqa: E402
from test_faults import FaultTest  # noqa: E402
from test_scheduler import SchedTest, local, now_ms, text  # noqa: E402

# Quick retries and a short lease, so a dead node's claims are settled within seconds.
NODES = {"max_attempts": 50, "backoff_base_ms": 20, "backoff_max_ms": 200, "lease": "2s"}


class Nodes(FaultTest):
    """What the tests of several nodes share."""

    def nodes(self, n):
        return [self.spawn("run") for _ in range(n)]

    def stop_all(self, procs):
        """Stops the nodes; their exit statuses. Nodes that claim and record side by side
        must never have waited for each other in a circle (the server would have broken it
        by failing one of them)."""
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        codes = [p.wait(timeout=30 * SLOW) for p in procs]
        for p in procs:
            self.assertNotIn("deadlock", self.stderr_of(p))
        return codes

    def recipients_file(self, name, ids):
        with open(os.path.join(self.dir, name), "w") as f:
            f.write("id\n" + "".join(i + "\n" for i in ids))
        return name

    def big_campaign(self, key, ids):
        date, hhmm = local(now_ms())
        path = self.write(key + ".json", {
            "key": key, "name": key, "channel": "feihe", "timezone": "Asia/Shanghai",
            "start_date": date, "anchor": "start_date",
            "steps": [{"day": 1, "time": hhmm, "message": text("{{id}} 您好")}],
            "recipients_file": self.recipients_file(key + ".csv", ids)})
        self.ok("import", path)

    def accepted_per_rid(self, m):
        got = {}
        for r in m.requests():
            if r["verdict"] == "accepted":
                got[r["key"]] = got.get(r["key"], 0) + 1
        return got

    def start_sending(self, key, prefix, n, in_flight, delay_ms, nodes):
        """n Feihe deliveries due now, answered after delay_ms (so requests are in flight),
        and `nodes` nodes sending them; returns (mock, nodes) once a quarter has gone."""
        m = self.feihe_mock()
        m.rules({"provider": "feihe", "delay_ms": delay_ms, "times": 0})
        self.config({"feihe": self.feihe_channel(m, max_in_flight=in_flight)}, NODES)
        self.big_campaign(key, ["%s%06d" % (prefix, i) for i in range(n)])
        procs = self.nodes(nodes)
        wait_until(lambda: m.stats()["total"] >= n // 4, timeout=120, what="a quarter sent")
        return m, procs

    def settled_once(self, key, n, m):
        """Waits until all n deliveries of key are sent or unknown, then checks that a sent one
        was accepted exactly once and an unknown one (in flight when its node or its server
        went) at most once: Feihe cannot de-duplicate, so it is never resent. The counts."""
        def settled():
            c = self.counts(key)
            return c if c["sent"] + c["unknown"] == n else None
        counts = wait_until(settled, timeout=300, interval=0.5, what="every delivery settled")
        per = self.accepted_per_rid(m)
        for (rid, _), state in self.states(key).items():
            self.assertIn(state, ("sent", "unknown"), rid)
            if state == "sent":
                self.assertEqual(per.get(rid, 0), 1, rid)
            else:
                self.assertLessEqual(per.get(rid, 0), 1, rid)
        return counts


def cpu_s(pid):
    """The CPU time a process has used, in seconds (user + system)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@unittest.skipUnless(harness.POSTGRES, "several nodes share a PostgreSQL database only")
class MultiNode(Nodes):

    def test_three_nodes_send_every_delivery_exactly_once(self):
        n = 20000 if harness.SANITIZED else 100000
        m = self.feihe_mock()
        self.config({"feihe": self.feihe_channel(m, max_in_flight=64)}, NODES)
        ids = ["oN%06d" % i for i in range(n)]
        self.big_campaign("many", ids)
        procs = self.nodes(3)
        counts = wait_until(lambda: (lambda c: c if c["sent"] == n else None)(self.counts("many")),
                            timeout=300, interval=0.5, what="every delivery sent")
        self.assertEqual(self.stop_all(procs), [0, 0, 0])
        self.assertEqual((counts["pending"], counts["sending"], counts["unknown"]), (0, 0, 0))
        per = self.accepted_per_rid(m)
        self.assertEqual(len(per), n)
        self.assertEqual(set(per.values()), {1}, "a delivery was sent twice")
        self.assertEqual(len(m.requests()), n, "a request was made twice")
        # The work was shared: every node sent some of it.
        for p in procs:
            self.assertRegex(self.stderr_of(p), r"stopped: [1-9][0-9]* sent")

    def test_a_node_killed_mid_run_loses_and_duplicates_nothing(self):
        n = 4000 if harness.SANITIZED else 20000
        # Answers held a little, so the killed node surely has requests in flight.
        m, procs = self.start_sending("killed", "oK", n, 32, 20, 3)
        procs[0].kill()
        self.assertEqual(procs[0].wait(timeout=10 * SLOW), -signal.SIGKILL)
        counts = self.settled_once("killed", n, m)
        self.assertEqual(self.stop_all(procs[1:]), [0, 0])
        self.assertLessEqual(counts["unknown"], 32, "more unknown than the dead node had in flight")

    def test_a_node_whose_connection_is_cut_recovers(self):
        n = 2000 if harness.SANITIZED else 10000
        m, procs = self.start_sending("cut", "oC", n, 16, 10, 2)
        # Every node's connection, from the server's side, as a failover or a DBA would.
        harness.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                     "datname = current_database() AND pid <> pg_backend_pid()", self.db)
        counts = self.settled_once("cut", n, m)
        self.assertEqual([p.poll() for p in procs], [None, None], "a node gave up")
        self.assertEqual(self.stop_all(procs), [0, 0])
        self.assertGreater(counts["sent"], n * 9 // 10)

    def test_sainiu_seven_days_hold_across_nodes(self):
        m = self.mock()
        self.config({"shop": {"provider": "sainiu", "base_url": m.url, "timeout": "2s"}}, NODES)
        date, hhmm = local(now_ms())
        for key in ("s1", "s2", "s3", "s4"):
            self.campaign(key, [{"day": 1, "time": hhmm, "message": text("上新")}],
                          [{"id": "seller-shared"}], date, channel="shop", expire_after="24h")
        procs = self.nodes(3)
        wait_until(lambda: sum(self.counts(k)["sent"] for k in ("s1", "s2", "s3", "s4")) == 1,
                   timeout=60, what="one notice sent")
        self.unchanged(lambda: len(m.requests("sainiu")), 1.5)
        self.assertEqual(self.stop_all(procs), [0, 0, 0])
        self.assertEqual(len(m.requests("sainiu")), 1, "the 7-day rule was broken across nodes")
        deferred = [k for k in ("s1", "s2", "s3", "s4") if self.counts(k)["deferred"] == 1]
        self.assertEqual(len(deferred), 3)

    def test_frequency_cap_holds_across_nodes(self):
        m = self.feihe_mock()
        self.config({"feihe": self.feihe_channel(m, frequency_cap={"max": 2, "per": "24h"})},
                    NODES)
        keys = ["f%d" % i for i in range(6)]
        for key in keys:
            self.due_now(key, ["oCapped", "oOwn-" + key])
        procs = self.nodes(3)
        wait_until(lambda: len(m.requests("feihe")) >= 8, timeout=60, what="the sends")
        self.unchanged(lambda: len(m.requests("feihe")), 1.5)
        self.assertEqual(self.stop_all(procs), [0, 0, 0])
        capped = [r for r in m.requests("feihe") if r["key"] == "oCapped"]
        self.assertEqual(len(capped), 2, "the cap of 2 was broken across nodes")
        self.assertEqual(len(m.requests("feihe")), 8)


    def test_a_suspended_channel_is_probed_by_one_node_at_a_time(self):
        m = self.mock()
        self.config({"members": self.apiusb_channel(m, batch_size=10, probe_every="1s")},
                    NODES)
        m.rules({"provider": "apiusb", "code": 406, "message": "非法请求：access_token校验不通过",
                 "times": 0})
        self.due_now_with("bulk", ["%032x" % (0x3000 + i) for i in range(300)], "members",
                          {"type": "text", "data": "hi"})
        procs = self.nodes(3)
        wait_until(lambda: self.channel("members")["state"] == "suspended", what="suspension")
        first = min(r["received_at_ms"] for r in m.requests("apiusb"))
        # What was in flight when the fault came is answered within moments; the probes
        # follow a second, then two more, after the suspension.
        probes = lambda: [r for r in m.requests("apiusb") if r["received_at_ms"] > first + 700]
        wait_until(lambda: len(probes()) >= 2, timeout=30 * SLOW, what="two probes")
        got = probes()
        self.assertEqual(self.stop_all(procs), [0, 0, 0])
        at = sorted(r["received_at_ms"] for r in got)
        self.assertEqual(len(at), 2, "a probe went out from more than one node at once")
        self.assertGreaterEqual(at[1] - at[0], 1800, "the second probe waits twice probe_every")
        self.assertEqual(self.counts("bulk")["sent"], 0)


@unittest.skipUnless(harness.POSTGRES, "a PostgreSQL server of the test's own")
class ServerCrash(Nodes):
    """The server itself goes down mid-run, as a crash would (no checkpoint; what was not
    flushed is lost, results committed without waiting for the flush included), and comes
    back. On a cluster of the test's own, so the other tests' server stays up."""

    def pg(self, cmd):
        p = subprocess.run([os.path.join(harness.SRC, "scripts", "pg"), cmd, self.pg_dir],
                           capture_output=True, text=True, timeout=120 * SLOW)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout.strip()

    def setUp(self):
        super().setUp()
        import shutil
        import tempfile
        # A short path: the server's socket lives there, and a socket's path is short.
        self.pg_dir = tempfile.mkdtemp(prefix="hpgc")
        self.addCleanup(shutil.rmtree, self.pg_dir, True)
        self.addCleanup(subprocess.run, [os.path.join(harness.SRC, "scripts", "pg"), "stop",
                                         self.pg_dir], capture_output=True)
        self.db = self.pg("start")

    def test_a_server_crash_loses_and_duplicates_nothing(self):
        n = 2000 if harness.SANITIZED else 10000
        m, procs = self.start_sending("crash", "oX", n, 16, 10, 2)
        self.pg("crash")
        before = [cpu_s(p.pid) for p in procs]
        # The outage itself, not a wait for something: longer than the nodes' lease (2 s), so
        # each comes back as a new runner and settles what the old ones left in flight.
        time.sleep(3)
        # Due work waited all along: a node that retried the store at every turn of its loop
        # instead of backing off would have burnt most of a core.
        for p, was in zip(procs, before):
            self.assertLess(cpu_s(p.pid) - was, 0.5 * SLOW, "a node spun while the server was down")
        self.pg("start")
        counts = self.settled_once("crash", n, m)
        self.assertEqual([p.poll() for p in procs], [None, None], "a node gave up")
        self.assertEqual(self.stop_all(procs), [0, 0])
        self.assertGreater(counts["sent"], n * 9 // 10)
        for p in procs:
            said = self.stderr_of(p)
            self.assertIn("the database answers again", said)
            # One line per episode, whatever the outage: a log is no place for a busy loop.
            self.assertLess(said.count("\n"), 60, said[-2000:])


@unittest.skipUnless(harness.POSTGRES, "a PostgreSQL URI")
class UriSecrets(SchedTest):

    def test_a_password_in_the_uri_is_never_printed(self):
        import urllib.parse
        secret = "pw-s3cret-9f2"
        u = urllib.parse.urlsplit(self.db)
        netloc = u.netloc.replace("@", ":%s@" % secret, 1) if "@" in u.netloc else u.netloc
        self.db = urllib.parse.urlunsplit((u.scheme, netloc, u.path, u.query, u.fragment))
        self.assertIn(secret, self.db)
        m = self.feihe_mock()
        self.config({"feihe": self.feihe_channel(m)}, NODES)
        self.due_now("pw", ["oPw"])
        said = [self.ok("migrate"), self.herald("run", "--once")[2],
                self.herald("status", "nope")[2]]
        # And where the password is a query parameter, wrong server too: the error names the URI.
        rc, out, err = self.herald("--db", "postgresql://h.invalid/x?password=%s&connect_timeout=2"
                                   % secret, "status")
        self.assertEqual(rc, 1)
        said += [out, err]
        self.assertIn("password=***", err)
        # A password shorter than its mask.
        err = self.herald("--db", "postgresql://u:a@h.invalid/x?connect_timeout=2", "status")[2]
        self.assertIn("postgresql://u:***@h.invalid/x", err)
        self.assertIn(":***@", said[0])
        for text in said:
            self.assertNotIn(secret, text)
        self.assertEqual(self.counts("pw")["sent"], 1)


@unittest.skipUnless(harness.POSTGRES, "copies into a PostgreSQL database")
class Copy(SchedTest):

    def lite(self, *args, check=True):
        src = os.path.join(self.dir, "src.db")
        p = subprocess.run([harness.HERALD, "--db", src, "--config", self.config_path] +
                           list(args), capture_output=True, text=True, timeout=60 * SLOW)
        if check:
            self.assertEqual(p.returncode, 0, p.stderr)
        return p

    def test_copy_moves_everything_and_the_scheduler_goes_on(self):
        m = self.feihe_mock()
        self.config({"feihe": self.feihe_channel(m)}, NODES)
        date, hhmm = local(now_ms())
        later = local(now_ms() + 86400 * 1000 * 2)
        self.write("c.json", {"key": "moved", "name": "moved", "channel": "feihe",
                              "timezone": "Asia/Shanghai", "start_date": date,
                              "anchor": "start_date",
                              "steps": [{"day": 1, "time": hhmm, "message": text("一")},
                                        {"day": 3, "time": later[1], "message": text("三")}],
                              "recipients": [{"id": "oA"}, {"id": "oB"}, {"id": "oC"}]})
        self.lite("import", os.path.join(self.dir, "c.json"))
        self.lite("run", "--once")
        self.lite("suppress", "add", "*", "oGone")
        before = self.lite("status", "moved", "--json").stdout
        src = os.path.join(self.dir, "src.db")
        out = self.ok("copy", "--from", src, "--to", self.db)
        self.assertIn("deliveries       6", out)
        self.assertIn("attempts         3", out)
        self.assertEqual(self.ok("status", "moved", "--json"), before)
        self.assertEqual(self.ok("suppress", "list"), self.lite("suppress", "list").stdout)
        self.assertEqual(self.ok("attempts", "moved"), self.lite("attempts", "moved").stdout)
        # A second copy into the same database is refused, and writes nothing.
        rc, _, err = self.herald("copy", "--from", src, "--to", self.db)
        self.assertEqual(rc, 1)
        self.assertIn("already holds Herald data", err)
        self.assertEqual(self.ok("status", "moved", "--json"), before)
        # New ids continue past the copied ones: a re-import adding a recipient works.
        self.assertEqual(self.counts("moved")["sent"], 3)
        self.assertEqual(len(m.requests("feihe")), 3)

    def test_copy_refused_while_a_scheduler_runs_on_the_source(self):
        m = self.feihe_mock()
        self.config({"feihe": self.feihe_channel(m)}, NODES)
        date, hhmm = local(now_ms() + 86400 * 1000)
        self.write("c.json", {"key": "busy", "name": "busy", "channel": "feihe",
                              "timezone": "Asia/Shanghai", "start_date": date,
                              "anchor": "start_date",
                              "steps": [{"day": 1, "time": hhmm, "message": text("一")}],
                              "recipients": [{"id": "oA"}]})
        self.lite("import", os.path.join(self.dir, "c.json"))
        src = os.path.join(self.dir, "src.db")
        with open(os.path.join(self.dir, "lite-run.stderr"), "wb") as log:
            run = subprocess.Popen([harness.HERALD, "--db", src, "--config", self.config_path,
                                    "run"], stdout=subprocess.DEVNULL, stderr=log)
        try:
            def started():
                with open(log.name) as f:
                    return "(pid " in f.read()
            wait_until(started, what="the scheduler to start")
            rc, _, err = self.herald("copy", "--from", src, "--to", self.db)
            self.assertEqual(rc, 1, err)
            self.assertIn("a scheduler", err)
            self.assertFalse(self.db_exists() and self.sql("SELECT count(*) FROM campaigns")[0][0])
            run.send_signal(signal.SIGTERM)
            self.assertEqual(run.wait(timeout=30 * SLOW), 0)
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
        self.ok("copy", "--from", src, "--to", self.db)
        self.assertEqual(self.counts("busy")["pending"], 1)


if __name__ == "__main__":
    harness.main()
