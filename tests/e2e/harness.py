"""End-to-end test harness: the real herald binary, real SQLite files in a temp dir, and the
real herald-mock provider server on loopback. Paths come from the environment ctest sets
(HERALD_BIN, HERALD_MOCK, HERALD_SRC); run a file by hand with those set.

The same tests run on PostgreSQL when HERALD_BACKEND=postgres: each test then gets a fresh
database on the server HERALD_TEST_PG names (a URI to an existing database the tests may
create databases from, as scripts/pg prints); without it they are skipped. Tests that are
about SQLite's file (its locks, its WAL, its mode bits) carry @sqlite_only.

Nothing here sleeps to synchronise: waits poll a condition with a deadline."""

import atexit
import http.client
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERALD = os.environ.get("HERALD_BIN", "herald")
MOCK = os.environ.get("HERALD_MOCK", "herald-mock")
SRC = os.environ.get("HERALD_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))
SANITIZED = bool(os.environ.get("HERALD_SANITIZE"))
POSTGRES = os.environ.get("HERALD_BACKEND") == "postgres"
PG_ADMIN = os.environ.get("HERALD_TEST_PG", "")
# Sanitizer builds run several times slower; deadlines stretch, assertions do not.
SLOW = 4.0 if SANITIZED else 1.0


def sqlite_only(why):
    """Marks a test about SQLite's file itself, which PostgreSQL has no counterpart of."""
    return unittest.skipIf(POSTGRES, "about the SQLite file: " + why)


def pg_uri(dbname):
    """PG_ADMIN with its database replaced by dbname."""
    import urllib.parse
    u = urllib.parse.urlsplit(PG_ADMIN)
    return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + dbname, u.query, u.fragment))


def psql(sql, uri=None):
    """Runs SQL with psql on the test server; returns its unaligned, tuples-only output."""
    p = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", uri or PG_ADMIN,
                        "-c", sql], capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError("psql failed: %s" % p.stderr)
    return p.stdout


_pg_serial = itertools.count()
_pg_made = []             # the databases this process made, dropped as it exits


def _pg_drop_made():
    # DROP DATABASE waits for a checkpoint (seconds): done once at exit, in the background, so
    # no test waits for the last one's.
    if _pg_made:
        sql = "".join("DROP DATABASE IF EXISTS %s WITH (FORCE);" % d for d in _pg_made)
        subprocess.Popen(["psql", "-X", "-q", "-d", PG_ADMIN, "-c", sql], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)


atexit.register(_pg_drop_made)


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
    """The bundled mock provider server on 127.0.0.1, started fresh: the one way every test
    and the benchmark start and talk to it.

    workdir holds its port file and stderr (None: a temp dir of its own, removed by close());
    log is the --log file (True: one in workdir, as self.log; None: no log); binary defaults
    to $HERALD_MOCK. stdout is discarded and stderr goes to a file, so a mock that writes a
    lot never stalls on a pipe nobody reads."""

    serial = itertools.count()

    def __init__(self, *args, workdir=None, env=None, binary=None, log=True, timeout=10.0):
        self._tmp = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="herald-mock-")
            workdir = self._tmp.name
        n = "%d-%d" % (os.getpid(), next(Mock.serial))
        self.port_file = os.path.join(workdir, "mock-%s.port" % n)
        self.stderr_path = os.path.join(workdir, "mock-%s.err" % n)
        self.log = os.path.join(workdir, "mock-%s.log" % n) if log is True else log
        self.timeout = timeout
        full_env = dict(os.environ)
        full_env.update(env or {})
        argv = [binary or MOCK, "--port", "0", "--port-file", self.port_file]
        if self.log:
            argv += ["--log", self.log]
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(argv + list(args), env=full_env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err)
        try:
            self.port = wait_until(self._port, timeout=20, what="the mock's port file")
        except BaseException:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            raise
        self.url = "http://127.0.0.1:%d" % self.port

    def _port(self):
        if self.proc.poll() is not None:
            raise AssertionError("mock exited %d: %s" % (self.proc.returncode, self.stderr()))
        try:
            with open(self.port_file) as f:
                text = f.read()
            return int(text) if text.endswith("\n") else None
        except (FileNotFoundError, ValueError):
            return None

    def stderr(self):
        with open(self.stderr_path, errors="replace") as f:
            return f.read()

    def conn(self, timeout=None):
        return http.client.HTTPConnection("127.0.0.1", self.port,
                                          timeout=(timeout or self.timeout) * SLOW)

    def call(self, method, path, body=None, headers=None, conn=None):
        """One raw request; returns (status, body text, response headers)."""
        own = conn is None
        conn = conn or self.conn()
        try:
            if isinstance(body, str):
                body = body.encode()
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, r.read().decode(), dict(r.getheaders())
        finally:
            if own:
                conn.close()

    def json(self, method, path, body=None, headers=None):
        """(status, parsed answer); a dict or list body is sent as JSON."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            headers = dict(headers or {}, **{"Content-Type": "application/json"})
        status, text, _ = self.call(method, path, body, headers)
        return status, json.loads(text)

    def _control(self, method, path, body=None):
        status, doc = self.json(method, path, body)
        if status != 200:
            raise AssertionError("%s %s: HTTP %d %s" % (method, path, status, doc))
        return doc

    def rules(self, rules):
        """Adds failure rules (see tests/mock/mock_main.c for their fields); returns their ids."""
        return self._control("POST", "/_mock/rules", rules)["ids"]

    def reset(self):
        self._control("POST", "/_mock/reset", {})

    def clock(self, offset_ms):
        """Shifts the clock the mock's time checks use."""
        return self._control("POST", "/_mock/clock", {"offset_ms": offset_ms})

    def stats(self):
        return self._control("GET", "/_mock/stats")

    def requests(self, provider=None):
        """Every request the mock received since the last reset, oldest first."""
        return self._control("GET", "/_mock/requests" + ("?provider=" + provider if provider
                                                         else ""))["requests"]

    def accepted(self, provider=None):
        return [r for r in self.requests(provider) if r["verdict"] == "accepted"]

    def last(self):
        return self.requests()[-1]

    def stop(self, sig=signal.SIGTERM):
        """Signals the mock (SIGTERM: a clean stop) and returns its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=30 * SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def close(self):
        """Stops the mock; returns (exit status, stderr) and removes a temp dir of its own."""
        rc = self.stop()
        err = self.stderr()
        if self._tmp is not None:
            self._tmp.cleanup()
        return rc, err


class HeraldTest(unittest.TestCase):
    """A temp dir holding herald.db and herald.json; helpers to run herald in it."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="herald-e2e-")
        self.db = os.path.join(self.dir, "herald.db")
        self.pg_db = None
        if POSTGRES:
            if not PG_ADMIN:
                shutil.rmtree(self.dir, ignore_errors=True)
                self.skipTest("HERALD_BACKEND=postgres needs HERALD_TEST_PG (scripts/pg start DIR)")
            self.pg_db = "herald_e2e_%d_%d" % (os.getpid(), next(_pg_serial))
            psql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % self.pg_db)
            psql("CREATE DATABASE %s" % self.pg_db)
            self.db = pg_uri(self.pg_db)
        self.config_path = os.path.join(self.dir, "herald.json")
        self.mocks = []
        self.procs = []
        self._outputs = {}        # id(proc) -> (stdout path, stderr path) of spawned ones

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for m in self.mocks:
            rc, err = m.close()
            if rc != 0:
                raise AssertionError("mock exited %d: %s" % (rc, err))
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.pg_db:
            _pg_made.append(self.pg_db)

    def sql(self, query, *params):
        """Runs one SQL statement on the test's database, whichever the backend, with ?
        parameters: the rows as tuples (integers as int), and self.last_rowcount. For what no
        command shows, and for faults a test injects."""
        if not POSTGRES:
            import sqlite3
            con = sqlite3.connect(self.db, timeout=10)
            try:
                cur = con.execute(query, params)
                rows = cur.fetchall()
                con.commit()
                self.last_rowcount = cur.rowcount
                return rows
            finally:
                con.close()
        parts = query.split("?")
        if len(parts) != len(params) + 1:
            raise ValueError("%d parameters for %d placeholders" % (len(params), len(parts) - 1))
        text = parts[0]
        for value, part in zip(params, parts[1:]):
            if value is None:
                text += "NULL"
            elif isinstance(value, (int, float)):
                text += repr(value)
            else:
                text += "'" + str(value).replace("'", "''") + "'"
            text += part
        if text.lstrip().upper().startswith(("SELECT", "WITH")):
            import csv
            import io
            out = psql("COPY (%s) TO STDOUT WITH (FORMAT csv, NULL '\\N')" % text, self.db)
            rows = [tuple(None if v == "\\N" else int(v) if v.lstrip("-").isdigit() else v
                          for v in row) for row in csv.reader(io.StringIO(out))]
            self.last_rowcount = -1
            return rows
        p = subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=1", "-d", self.db, "-c", text],
                           capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise AssertionError("psql failed: %s" % p.stderr)
        tag = p.stdout.split()
        self.last_rowcount = int(tag[-1]) if tag and tag[-1].isdigit() else -1
        return []

    def mock(self, *args, env=None):
        m = Mock(*args, workdir=self.dir, env=env)
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
        """Starts herald in the background (herald run); the test owns the process. Its stdout
        and stderr go to files in the temp dir (read them with stdout_of / stderr_of): a pipe
        nobody reads would fill up and stall a process that logs a lot."""
        full_env = dict(os.environ)
        full_env.pop("HERALD_DB", None)
        full_env.pop("HERALD_CONFIG", None)
        full_env.update(env or {})
        n = len(self.procs)
        out_path = os.path.join(self.dir, "herald-%d.stdout" % n)
        err_path = os.path.join(self.dir, "herald-%d.stderr" % n)
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            p = subprocess.Popen([HERALD, "--db", self.db, "--config", self.config_path] + list(args),
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=full_env,
                                 cwd=self.dir)
        self.procs.append(p)
        self._outputs[id(p)] = (out_path, err_path)
        return p

    def _output_of(self, p, which):
        with open(self._outputs[id(p)][which], errors="replace") as f:
            return f.read()

    def stdout_of(self, p):
        """What a spawned herald has written to stdout so far."""
        return self._output_of(p, 0)

    def stderr_of(self, p):
        """What a spawned herald has written to stderr so far."""
        return self._output_of(p, 1)

    def status(self, key):
        return self.json("status", key)["campaigns"][0]

    def counts(self, key):
        return self.status(key)["counts"]

    def deliveries(self, key, *args):
        return self.json("deliveries", key, *args)["deliveries"]

    def attempts(self, key, *args):
        return self.json("attempts", key, *args)["attempts"]

    def db_exists(self):
        """Whether a database is there: the SQLite file, or Herald's tables on the server."""
        if POSTGRES:
            return psql("SELECT to_regclass('herald_migrations') IS NOT NULL", self.db).strip() == "t"
        return os.path.exists(self.db)

    def db_snapshot(self):
        """The database's full content, to prove a failed command wrote nothing."""
        if POSTGRES:
            # One psql run: \gexec runs the SELECT of every table the first query makes.
            p = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", self.db],
                               input="SELECT format('SELECT %L, t::text FROM %I t', tablename, "
                                     "tablename) FROM pg_tables WHERE schemaname = 'public' "
                                     "ORDER BY 1 \\gexec\n",
                               capture_output=True, text=True, timeout=60)
            if p.returncode != 0:
                raise AssertionError("psql failed: %s" % p.stderr)
            snap = {}
            for line in p.stdout.splitlines():
                table, _, row = line.partition("|")
                snap.setdefault(table, []).append(row)
            return {k: sorted(v) for k, v in snap.items()}
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
    """unittest.main, or with HERALD_SHARD=I/N (ctest's split of the longest files) the I-th of
    N shares of the file's tests, dealt in turn in name order: together the shares run every
    test once."""
    shard = os.environ.get("HERALD_SHARD")
    if not shard or len(sys.argv) > 1:
        unittest.main(verbosity=2)
        return
    i, n = (int(x) for x in shard.split("/"))
    tests = []

    def flatten(suite):
        for t in suite:
            if isinstance(t, unittest.TestSuite):
                flatten(t)
            else:
                tests.append(t)
    flatten(unittest.defaultTestLoader.loadTestsFromModule(sys.modules["__main__"]))
    tests.sort(key=lambda t: t.id())
    mine = unittest.TestSuite(tests[i - 1::n])
    result = unittest.TextTestRunner(verbosity=2).run(mine)
    sys.exit(0 if result.wasSuccessful() else 1)
