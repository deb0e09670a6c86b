#!/usr/bin/env python3
"""End-to-end tests of herald as a systemd service: the sd_notify datagrams `herald run`
sends on $NOTIFY_SOCKET (READY, WATCHDOG, STOPPING, in that order; path and abstract sockets),
journal-style log lines when $JOURNAL_STREAM names stderr, and the installed files: the
binary, the man page (mandoc -T lint clean, renders with man -l), the systemd unit
(systemd-analyze verify when available), the example channels file and the schema.

    HERALD_BIN=build/herald HERALD_MOCK=build/herald-mock HERALD_SRC=. \\
        python3 tests/e2e/test_service.py
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


class NotifyTest(harness.HeraldTest):

    def setUp(self):
        super().setUp()
        self.config({"fh": {"provider": "feihe", "base_url": "http://127.0.0.1:9"}})
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.settimeout(20 * harness.SLOW)

    def tearDown(self):
        self.sock.close()
        super().tearDown()

    def messages_until(self, state, got):
        """Receives datagrams into got (a list of messages, each a list of lines) until one
        carries state; returns got."""
        while not any(state in m for m in got):
            data = self.sock.recv(4096)
            got.append(data.decode().split("\n"))
        return got

    def run_and_stop(self, address):
        p = self.spawn("run", env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "1000000",
                                   "WATCHDOG_PID": ""})
        got = self.messages_until("READY=1", [])
        self.messages_until("WATCHDOG=1", got)
        self.assertIsNone(p.poll(), "herald run exited early")
        p.send_signal(signal.SIGTERM)
        self.messages_until("STOPPING=1", got)
        self.assertEqual(p.wait(timeout=30 * harness.SLOW), 0, self.stderr_of(p))
        first = {s: next(i for i, m in enumerate(got) if s in m)
                 for s in ("READY=1", "WATCHDOG=1", "STOPPING=1")}
        self.assertEqual(first["READY=1"], 0, got)
        self.assertLess(first["READY=1"], first["WATCHDOG=1"], got)
        self.assertLess(first["WATCHDOG=1"], first["STOPPING=1"], got)
        # Every datagram is KEY=VALUE lines, nothing else.
        for m in got:
            for line in m:
                self.assertRegex(line, r"^[A-Z_]+=.*$")
        return got

    def test_path_socket(self):
        path = os.path.join(self.dir, "notify.sock")
        self.sock.bind(path)
        self.run_and_stop(path)

    def test_abstract_socket(self):
        name = "herald-test-%d-%d" % (os.getpid(), id(self))
        self.sock.bind("\0" + name)
        self.run_and_stop("@" + name)

    def test_watchdog_keeps_pinging(self):
        path = os.path.join(self.dir, "notify.sock")
        self.sock.bind(path)
        p = self.spawn("run", env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"})
        got = self.messages_until("READY=1", [])
        # Three pings in a row: the loop pings while idle, not just once.
        while sum("WATCHDOG=1" in m for m in got) < 3:
            got.append(self.sock.recv(4096).decode().split("\n"))
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(timeout=30 * harness.SLOW), 0)

    def test_no_socket_no_noise(self):
        # Without NOTIFY_SOCKET, herald run starts and stops as always, saying nothing of it.
        p = self.spawn("run", env={"NOTIFY_SOCKET": ""})
        harness.wait_until(lambda: "(pid " in self.stderr_of(p) or p.poll() is not None,
                           what="herald run to start")
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(timeout=30 * harness.SLOW), 0)
        self.assertNotIn("notify", self.stderr_of(p))

    def test_unreachable_socket_is_a_warning_not_a_failure(self):
        path = os.path.join(self.dir, "nobody-listens.sock")
        p = self.spawn("run", env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"})
        harness.wait_until(lambda: "cannot notify" in self.stderr_of(p), what="the notify warning")
        warning = next(line for line in self.stderr_of(p).splitlines() if "cannot notify" in line)
        self.assertIn(path, warning)
        self.assertIsNone(p.poll())
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(timeout=30 * harness.SLOW), 0)
        # One warning, not one per watchdog ping.
        self.assertEqual(self.stderr_of(p).count("cannot notify"), 1, self.stderr_of(p))


class JournalTest(harness.HeraldTest):
    """With $JOURNAL_STREAM naming stderr, every line starts <N> and has no timestamp."""

    def setUp(self):
        super().setUp()
        self.m = self.mock()
        self.config({"fh": {"provider": "feihe", "base_url": self.m.url}})
        self.ok("import", self.write("c.json", {
            "key": "j", "name": "journal", "channel": "fh", "start_date": "2026-11-23",
            "steps": [{"day": 1, "time": "10:00", "message": {"type": "text", "text": "hi"}}],
            "recipients": [{"id": "oGood"}, {"id": "oBad"}]}))
        # oBad fails for good: an error line.
        self.m.rules({"provider": "feihe", "match": "oBad", "code": 40003, "message": "bad openid"})

    def run_with_stderr_pipe(self, journal_value, extra_env, args=None, db=None, expect=0):
        r, w = os.pipe()
        st = os.fstat(w)
        env = dict(os.environ, JOURNAL_STREAM=journal_value(st), **extra_env)
        env.pop("HERALD_DB", None)
        args = args or ["run", "--once", "--verbose", "--now", "2026-11-23T10:00:01+08:00"]
        p = subprocess.Popen([harness.HERALD, "--db", db or self.db, "--config", self.config_path]
                             + args, stdout=subprocess.DEVNULL, stderr=w, env=env, cwd=self.dir)
        os.close(w)
        with os.fdopen(r) as f:
            text = f.read()
        self.assertEqual(p.wait(timeout=60 * harness.SLOW), expect, text)
        return text.splitlines()

    @staticmethod
    def ours(st):
        return "%d:%d" % (st.st_dev, st.st_ino)

    def test_priority_prefixes(self):
        # An unreachable notify socket makes a warning, --verbose debug lines.
        lines = self.run_with_stderr_pipe(self.ours,
                                          {"NOTIFY_SOCKET": os.path.join(self.dir, "none.sock")})
        self.assertTrue(lines)
        seen = set()
        for line in lines:
            m = re.match(r"^<([3467])>", line)
            self.assertTrue(m, "no priority prefix: %r" % line)
            self.assertNotRegex(line, STAMP, "a timestamp of our own in %r" % line)
            seen.add(m.group(1))
        self.assertEqual(seen, {"4", "6", "7"}, lines)
        warn = [l for l in lines if "cannot notify" in l]
        self.assertTrue(warn and warn[0].startswith("<4>"), lines)
        failed = [l for l in lines if "oBad" in l]
        self.assertTrue(failed and all(l.startswith("<4>") for l in failed), lines)
        self.assertTrue(any(l.startswith("<6>") and "runner" in l for l in lines), lines)
        self.assertTrue(any(l.startswith("<7>") and "claimed" in l for l in lines), lines)
        self.assertEqual(self.counts("j")["sent"], 1)

    @harness.sqlite_only("a path in a missing directory")
    def test_error_prefix(self):
        lines = self.run_with_stderr_pipe(self.ours, {"NOTIFY_SOCKET": ""}, args=["run"],
                                          db=os.path.join(self.dir, "no-such-dir", "h.db"), expect=1)
        self.assertTrue(lines)
        self.assertTrue(all(l.startswith("<3>") for l in lines), lines)
        self.assertIn("no-such-dir", lines[0])

    def test_json_lines_in_the_journal(self):
        lines = self.run_with_stderr_pipe(self.ours, {"NOTIFY_SOCKET": ""},
                                          args=["run", "--once", "--log-format", "json",
                                                "--now", "2026-11-23T10:00:01+08:00"])
        self.assertTrue(lines)
        for line in lines:
            m = re.match(r"^<([3467])>(\{.*\})$", line)
            self.assertTrue(m, line)
            obj = json.loads(m.group(2))
            self.assertNotIn("ts", obj)
            self.assertEqual({"6": "info", "4": "warn", "3": "error", "7": "debug"}[m.group(1)],
                             obj["level"])

    def test_other_stream_keeps_timestamps(self):
        # JOURNAL_STREAM inherited from a parent whose stderr was the journal, ours is not.
        lines = self.run_with_stderr_pipe(lambda st: "%d:%d" % (st.st_dev, st.st_ino + 1),
                                          {"NOTIFY_SOCKET": ""})
        self.assertTrue(lines)
        for line in lines:
            self.assertNotRegex(line, r"^<\d>")
            self.assertRegex(line, "^" + STAMP.pattern)


class InstallTest(harness.HeraldTest):
    """cmake --install into a temp prefix, then check what landed there."""

    def setUp(self):
        super().setUp()
        self.prefix = os.path.join(self.dir, "prefix")
        build = os.path.dirname(os.path.abspath(harness.HERALD))
        p = subprocess.run(["cmake", "--install", build, "--prefix", self.prefix],
                           capture_output=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr.decode() + p.stdout.decode())
        self.unit = os.path.join(self.prefix, "lib", "systemd", "system", "herald.service")
        self.man = os.path.join(self.prefix, "share", "man", "man1", "herald.1")

    def path(self, *parts):
        return os.path.join(self.prefix, *parts)

    def test_installed_files(self):
        herald = self.path("bin", "herald")
        self.assertTrue(os.access(herald, os.X_OK))
        v = subprocess.run([herald, "--version"], capture_output=True, timeout=30)
        self.assertEqual(v.returncode, 0)
        self.assertRegex(v.stdout.decode(), r"^herald \d+\.\d+\.\d+\n$")
        for installed, source in ((("share", "doc", "herald", "examples", "herald.json"),
                                   ("examples", "herald.json")),
                                  (("share", "herald", "schema.sql"), ("schema", "schema.sql")),
                                  (("share", "man", "man1", "herald.1"), ("doc", "herald.1"))):
            with open(self.path(*installed), "rb") as a, \
                    open(os.path.join(harness.SRC, *source), "rb") as b:
                self.assertEqual(a.read(), b.read(), installed)
        names = [f for _, _, files in os.walk(self.prefix) for f in files]
        self.assertNotIn("herald-mock", names)
        self.assertEqual(sorted(names), ["herald", "herald.1", "herald.json", "herald.service",
                                         "schema.sql"])

    def test_unit(self):
        with open(self.unit) as f:
            text = f.read()
        keys = {}
        for line in text.splitlines():
            if "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                keys.setdefault(k, []).append(v)
        want = {
            "Type": "notify", "ExecStart": self.path("bin", "herald") + " run",
            "ExecReload": "/bin/kill -HUP $MAINPID", "Restart": "on-failure",
            "DynamicUser": "yes", "StateDirectory": "herald", "ProtectSystem": "strict",
            "NoNewPrivileges": "yes", "PrivateTmp": "yes", "WorkingDirectory": "/var/lib/herald",
        }
        for k, v in want.items():
            self.assertEqual(keys.get(k), [v], k)
        self.assertRegex(keys["WatchdogSec"][0], r"^\d+s$")
        env = keys["Environment"]
        self.assertIn("HERALD_DB=/var/lib/herald/herald.db", env)
        self.assertIn("HERALD_CONFIG=/etc/herald/herald.json", env)
        # The drain after SIGTERM (up to 30 s) must fit in the stop timeout.
        self.assertGreater(int(keys["TimeoutStopSec"][0].rstrip("s")), 30)
        # The watchdog must allow for the loop's one-second wake-ups many times over.
        self.assertGreaterEqual(int(keys["WatchdogSec"][0].rstrip("s")), 10)

    def test_systemd_analyze_verify(self):
        if not shutil.which("systemd-analyze"):
            self.skipTest("systemd-analyze is not installed")
        # MANPATH: Documentation=man:herald(1) must resolve to the installed page.
        env = dict(os.environ, MANPATH=self.path("share", "man"), SYSTEMD_LOG_COLOR="0")
        p = subprocess.run(["systemd-analyze", "verify", self.unit], capture_output=True,
                           env=env, cwd=self.dir, timeout=120)
        out = (p.stdout + p.stderr).decode()
        self.assertEqual(p.returncode, 0, out)
        # verify exits 0 on mere warnings (an unparsable value is ignored): none allowed.
        self.assertEqual(out.strip(), "")

    def test_man_page_lints_clean(self):
        if not shutil.which("mandoc"):
            self.skipTest("mandoc is not installed (scripts/deps installs it)")
        p = subprocess.run(["mandoc", "-T", "lint", self.man], capture_output=True, timeout=60)
        out = (p.stdout + p.stderr).decode()
        # Whether the pages it refers to (journalctl(1), ...) are installed depends on the
        # machine, not on this page: only those notes may appear.
        left = [l for l in out.splitlines()
                if "referenced manual not found" not in l and "mandoc.db" not in l]
        self.assertEqual(left, [], out)

    def test_man_page_renders_and_covers_everything(self):
        if not shutil.which("man"):
            self.skipTest("man is not installed")
        p = subprocess.run(["man", "-l", self.man], capture_output=True, timeout=60,
                           env=dict(os.environ, MANWIDTH="100", MAN_KEEP_FORMATTING="",
                                    MANPAGER="cat", PAGER="cat"))
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        page = re.sub(r".\x08", "", p.stdout.decode())
        for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "SIGNALS", "ENVIRONMENT",
                        "FILES", "EXIT STATUS", "EXAMPLES"):
            self.assertRegex(page, r"(?m)^%s$" % section)
        usage = subprocess.run([harness.HERALD, "--help"], capture_output=True).stdout.decode()
        commands = re.findall(r"(?m)^  herald (\w+)", usage)
        self.assertGreaterEqual(len(commands), 12)
        for cmd in commands:
            self.assertRegex(page, r"(?m)^ {5}%s\b" % cmd, "command %s" % cmd)
            helptext = subprocess.run([harness.HERALD, cmd, "--help"],
                                      capture_output=True).stdout.decode()
            for opt in set(re.findall(r"--[a-z-]+", helptext.splitlines()[0])):
                self.assertIn(opt, page, "%s %s" % (cmd, opt))
        for word in ("--db", "--config", "--version", "--help", "HERALD_DB", "HERALD_CONFIG",
                     "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM",
                     "SIGTERM", "SIGINT", "SIGHUP", "SIGPIPE", "/etc/herald/herald.json",
                     "/var/lib/herald/herald.db", "herald.service", "schema.sql"):
            self.assertIn(word, page)
        for code in ("0", "1", "64", "65", "66", "78"):
            self.assertRegex(page, r"(?m)^ {5}%s {2,}\S" % code, "exit status %s" % code)


if __name__ == "__main__":
    harness.main()
