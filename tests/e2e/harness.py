"""End-to-end test harness: the real herald binary, real SQLite files in a temp dir, and the
real herald-mock provider server on loopback. Paths come from the environment ctest sets
(HERALD_BIN, HERALD_MOCK, HERALD_SRC); run a file by hand with those set.

Nothing here sleeps to synchronise: waits poll a condition with a deadline."""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest
import urllib.request

HERALD = os.environ.get("HERALD_BIN", "herald")
MOCK = os.environ.get("HERALD_MOCK", "herald-mock")
SRC = os.environ.get("HERALD_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))
SANITIZED = bool(os.environ.get("HERALD_SANITIZE"))
# Sanitizer builds run several times slower; deadlines stretch, assertions do not.
SLOW = 4.0 if SANITIZED else 1.0


def wait_until(cond, timeout=10.0, interval=0.01, what="condition"):
    """Polls cond() until it returns a true value, which is returned; fails after timeout."""
    deadline = time.monotonic() + timeout * SLOW
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(interval)


class Mock:
    """The bundled mock provider server on 127.0.0.1, started fresh for a test."""

    def __init__(self, workdir, *args, env=None):
        self.port_file = os.path.join(workdir, "mock-%d.port" % id(self))
        self.log_file = os.path.join(workdir, "mock-%d.log" % id(self))
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [MOCK, "--port", "0", "--port-file", self.port_file, "--log", self.log_file] + list(args),
            env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        port = wait_until(lambda: self._port(), what="the mock's port file")
        self.url = "http://127.0.0.1:%d" % port

    def _port(self):
        if self.proc.poll() is not None:
            raise AssertionError("mock exited: " + self.proc.stderr.read().decode(errors="replace"))
        try:
            with open(self.port_file) as f:
                text = f.read()
            return int(text) if text.endswith("\n") else None
        except (FileNotFoundError, ValueError):
            return None

    def _call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10 * SLOW) as r:
            return r.read()

    def rules(self, rules):
        """Adds failure rules (see tests/mock/mock_main.c for their fields)."""
        self._call("POST", "/_mock/rules", rules)

    def reset(self):
        self._call("POST", "/_mock/reset", {})

    def requests(self, provider=None):
        """Every request the mock received since the last reset, oldest first."""
        path = "/_mock/requests" + ("?provider=" + provider if provider else "")
        return json.loads(self._call("GET", path))["requests"]

    def accepted(self, provider=None):
        return [r for r in self.requests(provider) if r["verdict"] == "accepted"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            rc = self.proc.wait(timeout=20 * SLOW)
            if rc != 0:
                raise AssertionError("mock exited %d: %s" % (rc, self.proc.stderr.read().decode(errors="replace")))
        self.proc.stderr.close()


class HeraldTest(unittest.TestCase):
    """A temp dir holding herald.db and herald.json; helpers to run herald in it."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="herald-e2e-")
        self.db = os.path.join(self.dir, "herald.db")
        self.config_path = os.path.join(self.dir, "herald.json")
        self.mocks = []
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for m in self.mocks:
            m.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def mock(self, *args, env=None):
        m = Mock(self.dir, *args, env=env)
        self.mocks.append(m)
        return m

    def write(self, name, content):
        """Writes a file in the temp dir (dicts and lists as JSON); returns its path."""
        path = os.path.join(self.dir, name)
        mode = "wb" if isinstance(content, bytes) else "w"
        with open(path, mode) as f:
            if isinstance(content, (dict, list)):
                json.dump(content, f, ensure_ascii=False)
            else:
                f.write(content)
        return path

    def config(self, channels, scheduler=None):
        doc = {"channels": channels}
        if scheduler:
            doc["scheduler"] = scheduler
        self.write("herald.json", doc)

    def herald(self, *args, stdin=None, env=None, timeout=120):
        """Runs herald to completion; returns (exit code, stdout, stderr)."""
        full_env = dict(os.environ)
        full_env.pop("HERALD_DB", None)
        full_env.pop("HERALD_CONFIG", None)
        full_env.update(env or {})
        p = subprocess.run([HERALD, "--db", self.db, "--config", self.config_path] + list(args),
                           input=stdin, capture_output=True, env=full_env, cwd=self.dir,
                           timeout=timeout * SLOW)
        err = p.stderr.decode(errors="replace")
        # A sanitizer report is a bug whatever the exit status the test expects.
        for mark in ("runtime error", "AddressSanitizer", "LeakSanitizer"):
            if mark in err:
                raise AssertionError("sanitizer report from herald %s:\n%s" % (" ".join(args), err))
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    def ok(self, *args, **kw):
        rc, out, err = self.herald(*args, **kw)
        self.assertEqual(rc, 0, "herald %s failed (%d): %s" % (" ".join(args), rc, err))
        return out

    def json(self, *args, **kw):
        return json.loads(self.ok(*(list(args) + ["--json"]), **kw))

    def spawn(self, *args, env=None):
        """Starts herald in the background (herald run); the test owns the process."""
        full_env = dict(os.environ)
        full_env.update(env or {})
        p = subprocess.Popen([HERALD, "--db", self.db, "--config", self.config_path] + list(args),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env, cwd=self.dir)
        self.procs.append(p)
        return p

    def status(self, key):
        return self.json("status", key)["campaigns"][0]

    def counts(self, key):
        return self.status(key)["counts"]

    def deliveries(self, key, *args):
        return self.json("deliveries", key, *args)["deliveries"]

    def attempts(self, key, *args):
        return self.json("attempts", key, *args)["attempts"]

    def db_snapshot(self):
        """The database's full content, to prove a failed command wrote nothing."""
        import sqlite3
        if not os.path.exists(self.db):
            return None
        con = sqlite3.connect(self.db)
        try:
            tables = [r[0] for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
            return {t: sorted(map(repr, con.execute("SELECT * FROM " + t))) for t in tables}
        finally:
            con.close()


def main():
    unittest.main(verbosity=2)
