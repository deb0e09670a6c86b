#!/usr/bin/env python3
"""End-to-end tests of `herald run --listen`: /metrics, /healthz and the status page of a real
scheduler sending to the real mock provider.

A small scripted campaign produces each outcome through mock rules; the counters scraped
from the running scheduler must equal what the database recorded. promtool (Debian
`prometheus`) and headless Chromium (Debian `chromium`) are used when installed
(scripts/deps tries to install both); without them those checks skip.

    HERALD_BIN=build/herald HERALD_MOCK=build/herald-mock HERALD_SRC=. \
        python3 tests/e2e/test_metrics.py

HERALD_UPDATE_SCREENSHOT=1 also writes the page's screenshot to doc/status-page.png.
"""
import html.parser
import os
import re
import shutil
import subprocess
import sys
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import SLOW, wait_until  # noqa: E402
from test_scheduler import FAST, SchedTest, local, now_ms, text  # noqa: E402

SERIES = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """{(name, frozenset(labels)): value} and {name: (help, type)} of an exposition."""
    values, meta = {}, {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, help_text = line[7:].split(" ", 1)
            meta.setdefault(name, [None, None])[0] = help_text
        elif line.startswith("# TYPE "):
            name, kind = line[7:].split(" ", 1)
            meta.setdefault(name, [None, None])[1] = kind
        elif line:
            m = SERIES.match(line)
            assert m, "not a sample line: %r" % line
            labels = frozenset(LABEL.findall(m.group(2) or ""))
            values[(m.group(1), labels)] = float(m.group(3))
    return values, meta


def get(url, timeout=10):
    """(status, content type, body text) of a GET, errors included."""
    try:
        with urllib.request.urlopen(url, timeout=timeout * SLOW) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


class Page(html.parser.HTMLParser):
    """The status page's campaigns ({key: {state: n}}), channels ({name: state}) and text."""

    def __init__(self, doc):
        super().__init__()
        self.campaigns, self.channels, self.text = {}, {}, []
        self._key = self._state = self._channel = None
        self._in_b = self._in_state_td = False
        self.feed(doc)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and a.get("class") == "campaign":
            self._key = a["data-key"]
            self.campaigns[self._key] = {}
        elif tag == "tr" and a.get("class") == "channel":
            self._channel = a["data-channel"]
        elif tag == "li" and "data-state" in a:
            self._state = a["data-state"]
        elif tag == "b" and self._state:
            self._in_b = True
        elif tag == "td" and self._channel and "state" in (a.get("class") or "").split():
            self._in_state_td = True

    def handle_endtag(self, tag):
        if tag == "b":
            self._in_b = False
        elif tag == "li":
            self._state = None
        elif tag == "td":
            self._in_state_td = False
        elif tag == "tr":
            self._key = self._channel = None

    def handle_data(self, data):
        self.text.append(data)
        if self._in_b and self._key:
            self.campaigns[self._key][self._state] = int(data)
        if self._in_state_td and self._channel:
            self.channels[self._channel] = data.strip()


class Listen(SchedTest):
    """A scheduler with --listen on a free loopback port, after a scripted campaign."""

    def serve(self, *extra):
        p = self.spawn("run", "--listen", "127.0.0.1:0", *extra)
        found = wait_until(lambda: self._listening(p), what="the listening line")
        self.url = found
        return p

    def _listening(self, p):
        if p.poll() is not None:
            raise AssertionError("herald run exited %d: %s" % (p.returncode, self.stderr_of(p)))
        m = re.search(r"listening on (http://127\.0\.0\.1:(\d+))/", self.stderr_of(p))
        if m:
            self.assertNotEqual(m.group(2), "0", "the bound port is logged, not 0")
        return m and m.group(1)

    def scrape(self):
        status, ctype, body = get(self.url + "/metrics")
        self.assertEqual(status, 200)
        self.assertEqual(ctype, "text/plain; version=0.0.4; charset=utf-8")
        return body

    def scripted(self):
        """Every outcome: sent, failed, retried (then sent), deferred, unknown (one request
        timed out, one dropped), expired, plus a suspended channel and a paused one."""
        m = self.feihe_mock("--close")
        self.mock_ = m
        self.config({"feihe": self.feihe_channel(m),
                     "flaky": self.feihe_channel(m, suspend_after=1, probe_every="10m"),
                     "held": self.feihe_channel(m)}, FAST)
        m.rules([{"provider": "feihe", "match": "oBad", "code": 40003, "message": "invalid openid oBad"},
                 {"provider": "feihe", "match": "oRetry", "status": 503, "times": 2},
                 {"provider": "feihe", "match": "oSlow", "delay_ms": 3000},
                 {"provider": "feihe", "match": "oDrop", "drop": True},
                 {"provider": "feihe", "match": "oQuota", "code": 45011, "times": 0},
                 {"provider": "feihe", "match": "oFlaky", "status": 503, "times": 0}])
        self.ids = ["oOk1", "oOk2", "oBad", "oRetry", "oSlow", "oDrop", "oQuota"]
        self.due_now("main", self.ids)
        self.due_now("wobbly", ["oFlaky"], channel="flaky")
        self.due_now("waits", ["oHeld1", "oHeld2", "oHeld3"], channel="held")
        date, hhmm = local(now_ms() - 2 * 86400 * 1000)
        self.campaign("stale", [{"day": 1, "time": hhmm, "message": text("x")}],
                      [{"id": "oStale"}], date, expire_after="24h")
        self.ids += ["oFlaky", "oHeld1", "oHeld2", "oHeld3", "oStale"]
        self.ok("pause", "--channel", "held")
        p = self.serve()

        def settled():
            c = self.counts("main")
            return (c["sent"] == 3 and c["failed"] == 1 and c["unknown"] == 2 and
                    c["deferred"] == 1 and self.counts("stale")["expired"] == 1 and
                    {ch["name"]: ch["state"] for ch in self.json("channels")["channels"]}
                    .get("flaky") == "suspended")
        wait_until(settled, timeout=30, interval=0.1, what="the scripted campaign to settle")
        return p

    def db_counts(self):
        """What the database recorded: deliveries per state, attempts per outcome and HTTP
        status class, across every campaign."""
        states = dict(self.sql("SELECT state, count(*) FROM deliveries GROUP BY 1"))
        outcomes = dict(self.sql("SELECT outcome, count(*) FROM attempts GROUP BY 1"))
        http = dict(self.sql(
            "SELECT CASE WHEN http_status BETWEEN 200 AND 299 THEN 'ok' "
            "WHEN http_status BETWEEN 500 AND 599 THEN 'http_5xx' "
            "WHEN http_status IS NULL OR http_status = 0 THEN 'none' ELSE 'other' END, "
            "count(*) FROM attempts GROUP BY 1"))
        return states, outcomes, http

    def test_counters_equal_the_database(self):
        p = self.scripted()
        states, outcomes, http = self.db_counts()
        self.assertEqual(outcomes.get("unknown"), 2, outcomes)

        def v(values, name, **labels):
            return values.get((name, frozenset(labels.items())))

        def agree():
            values, _ = parse_metrics(self.scrape())
            got = {o: sum(v(values, "herald_deliveries_total", channel=ch, outcome=o)
                          for ch in ("feihe", "flaky", "held"))
                   for o in ("sent", "failed", "retried", "deferred", "expired", "unknown",
                             "suppressed")}
            want = {"sent": states.get("sent", 0), "failed": states.get("failed", 0),
                    "unknown": states.get("unknown", 0), "expired": states.get("expired", 0),
                    "retried": outcomes.get("retrying", 0),
                    "deferred": outcomes.get("deferred", 0), "suppressed": 0}
            return values if got == want else None
        values = wait_until(agree, what="the counters to equal the database's counts")
        # The script reached every outcome it meant to (a zero would agree trivially).
        for o, n in (("sent", 3), ("failed", 1), ("unknown", 2), ("expired", 1),
                     ("retried", 3), ("deferred", 1)):
            self.assertGreaterEqual(sum(v(values, "herald_deliveries_total", channel=ch,
                                          outcome=o) for ch in ("feihe", "flaky")), n, o)
        self.assertEqual(v(values, "herald_deliveries_total", channel="stale", outcome="expired"),
                         None, "series are per channel, not per campaign")
        self.assertEqual(v(values, "herald_deliveries_total", channel="feihe", outcome="expired"), 1)

        # Requests: one per attempt (Feihe sends one openId a request), classed by the wire.
        req = {r: sum(v(values, "herald_requests_total", channel=ch, result=r) or 0
                      for ch in ("feihe", "flaky"))
               for r in ("ok", "http_4xx", "http_429", "http_5xx", "http_other", "timeout", "error")}
        self.assertEqual(sum(req.values()), sum(outcomes.values()), (req, outcomes))
        self.assertEqual(req["ok"], http.get("ok", 0))
        self.assertEqual(req["http_5xx"], http.get("http_5xx", 0))
        self.assertEqual(req["timeout"], 1, req)      # oSlow: 3 s against a 1 s timeout
        self.assertEqual(req["error"], 1, req)        # oDrop: the connection closed
        self.assertEqual(req["http_5xx"], 3, req)     # oRetry twice, oFlaky once
        for h in ("herald_request_duration_seconds", "herald_send_lag_seconds"):
            n = sum(v(values, h + "_count", channel=ch) for ch in ("feihe", "flaky"))
            self.assertEqual(n, sum(outcomes.values()), h)
            inf = sum(v(values, h + "_bucket", channel=ch, le="+Inf") for ch in ("feihe", "flaky"))
            self.assertEqual(inf, n, h)
        # The timed-out request took at least the 1 s timeout: above the 0.5 s bucket.
        self.assertLess(v(values, "herald_request_duration_seconds_bucket", channel="feihe",
                          le="0.5"), v(values, "herald_request_duration_seconds_count",
                                       channel="feihe"))
        # (curl's own clock for the transfer: a 1 s timeout may read 0.999 s.)
        self.assertGreaterEqual(v(values, "herald_request_duration_seconds_sum", channel="feihe"),
                                0.95)
        self.assertEqual(v(values, "herald_in_flight", channel="feihe"), 0)
        # From the database: the flaky channel suspended, and due but unclaimed the held
        # channel's three and the suspended one's retry (a paused channel is not suspended).
        self.assertEqual(v(values, "herald_channel_suspended", channel="flaky"), 1)
        self.assertEqual(v(values, "herald_channel_suspended", channel="feihe"), 0)
        self.assertEqual(v(values, "herald_channel_suspended", channel="held"), 0)
        self.assertEqual(v(values, "herald_due_backlog"), 4)
        self.assertEqual(v(values, "herald_database_up"), 1)
        self.assertGreater(v(values, "process_resident_memory_bytes"), 1 << 20)
        self.assertGreater(v(values, "process_open_fds"), 3)
        # CPU seconds as /proc says, read around a scrape (the process may use a few ticks).
        tick = os.sysconf("SC_CLK_TCK")

        def cpu():
            with open("/proc/%d/stat" % p.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / tick
        before = cpu()
        scraped = v(parse_metrics(self.scrape())[0], "process_cpu_seconds_total")
        self.assertTrue(before - 0.005 <= scraped <= cpu() + 0.005, (before, scraped))
        start = v(values, "process_start_time_seconds")
        self.assertLess(abs(start - os.stat("/proc/%d" % p.pid).st_mtime), 120)
        self.assertLessEqual(start, now_ms() / 1000)
        self.assertEqual(self.stop(p), 0)

    def test_exposition_format(self):
        self.scripted()
        text_ = self.scrape()
        values, meta = parse_metrics(text_)
        want = {"herald_deliveries_total": "counter", "herald_requests_total": "counter",
                "herald_request_duration_seconds": "histogram",
                "herald_send_lag_seconds": "histogram", "herald_in_flight": "gauge",
                "herald_channel_suspended": "gauge", "herald_due_backlog": "gauge",
                "process_resident_memory_bytes": "gauge", "process_open_fds": "gauge",
                "process_cpu_seconds_total": "counter", "process_start_time_seconds": "gauge"}
        for name, kind in want.items():
            self.assertIn(name, meta)
            self.assertEqual(meta[name][1], kind, name)
            self.assertTrue(meta[name][0], name + " has HELP text")
        # Every sample belongs to a family declared before it, each family declared once.
        declared = []
        for line in text_.splitlines():
            if line.startswith("# TYPE "):
                name = line.split()[2]
                self.assertNotIn(name, declared)
                declared.append(name)
            elif not line.startswith("#"):
                name = line.split("{")[0].split(" ")[0]
                base = re.sub(r"_(bucket|sum|count)$", "", name)
                self.assertTrue(name in declared or base == declared[-1] or name == declared[-1],
                                line)
        # Lag buckets reach from milliseconds to a day; cumulative counts never fall.
        les = [float(dict(k[1])["le"]) for k in values
               if k[0] == "herald_send_lag_seconds_bucket" and dict(k[1])["channel"] == "feihe"]
        self.assertEqual(min(les), 0.001)
        self.assertGreaterEqual(max(l for l in les if l != float("inf")), 3600)
        buckets = sorted((float(dict(k[1])["le"]), n) for k, n in values.items()
                         if k[0] == "herald_send_lag_seconds_bucket" and dict(k[1])["channel"] == "feihe")
        self.assertEqual([n for _, n in buckets], sorted(n for _, n in buckets))
        if not shutil.which("promtool"):
            self.skipTest("promtool is not installed (Debian prometheus; scripts/deps tries it)")
        p = subprocess.run(["promtool", "check", "metrics"], input=text_.encode(),
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())

    def test_label_values_are_escaped(self):
        m = self.feihe_mock()
        name = 'odd "quoted" \\ name'
        self.config({name: self.feihe_channel(m)}, FAST)
        self.due_now("odd", ["oOdd"], channel=name)
        p = self.serve()
        wait_until(lambda: self.counts("odd")["sent"] == 1, what="the send")
        body = wait_until(lambda: (lambda t: t if re.search(
            r'herald_deliveries_total\{channel="odd \\"quoted\\" \\\\ name",outcome="sent"\} 1$',
            t, re.M) else None)(self.scrape()), what="the escaped series")
        values, _ = parse_metrics(body)
        self.assertIn(("herald_channel_suspended", frozenset({("channel", r'odd \"quoted\" \\ name')})),
                      values)
        self.assertEqual(self.stop(p), 0)

    @harness.sqlite_only("the file renamed under the scheduler")
    def test_healthz_follows_the_database(self):
        m = self.feihe_mock()
        self.config({"feihe": self.feihe_channel(m)}, FAST)
        self.due_now("h", ["oH1"])
        p = self.serve()
        wait_until(lambda: get(self.url + "/healthz")[0] == 200, what="healthz 200")
        self.assertEqual(get(self.url + "/healthz")[2], "ok\n")
        # Moved away, the file the operator's commands use is gone: unhealthy, saying why.
        os.rename(self.db, self.db + ".away")
        try:
            status, _, body = get(self.url + "/healthz")
            self.assertEqual(status, 503)
            self.assertIn("database", body)
            self.assertIn("No such file", body)
            values, _ = parse_metrics(self.scrape())
            # The scrape still answers (the counters are in memory).
            self.assertIn(("herald_database_up", frozenset()), values)
        finally:
            os.rename(self.db + ".away", self.db)
        wait_until(lambda: get(self.url + "/healthz")[0] == 200, what="healthz 200 again")
        # Another file in its place is not the database the scheduler writes.
        os.rename(self.db, self.db + ".real")
        shutil.copy(self.db + ".real", self.db)
        status, _, body = get(self.url + "/healthz")
        self.assertEqual(status, 503)
        self.assertIn("no longer the file", body)
        os.replace(self.db + ".real", self.db)
        wait_until(lambda: get(self.url + "/healthz")[0] == 200, what="healthz 200 at last")
        self.assertEqual(get(self.url + "/nope")[0], 404)
        req = urllib.request.Request(self.url + "/metrics", data=b"x", method="POST")
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen(req, timeout=10 * SLOW)
        self.assertEqual(cm.exception.code, 405)
        self.assertEqual(self.stop(p), 0)

    def test_status_page(self):
        self.scripted()
        status, ctype, doc = get(self.url + "/")
        self.assertEqual(status, 200)
        self.assertEqual(ctype, "text/html; charset=utf-8")
        self.check_page(doc)
        # Self-contained: no external asset, no script at all.
        self.assertNotRegex(doc, r"(?i)<script|<link|src=|url\(|https?://")
        self.assertIn('http-equiv="refresh"', doc)

    def check_page(self, doc, rendered=False):
        page = Page(doc)
        campaigns = self.json("status")["campaigns"]
        self.assertEqual(set(page.campaigns), {c["key"] for c in campaigns})
        for c in campaigns:
            shown = dict(page.campaigns[c["key"]])
            self.assertEqual(shown.pop("total"), sum(c["counts"].values()), c["key"])
            self.assertEqual(shown, {s: n for s, n in c["counts"].items() if n}, c["key"])
        chans = {c["name"]: c["state"] for c in self.json("channels")["channels"]}
        self.assertEqual(page.channels, chans)
        self.assertEqual(chans["flaky"], "suspended")
        self.assertEqual(chans["held"], "paused")
        words = "".join(page.text)
        for c in campaigns:
            if c["next_due_at"]:
                self.assertIn(c["next_due_at"], words, c["key"])
        # Aggregates only: no recipient id, no message text.
        for rid in self.ids:
            self.assertNotIn(rid, doc)
        self.assertNotIn("您好", doc)

    def test_status_page_in_a_browser(self):
        browser = shutil.which("chromium") or shutil.which("chromium-browser")
        if not browser:
            self.skipTest("chromium is not installed (Debian chromium; scripts/deps tries it)")
        p = self.scripted()
        flags = [browser, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
                 "--user-data-dir=" + os.path.join(self.dir, "chromium")]
        r = subprocess.run(flags + ["--dump-dom", self.url + "/"], capture_output=True,
                           timeout=120 * SLOW)
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace")[-2000:])
        self.check_page(r.stdout.decode(), rendered=True)
        shot = os.path.join(self.dir, "status-page.png")
        r = subprocess.run(flags + ["--window-size=1280,640", "--screenshot=" + shot,
                                    self.url + "/"], capture_output=True, timeout=120 * SLOW)
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace")[-2000:])
        with open(shot, "rb") as f:
            png = f.read()
        self.assertEqual(png[:8], b"\x89PNG\r\n\x1a\n")
        self.assertGreater(len(png), 10000, "a blank page compresses to almost nothing")
        if os.environ.get("HERALD_UPDATE_SCREENSHOT"):
            shutil.copy(shot, os.path.join(harness.SRC, "doc", "status-page.png"))
        self.assertEqual(self.stop(p), 0)

    def test_listen_addresses(self):
        for bad in ("1.2.3:80", "127.0.0.1:99999", "[::1]80", "localhost:80", "127.0.0.1:x"):
            rc, _, err = self.herald("run", "--listen", bad)
            self.assertEqual(rc, 64, bad)
            self.assertIn("--listen", err)
        m = self.feihe_mock()
        self.config({"feihe": self.feihe_channel(m)}, FAST)
        self.ok("migrate")
        # A port alone is loopback.
        p = self.spawn("run", "--listen", "0")
        url = wait_until(lambda: (lambda m_: m_ and m_.group(1))(re.search(
            r"listening on (http://127\.0\.0\.1:\d+)/", self.stderr_of(p))), what="listening")
        wait_until(lambda: get(url + "/healthz")[0] == 200, what="healthz")
        self.assertEqual(self.stop(p), 0)
        # IPv6, where the host has it on loopback.
        p = self.spawn("run", "--listen", "[::1]:0")
        found = wait_until(lambda: p.poll() is not None or re.search(
            r"listening on (http://\[::1\]:\d+)/", self.stderr_of(p)), what="listening on ::1")
        if found is True:
            self.skipTest("no IPv6 loopback here: " + self.stderr_of(p))
        wait_until(lambda: get(found.group(1) + "/healthz")[0] == 200, what="healthz on ::1")
        self.assertEqual(self.stop(p), 0)
        # A port in use: a clear error at start, exit 1.
        busy = re.search(r":(\d+)/", found.group(0)).group(1)
        q = self.spawn("run", "--listen", "[::1]:" + busy)
        r = self.spawn("run", "--listen", "[::1]:" + busy)
        # One of the two gets the port; the other exits 1 naming the address.
        wait_until(lambda: q.poll() is not None or r.poll() is not None, what="one to fail")
        loser = q if q.poll() is not None else r
        self.assertEqual(loser.returncode, 1)
        self.assertIn("cannot listen", self.stderr_of(loser))


if __name__ == "__main__":
    harness.main()
