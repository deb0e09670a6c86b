#!/usr/bin/env python3
"""Herald's benchmark: import, dispatch, on-time sending, queries and memory, each figure
measured in the same run as the limit it is judged against, and reported as a ratio.

Run it with bench/run (which builds first); this file is the driver, standard library only:

    python3 bench/bench.py --build build [--quick] [--runs N] [--cap SECONDS] ...

It prints a table and, last, one JSON line of figures. The limits are measured here too:
  import    bench-raw-insert: the same rows, same SQLite, same pragmas, one transaction,
            prepared statements reused, nothing else
  dispatch  bench-raw-http: the same request bodies to the same mock server at the same
            concurrency through libcurl multi, recording nothing
  on time   bench-raw-http firing the same 1,000 requests at once: how fast the mock and this
            machine can take them at all
  queries   the targets are absolute (50 ms); the floor (`herald --version`, process start)
            is shown for scale
  rules     the same dispatch with the rules off: a frequency cap on, against it off
  fair      the big campaign draining beside the small one; the target is absolute (200 ms)
  idle      absolute: CPU < 0.5 % of a core, RSS flat; a single due delivery within 5 ms
  export    the same export of a tenth of the rows (flat memory); `herald status` shown as
            the process's baseline
  pg*       on a PostgreSQL server of its own (scripts/pg, in a new directory under /tmp; skipped
            when no server is installed): `herald import` against bench-raw-pg's COPY of the
            same rows; `herald run` on 1, 2 and 4 nodes sharing one database against
            bench-raw-pg's SKIP LOCKED claims and result writes (no HTTP) over as many
            connections; SQLite's single node and the raw HTTP client on the same input
Peak RSS and CPU time come from wait4() of each child. Targets are those of the issue; a MISS
is a finding, not an error: the exit status is 0 unless the benchmark itself broke.

test_bench_short.py (tests/e2e) drives the same functions with 2,000 deliveries as a test.
"""
import argparse
import copy
import datetime
import glob
import json
import math
import os
import random
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# One way to start and talk to herald-mock: the end-to-end tests' harness.
sys.path.insert(0, os.path.join(SRC, "tests", "e2e"))
import harness  # noqa: E402
DAY_MS = 86400 * 1000
SHANGHAI = datetime.timezone(datetime.timedelta(hours=8))
# Every generated campaign starts here, far in the future, and `run --once --now` jumps to it.
START_DATE = "2030-01-01"
STEP_TIME = "10:00"
DAY1_MS = int(datetime.datetime(2030, 1, 1, 10, 0, tzinfo=SHANGHAI).timestamp() * 1000)
DAY1_ISO = "2030-01-01T10:00:00+08:00"
EXPIRE_AFTER = "7d"
EXPIRE_AFTER_MS = 7 * DAY_MS
TEXTS = ["{{nickname|朋友}}，欢迎加入！", "{{nickname|朋友}}，您的优惠券明天到期",
         "{{nickname|朋友}}，最后一天啦"]

# The mock's Tencent account; a fixed usersig lets the raw client send exactly what Herald sends.
TIM_SDKAPPID = 1400000000
TIM_IDENTIFIER = "admin"
TIM_USERSIG = "bench-usersig"
TIM_FROM = "bench_cs"
FEIHE_PATH = "/wisdom-api/weixin/v1/sendCustomerMessage"
TIM_PATH = "/v4/desk_http_svc/send_msg"
# The rule the rules-on dispatch runs with: a frequency cap no benchmark recipient reaches.
RULES_ON = {"frequency_cap": {"max": 1000, "per": "24h"}}

FULL = dict(import_n=1_000_000, import_small=100_000, import_runs=3, dispatch_n=200_000,
            mem_small=100_000, runs=3, cap=120.0, mem_cap=300.0, ontime_n=1000, ontime_runs=2,
            query_runs=7, campaigns=100, fair_big=200_000, fair_small=20, fair_lead=5.0,
            idle_n=1_000_000, idle_window=60.0, single_trials=20, single_gap=1.5, pg_n=20_000)
QUICK = dict(import_n=100_000, import_small=10_000, import_runs=1, dispatch_n=20_000,
             mem_small=10_000, runs=1, cap=60.0, mem_cap=60.0, ontime_n=1000, ontime_runs=1,
             query_runs=3, campaigns=100, fair_big=40_000, fair_small=20, fair_lead=2.0,
             idle_n=100_000, idle_window=15.0, single_trials=20, single_gap=1.5, pg_n=10_000)
ALL_PARTS = ("import,pageindex,dispatch,dispatch256,rules,ontime,fair,idle,queries,memory,export,"
             "pgimport,pgclaims,pgdispatch")


def log(msg):
    print(time.strftime("[%H:%M:%S] ") + msg, file=sys.stderr, flush=True)


# ---- processes ---------------------------------------------------------------------------------

class Child:
    """What one finished child cost: wall seconds, CPU seconds, peak RSS (KiB), exit code,
    whether the cap stopped it, and its output."""

    def __init__(self, wall, cpu, rss_kb, rc, capped, out, err):
        self.wall = wall
        self.cpu = cpu
        self.rss_kb = rss_kb
        self.rc = rc
        self.capped = capped
        self.out = out
        self.err = err


def run_child(argv, cap=None, cwd=None, env=None, log_to=None, measure=None, discard_out=False):
    """Runs argv to completion and measures it. With cap, SIGTERM after cap seconds (Herald's
    graceful stop: it drains and records before exiting). stdout and stderr go to files (a
    chatty child must never block on a pipe) and are read back.

    With measure (bench-measure), that small program forks the child and reports its wait4
    figures, so the peak RSS is the child's own; without it, this process's wait4 is used,
    whose peak RSS includes the Python image the child was forked from (fine for tests).
    discard_out: stdout goes to /dev/null (out is then empty), for a child that writes a lot."""
    return finish_child(start_child(argv, cap=cap, cwd=cwd, env=env, log_to=log_to,
                                    measure=measure, discard_out=discard_out))


class Started:
    """A child start_child launched, until finish_child collects it."""


def start_child(argv, cap=None, cwd=None, env=None, log_to=None, measure=None, discard_out=False):
    """The first half of run_child (same arguments): starts argv and returns at once, so that
    several children can run side by side (the PostgreSQL nodes)."""
    h = Started()
    fd, h.out_path = tempfile.mkstemp(prefix="bench-out-")
    os.close(fd)
    h.log_to = log_to
    h.err_path = log_to or h.out_path + ".err"
    h.figures_path = h.out_path + ".cost"
    h.measure = measure
    h.argv = list(argv)
    full_env = dict(os.environ)
    for k in ("HERALD_DB", "HERALD_CONFIG"):
        full_env.pop(k, None)
    full_env.update(env or {})
    h.capped = []
    if measure:
        argv = [measure, h.figures_path, str(int((cap or 0) * 1000))] + list(argv)
    with open(os.devnull if discard_out else h.out_path, "wb") as out, \
            open(h.err_path, "wb") as err:
        h.t0 = time.monotonic()
        h.p = p = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                   cwd=cwd, env=full_env)
    h.timer = None
    if cap and not measure:
        def stop():
            h.capped.append(True)
            try:
                os.kill(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        h.timer = threading.Timer(cap, stop)
        h.timer.start()
    return h


def finish_child(h):
    """Waits for a child of start_child and returns its Child."""
    _, status, rusage = os.wait4(h.p.pid, 0)
    wall = time.monotonic() - h.t0
    if h.timer:
        h.timer.cancel()
    h.p.returncode = rc = os.waitstatus_to_exitcode(status)
    with open(h.out_path, encoding="utf-8", errors="replace") as f:
        out_text = f.read()
    with open(h.err_path, encoding="utf-8", errors="replace") as f:
        err_text = f.read()
    os.unlink(h.out_path)
    if not h.log_to:
        os.unlink(h.err_path)
    if h.measure:
        try:
            with open(h.figures_path) as f:
                w, cpu, rss, cap_hit = f.read().split()
            os.unlink(h.figures_path)
        except (FileNotFoundError, ValueError):
            raise RuntimeError("bench-measure failed for %s: %s" % (h.argv[0], err_text[-500:]))
        return Child(float(w), float(cpu), int(rss), rc, cap_hit == "1", out_text, err_text)
    return Child(wall, rusage.ru_utime + rusage.ru_stime, rusage.ru_maxrss, rc, bool(h.capped),
                 out_text, err_text)


def proc_cpu_s(pid):
    """CPU seconds a running process has used so far (utime + stime)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def Mock(binary, workdir, record=False, threads=2, log_file=None):
    """herald-mock with the benchmark's Tencent account: the tests' harness.Mock, started with
    the benchmark's options (no records unless asked, no log unless given a file)."""
    args = ["--threads", str(threads), "--tim-sdkappid", str(TIM_SDKAPPID),
            "--tim-identifier", TIM_IDENTIFIER, "--tim-usersig", TIM_USERSIG]
    if not record:
        args.append("--no-record")
    mock = harness.Mock(*args, workdir=workdir, binary=binary, log=log_file, timeout=60)
    mock.cpu_s = lambda: proc_cpu_s(mock.proc.pid)
    return mock


# ---- inputs ------------------------------------------------------------------------------------

def gen_csv(path, n, prefix, seed=5):
    """n recipients with a fixed seed: id (openId-like, 28 chars), nickname, city."""
    rnd = random.Random(seed)
    width = 28 - len(prefix)
    with open(path, "w", encoding="utf-8") as f:
        f.write("id,nickname,city\n")
        for i in range(n):
            f.write("%s%0*d,会员%d,城市%d\n" % (prefix, width, i, rnd.randrange(100000),
                                              rnd.randrange(300)))


def read_csv(path):
    """[(id, nickname)] of a gen_csv file."""
    rows = []
    with open(path, encoding="utf-8") as f:
        next(f)
        for line in f:
            rid, nick, _ = line.rstrip("\n").split(",")
            rows.append((rid, nick))
    return rows


def campaign(key, channel, steps=1, recipients_file=None, recipients=None, timezone="Asia/Shanghai",
             start_date=START_DATE, time_hhmm=STEP_TIME):
    doc = {"key": key, "name": key, "channel": channel, "timezone": timezone,
           "start_date": start_date, "expire_after": EXPIRE_AFTER,
           "steps": [{"day": i + 1, "time": time_hhmm,
                      "message": {"type": "text", "text": TEXTS[i % len(TEXTS)]}}
                     for i in range(steps)]}
    if recipients_file:
        doc["recipients_file"] = recipients_file
    if recipients:
        doc["recipients"] = recipients
    return doc


def channels(mock_url, concurrency, extra=None):
    """The two channels the benchmark sends on; extra: options added to each (a rule)."""
    url = mock_url or "http://127.0.0.1:9"
    doc = {"channels": {
        "fh": {"provider": "feihe", "base_url": url, "system": "NEW_MEMBER",
               "max_in_flight": concurrency},
        "tim": {"provider": "tencent_desk", "base_url": url, "sdkappid": TIM_SDKAPPID,
                "identifier": TIM_IDENTIFIER, "usersig": TIM_USERSIG, "from_account": TIM_FROM,
                "max_in_flight": concurrency}}}
    for ch in doc["channels"].values():
        ch.update(extra or {})
    return doc


def write_json(path, doc):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False)
    return path


def render(text, nick):
    """The benchmark's messages have one placeholder, {{nickname|default}}."""
    head, rest = text.split("{{", 1)
    _, tail = rest.split("}}", 1)
    return head + nick + tail


def feihe_line(base, rid, text):
    body = json.dumps({"openId": rid, "msg": text}, ensure_ascii=False, separators=(",", ":"))
    return "%s%s\tsystem: NEW_MEMBER\tContent-Type: application/json\t%s\n" % (base, FEIHE_PATH, body)


def tim_line(base, rid, text, msg_random, url_random):
    body = json.dumps({"FromAccount": TIM_FROM, "ToAccount": rid, "MsgRandom": msg_random,
                       "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": text}}]},
                      ensure_ascii=False, separators=(",", ":"))
    url = "%s%s?sdkappid=%d&identifier=%s&usersig=%s&random=%d&contenttype=json" % (
        base, TIM_PATH, TIM_SDKAPPID, TIM_IDENTIFIER, TIM_USERSIG, url_random)
    return "%s\tContent-Type: application/json\t%s\n" % (url, body)


def request_file(path, base, feihe_rows, tim_rows, seed=7):
    """The requests Herald makes for the dispatch campaigns, one per line for bench-raw-http,
    Feihe and Tencent interleaved as Herald's two channels run side by side."""
    rnd = random.Random(seed)
    text = TEXTS[0]
    with open(path, "w", encoding="utf-8") as f:
        for i in range(max(len(feihe_rows), len(tim_rows))):
            if i < len(feihe_rows):
                rid, nick = feihe_rows[i]
                f.write(feihe_line(base, rid, render(text, nick)))
            if i < len(tim_rows):
                rid, nick = tim_rows[i]
                f.write(tim_line(base, rid, render(text, nick), rnd.getrandbits(32),
                                 rnd.getrandbits(32)))


# ---- the environment ---------------------------------------------------------------------------

class Env:
    """Binaries and a work directory; helpers that run herald there."""

    def __init__(self, herald, mock, raw_insert, raw_http, work, concurrency=32, mock_threads=2,
                 measure=None, raw_pg=None):
        self.herald = os.path.abspath(herald)
        self.mock_bin = os.path.abspath(mock)
        self.raw_insert = os.path.abspath(raw_insert)
        self.raw_http = os.path.abspath(raw_http)
        self.raw_pg = os.path.abspath(raw_pg) if raw_pg else None
        self.measure = os.path.abspath(measure) if measure else None
        self.work = work
        self.concurrency = concurrency
        self.mock_threads = mock_threads

    def path(self, name):
        return os.path.join(self.work, name)

    def run(self, argv, **kw):
        """run_child in the work directory, measured by bench-measure when there is one."""
        kw.setdefault("cwd", self.work)
        return run_child(argv, measure=self.measure, **kw)

    def start(self, argv, **kw):
        """As run, but returns at once (start_child); finish_child collects it."""
        kw.setdefault("cwd", self.work)
        return start_child(argv, measure=self.measure, **kw)

    def herald_cmd(self, db, config, *args):
        return [self.herald, "--db", db, "--config", config] + list(args)

    def herald_ok(self, db, config, *args):
        c = self.run(self.herald_cmd(db, config, *args))
        if c.rc != 0:
            raise RuntimeError("herald %s exited %d: %s" % (" ".join(args), c.rc, c.err[-2000:]))
        return c

    def migrated_db(self, name, config):
        db = self.path(name)
        remove_db(db)
        self.herald_ok(db, config, "migrate")
        return db

    def counts(self, db, config, key):
        c = self.herald_ok(db, config, "status", key, "--json")
        return json.loads(c.out)["campaigns"][0]["counts"]


def herald_pragmas():
    """The pragmas src/store/sqlite/sqlite.c sets on every connection, for the raw insert to use too."""
    with open(os.path.join(SRC, "src", "store", "sqlite", "sqlite.c"), encoding="utf-8") as f:
        found = re.findall(r"PRAGMA (\w+) = (\w+)", f.read())
    seen = {}
    for k, v in found:
        seen.setdefault(k, v)
    return " ".join("PRAGMA %s = %s;" % kv for kv in seen.items())


def remove_db(db):
    for suffix in ("", "-wal", "-shm", "-runners.lock"):
        try:
            os.unlink(db + suffix)
        except FileNotFoundError:
            pass


def checkpoint(db):
    """Folds the WAL into the file so a plain copy of it is the whole database."""
    con = sqlite3.connect(db)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()


def copy_db(src, dst):
    remove_db(dst)
    shutil.copyfile(src, dst)


def median(xs):
    return statistics.median(xs) if xs else None


# ---- 1. import ---------------------------------------------------------------------------------

def import_once(env, csv_name, n, steps, herald_side, keep_as=None, drop_index=None):
    """One import of csv_name (n rows) into a fresh migrated database, by herald or by the raw
    limit. Returns the Child; checks every row arrived. drop_index: an index dropped from the
    migrated schema first, to measure what keeping it costs an import."""
    config = env.path("import.json")
    db = env.migrated_db("import-%s.db" % ("herald" if herald_side else "raw"), config)
    if drop_index:
        con = sqlite3.connect(db)
        try:
            con.execute("DROP INDEX " + drop_index)
            con.commit()
        finally:
            con.close()
    if herald_side:
        c = env.run(env.herald_cmd(db, config, "import", env.path("import-%s.def.json" % csv_name)))
        if c.rc != 0:
            raise RuntimeError("herald import exited %d: %s" % (c.rc, c.err[-2000:]))
    else:
        due = [str(DAY1_MS + i * DAY_MS) for i in range(steps)]
        c = env.run([env.raw_insert, db, env.path(csv_name), str(EXPIRE_AFTER_MS)] + due,
                    env={"BENCH_PRAGMAS": herald_pragmas()})
        if c.rc != 0:
            raise RuntimeError("bench-raw-insert exited %d: %s" % (c.rc, c.err[-2000:]))
    con = sqlite3.connect(db)
    try:
        got = con.execute("SELECT coalesce(sum(n), 0) FROM delivery_counts").fetchone()[0]
    finally:
        con.close()
    if got != n * steps:
        raise RuntimeError("import wrote %d deliveries, not %d" % (got, n * steps))
    if keep_as:
        checkpoint(db)
        copy_db(db, env.path(keep_as))
    remove_db(db)
    return c


def prepare_import(env, n, name, steps=3):
    """The CSV and its 3-step campaign definition."""
    csv_name = "%s.csv" % name
    if not os.path.exists(env.path(csv_name)):
        gen_csv(env.path(csv_name), n, "oBench")
    write_json(env.path("import-%s.def.json" % csv_name),
               campaign("bench-" + name, "fh", steps=steps, recipients_file=csv_name))
    write_json(env.path("import.json"), channels(None, env.concurrency))
    return csv_name


def bench_import(env, n, runs, name, keep_as=None):
    """Herald and the raw limit, alternating, runs times each."""
    csv_name = prepare_import(env, n, name)
    herald, raw = [], []
    for r in range(runs):
        c = import_once(env, csv_name, n, 3, True, keep_as=keep_as if r == runs - 1 else None)
        log("import %d recipients, run %d/%d: herald %.1f s, %.1f MB peak RSS" % (
            n, r + 1, runs, c.wall, c.rss_kb / 1024))
        herald.append(c)
        c = import_once(env, csv_name, n, 3, False)
        log("import %d recipients, run %d/%d: raw insert %.1f s" % (n, r + 1, runs, c.wall))
        raw.append(c)
    hw, rw = median([c.wall for c in herald]), median([c.wall for c in raw])
    return {"recipients": n, "deliveries": 3 * n, "runs": runs,
            "herald_s": hw, "raw_s": rw,
            "herald_per_s": 3 * n / hw, "raw_per_s": 3 * n / rw, "ratio": rw / hw,
            "herald_cpu_s": median([c.cpu for c in herald]),
            "herald_rss_mb": max(c.rss_kb for c in herald) / 1024,
            "raw_rss_mb": max(c.rss_kb for c in raw) / 1024}


def bench_page_index(env, n, runs, name):
    """What the (campaign_id, due_at_ms, id) index of `deliveries` pages costs an import: herald
    importing n recipients with it and without it, alternating."""
    csv_name = prepare_import(env, n, name)
    with_, without = [], []
    for r in range(runs):
        with_.append(import_once(env, csv_name, n, 3, True).wall)
        without.append(import_once(env, csv_name, n, 3, True, drop_index="deliveries_due").wall)
        log("import %d recipients, run %d/%d: %.1f s with the page index, %.1f s without" % (
            n, r + 1, runs, with_[-1], without[-1]))
    w, wo = median(with_), median(without)
    return {"recipients": n, "deliveries": 3 * n, "runs": runs, "with_s": w, "without_s": wo,
            "cost": w / wo - 1}


# ---- 2. dispatch -------------------------------------------------------------------------------

def setup_dispatch(env, n_feihe, n_tim, mock_url, name="dispatch"):
    """Two campaigns due at DAY1 (Feihe and Tencent, one step each) imported into a template
    database, the config pointing at mock_url, and the raw client's request file.
    Returns (template db, config, request file, feihe rows, tencent rows)."""
    config = write_json(env.path("%s.json" % name), channels(mock_url, env.concurrency))
    db = env.migrated_db("%s-template.db" % name, config)
    gen_csv(env.path("%s-feihe.csv" % name), n_feihe, "oFeihe", seed=11)
    gen_csv(env.path("%s-tim.csv" % name), n_tim, "uTim", seed=12)
    for key, chan, csv_name in (("bench-feihe", "fh", "%s-feihe.csv" % name),
                                ("bench-tim", "tim", "%s-tim.csv" % name)):
        write_json(env.path("%s.def.json" % key), campaign(key, chan, recipients_file=csv_name))
        env.herald_ok(db, config, "import", env.path("%s.def.json" % key))
    checkpoint(db)
    feihe_rows = read_csv(env.path("%s-feihe.csv" % name))
    tim_rows = read_csv(env.path("%s-tim.csv" % name))
    reqs = env.path("%s-requests.txt" % name)
    request_file(reqs, mock_url, feihe_rows, tim_rows)
    return db, config, reqs, feihe_rows, tim_rows


def dispatch_herald_once(env, template, config, mock, keys, cap=None, db_name="dispatch-run.db",
                         log_to=None):
    """`herald run --once` at DAY1 on a fresh copy of template. Returns (Child, counts per key,
    mock CPU seconds, mock feihe+tencent accepted)."""
    db = env.path(db_name)
    copy_db(template, db)
    mock.reset()
    cpu0 = mock.cpu_s()
    c = env.run(env.herald_cmd(db, config, "run", "--once", "--now", DAY1_ISO), cap=cap,
                log_to=log_to)
    mock_cpu = mock.cpu_s() - cpu0
    if c.rc != 0:
        raise RuntimeError("herald run exited %d: %s" % (c.rc, c.err[-2000:]))
    counts = {k: env.counts(db, config, k) for k in keys}
    st = mock.stats()["providers"]
    accepted = st["feihe"]["accepted"] + st["tencent_desk"]["accepted"]
    return c, counts, mock_cpu, accepted, db


def dispatch_raw_once(env, reqs, mock, concurrency):
    mock.reset()
    cpu0 = mock.cpu_s()
    c = env.run([env.raw_http, str(concurrency), reqs])
    mock_cpu = mock.cpu_s() - cpu0
    if c.rc != 0:
        raise RuntimeError("bench-raw-http exited %d: %s %s" % (c.rc, c.out, c.err[-2000:]))
    st = mock.stats()["providers"]
    return c, mock_cpu, st["feihe"]["accepted"] + st["tencent_desk"]["accepted"]


def check_durable(counts, total, capped):
    """Every delivery is sent, or (after a capped run) still pending; none left in flight."""
    sent = sum(c["sent"] for c in counts.values())
    pending = sum(c["pending"] for c in counts.values())
    if any(c["sending"] for c in counts.values()):
        raise RuntimeError("deliveries left 'sending' after herald exited: %r" % counts)
    if sent + pending != total or (not capped and sent != total):
        raise RuntimeError("dispatch ended with %r, expected %d sent" % (counts, total))
    return sent


def with_concurrency(env, concurrency):
    """env with another max_in_flight per channel (the same binaries and work directory)."""
    other = copy.copy(env)
    other.concurrency = concurrency
    return other


def bench_dispatch(env, n, runs, cap, concurrency=None, name="dispatch"):
    """`herald run --once` sending n deliveries (half Feihe, half Tencent) with concurrency
    (default env's) in flight per channel, against the raw client with twice that in flight,
    alternating, runs times each."""
    env = with_concurrency(env, concurrency or env.concurrency)
    half = n // 2
    mock = Mock(env.mock_bin, env.work, record=False, threads=env.mock_threads)
    try:
        template, config, reqs, _, _ = setup_dispatch(env, half, n - half, mock.url, name=name)
        herald, raw = [], []
        for r in range(runs):
            c, counts, mock_cpu, accepted, db = dispatch_herald_once(
                env, template, config, mock, ("bench-feihe", "bench-tim"), cap=cap)
            sent = check_durable(counts, n, c.capped)
            if accepted != sent:
                raise RuntimeError("mock accepted %d, herald recorded %d sent" % (accepted, sent))
            remove_db(db)
            herald.append(dict(wall=c.wall, sent=sent, rate=sent / c.wall, cpu=c.cpu,
                               rss=c.rss_kb / 1024, capped=c.capped, mock_cpu=mock_cpu))
            log("dispatch %d, run %d/%d: herald %d sent in %.1f s%s (%.0f/s, %.0f us CPU each)" % (
                n, r + 1, runs, sent, c.wall, " (capped)" if c.capped else "", sent / c.wall,
                1e6 * c.cpu / max(sent, 1)))
            c, mock_cpu, accepted = dispatch_raw_once(env, reqs, mock, 2 * env.concurrency)
            if accepted != n:
                raise RuntimeError("mock accepted %d of the raw client's %d" % (accepted, n))
            raw.append(dict(wall=c.wall, rate=n / c.wall, cpu=c.cpu, rss=c.rss_kb / 1024,
                            mock_cpu=mock_cpu))
            log("dispatch %d, run %d/%d: raw client %.1f s (%.0f/s)" % (
                n, r + 1, runs, c.wall, n / c.wall))
    finally:
        mock.stop()
    hr, rr = median([h["rate"] for h in herald]), median([x["rate"] for x in raw])
    return {"deliveries": n, "runs": runs, "concurrency_per_channel": env.concurrency,
            "capped_runs": sum(1 for h in herald if h["capped"]), "cap_s": cap,
            "sent_median": median([h["sent"] for h in herald]),
            "herald_per_s": hr, "raw_per_s": rr, "ratio": hr / rr,
            "herald_cpu_us": median([1e6 * h["cpu"] / max(h["sent"], 1) for h in herald]),
            "raw_cpu_us": median([1e6 * x["cpu"] / n for x in raw]),
            "mock_cpu_us_herald": median([1e6 * h["mock_cpu"] / max(h["sent"], 1) for h in herald]),
            "mock_cpu_us_raw": median([1e6 * x["mock_cpu"] / n for x in raw]),
            "herald_rss_mb": max(h["rss"] for h in herald),
            "raw_rss_mb": max(x["rss"] for x in raw)}


def bench_rules(env, n, runs, cap):
    """`herald run --once` sending the dispatch campaigns with the audience rules on (a
    frequency cap on both channels, generous enough that nothing defers) and off, alternating,
    runs times each. Feihe and Tencent have no per-account rule of their own to switch; SaiNiu's
    7-day rule cannot be switched off, so it has no "off" to compare with."""
    half = n // 2
    mock = Mock(env.mock_bin, env.work, record=False, threads=env.mock_threads)
    try:
        template, config_off, _, _, _ = setup_dispatch(env, half, n - half, mock.url, name="rules")
        config_on = write_json(env.path("rules-on.json"), channels(mock.url, env.concurrency,
                                                                   extra=RULES_ON))
        side = {"on": [], "off": []}
        for r in range(runs):
            for which, config in (("off", config_off), ("on", config_on)):
                c, counts, _, accepted, db = dispatch_herald_once(
                    env, template, config, mock, ("bench-feihe", "bench-tim"), cap=cap,
                    db_name="rules-run.db")
                sent = check_durable(counts, n, c.capped)
                if accepted != sent:
                    raise RuntimeError("mock accepted %d, herald recorded %d sent" % (accepted, sent))
                con = sqlite3.connect(db)
                try:
                    capped_rows = con.execute("SELECT count(*) FROM cap_sends").fetchone()[0]
                finally:
                    con.close()
                # The proof the rule was on: the claim recorded every send against the cap.
                if (which == "on") != (capped_rows == sent):
                    raise RuntimeError("rules %s: %d cap rows for %d sent" % (which, capped_rows, sent))
                remove_db(db)
                side[which].append(dict(rate=sent / c.wall, cpu=c.cpu, sent=sent, capped=c.capped))
                log("rules %s, run %d/%d: %d sent in %.1f s%s (%.0f/s, %.0f us CPU each)" % (
                    which, r + 1, runs, sent, c.wall, " (capped)" if c.capped else "",
                    sent / c.wall, 1e6 * c.cpu / max(sent, 1)))
    finally:
        mock.stop()
    on, off = median([x["rate"] for x in side["on"]]), median([x["rate"] for x in side["off"]])
    return {"deliveries": n, "runs": runs, "concurrency_per_channel": env.concurrency,
            "rule": RULES_ON, "on_per_s": on, "off_per_s": off, "ratio": on / off,
            "capped_runs": sum(1 for x in side["on"] + side["off"] if x["capped"]),
            "on_cpu_us": median([1e6 * x["cpu"] / max(x["sent"], 1) for x in side["on"]]),
            "off_cpu_us": median([1e6 * x["cpu"] / max(x["sent"], 1) for x in side["off"]])}


# ---- 3. on time --------------------------------------------------------------------------------

def percentiles(xs):
    xs = sorted(xs)

    def pct(p):  # nearest rank
        return xs[max(0, math.ceil(p / 100.0 * len(xs)) - 1)]
    return {"p50": pct(50), "p99": pct(99), "max": xs[-1], "n": len(xs)}


def bench_ontime(env, n, runs):
    """n deliveries due at the same minute, runs times a minute apart, in one long-running
    `herald run`; then the raw client firing the same n requests at once."""
    mock = Mock(env.mock_bin, env.work, record=True, threads=env.mock_threads)
    proc = None
    try:
        config = write_json(env.path("ontime.json"), channels(mock.url, env.concurrency))
        db = env.migrated_db("ontime.db", config)
        first = (int(time.time()) // 60 + 1) * 60
        if first - time.time() < 15:
            first += 60
        dues = []
        for r in range(runs):
            due = first + 60 * r
            dues.append(due * 1000)
            at = datetime.datetime.fromtimestamp(due, datetime.timezone.utc)
            prefix = "oOnTime%d_" % r
            gen_csv(env.path("ontime-%d.csv" % r), n, prefix, seed=20 + r)
            write_json(env.path("ontime-%d.def.json" % r),
                       campaign("bench-ontime-%d" % r, "fh", recipients_file="ontime-%d.csv" % r,
                                timezone="UTC", start_date=at.strftime("%Y-%m-%d"),
                                time_hhmm=at.strftime("%H:%M")))
            env.herald_ok(db, config, "import", env.path("ontime-%d.def.json" % r))
        mock.reset()
        with open(env.path("ontime-herald.log"), "wb") as herald_log:
            proc = subprocess.Popen(env.herald_cmd(db, config, "run"), cwd=env.work,
                                    stdout=subprocess.DEVNULL, stderr=herald_log)
        log("on time: %d runs of %d deliveries due at %s (UTC), a minute apart; waiting" % (
            runs, n, time.strftime("%H:%M:%S", time.gmtime(first))))
        deadline = time.time() + (first - time.time()) + 60 * (runs - 1) + 60
        while mock.stats()["providers"]["feihe"]["accepted"] < n * runs:
            if proc.poll() is not None:
                raise RuntimeError("herald run exited %d" % proc.returncode)
            if time.time() > deadline:
                raise RuntimeError("on time: not every delivery arrived within a minute")
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        proc = None
        recs = [x for x in mock.requests("feihe") if x["verdict"] == "accepted"]
        herald = []
        for r in range(runs):
            prefix = "oOnTime%d_" % r
            lat = [x["received_at_ms"] - dues[r] for x in recs if x["key"].startswith(prefix)]
            if len(lat) != n:
                raise RuntimeError("on time run %d: %d of %d arrived" % (r, len(lat), n))
            herald.append(percentiles(lat))
            log("on time run %d/%d: herald p50 %d ms, p99 %d ms, max %d ms" % (
                r + 1, runs, herald[-1]["p50"], herald[-1]["p99"], herald[-1]["max"]))
        # The limit: the same requests fired at once, at the same concurrency, by the raw client.
        rows = read_csv(env.path("ontime-0.csv"))
        reqs = env.path("ontime-requests.txt")
        with open(reqs, "w", encoding="utf-8") as f:
            for rid, nick in rows:
                f.write(feihe_line(mock.url, rid, render(TEXTS[0], nick)))
        raw = []
        for r in range(runs):
            mock.reset()
            t0 = time.time() * 1000
            c = env.run([env.raw_http, str(env.concurrency), reqs])
            if c.rc != 0:
                raise RuntimeError("bench-raw-http exited %d" % c.rc)
            lat = [x["received_at_ms"] - t0 for x in mock.requests("feihe")]
            raw.append(percentiles(lat))
            log("on time run %d/%d: raw client p50 %d ms, p99 %d ms, max %d ms" % (
                r + 1, runs, raw[-1]["p50"], raw[-1]["p99"], raw[-1]["max"]))
    finally:
        if proc:
            proc.kill()
            proc.wait()
        mock.stop()
    out = {"deliveries": n, "runs": runs, "concurrency": env.concurrency}
    for k in ("p50", "p99", "max"):
        out["herald_" + k + "_ms"] = median([h[k] for h in herald])
        out["raw_" + k + "_ms"] = median([x[k] for x in raw])
    return out


# ---- 4. queries --------------------------------------------------------------------------------

def time_cmd(env, argv, runs):
    """Median wall ms of argv over runs, after one warm-up run."""
    env.run(argv)
    walls = []
    for _ in range(runs):
        c = env.run(argv)
        if c.rc != 0:
            raise RuntimeError("%s exited %d: %s" % (" ".join(argv), c.rc, c.err[-500:]))
        walls.append(c.wall * 1000)
    return median(walls)


def bench_queries(env, big_db, big_key, n_campaigns, runs):
    """On the big import's database: 1 delivery in 1,000 marked failed, n_campaigns - 1 small
    campaigns added, then the three commands of the issue."""
    config = env.path("import.json")
    con = sqlite3.connect(big_db)
    try:
        con.execute("UPDATE deliveries SET state = 'failed', last_error = 'bench: marked failed' "
                    "WHERE id % 1000 = 0")
        con.commit()
        total = con.execute("SELECT sum(n) FROM delivery_counts").fetchone()[0]
    finally:
        con.close()
    for i in range(n_campaigns - 1):
        recips = [{"id": "oQuery%03d_%02d" % (i, j), "vars": {"nickname": "q%d" % j}}
                  for j in range(10)]
        path = write_json(env.path("query-%03d.def.json" % i),
                          campaign("bench-q-%03d" % i, "fh", recipients=recips))
        env.herald_ok(big_db, config, "import", path)
    checkpoint(big_db)
    out = {"deliveries": total, "campaigns": n_campaigns, "runs": runs}
    out["floor_ms"] = time_cmd(env, [env.herald, "--version"], runs)
    # A cursor from the middle of the big campaign, as `deliveries` prints it (cli_show.c:
    # due time and id in hex), for a page that starts deep in the index.
    con = sqlite3.connect(big_db)
    try:
        due, did = con.execute(
            "SELECT d.due_at_ms, d.id FROM deliveries d JOIN campaigns c ON c.id = d.campaign_id "
            "WHERE c.key = ? ORDER BY d.due_at_ms, d.id LIMIT 1 OFFSET ?",
            (big_key, total // 2)).fetchone()
    finally:
        con.close()
    mid = "%x-%x" % (due, did)
    cmds = {"status_key_json": ("status", big_key, "--json"),
            "deliveries_failed_100": ("deliveries", big_key, "--state", "failed", "--limit", "100"),
            "deliveries_page_100": ("deliveries", big_key, "--limit", "100"),
            "deliveries_page_100_mid": ("deliveries", big_key, "--limit", "100", "--after", mid),
            "status_all": ("status",)}
    for name, args in cmds.items():
        out[name + "_ms"] = time_cmd(env, env.herald_cmd(big_db, config, *args), runs)
        log("query %s: %.1f ms" % (" ".join(args), out[name + "_ms"]))
    return out


# ---- 5. memory ---------------------------------------------------------------------------------

def dispatch_rss(env, template, n, cap):
    """Peak RSS of `herald run --once` sending step 1 (n deliveries) of a kept import database."""
    mock = Mock(env.mock_bin, env.work, record=False, threads=env.mock_threads)
    try:
        config = write_json(env.path("mem.json"), channels(mock.url, env.concurrency))
        c, counts, _, accepted, db = dispatch_herald_once(env, template, config, mock,
                                                          [k for k in counts_keys(template)],
                                                          cap=cap, db_name="mem-run.db")
        sent = sum(x["sent"] for x in counts.values())
        if any(x["sending"] for x in counts.values()) or accepted != sent:
            raise RuntimeError("memory dispatch: %r, mock accepted %d" % (counts, accepted))
        remove_db(db)
    finally:
        mock.stop()
    log("dispatch of %d due: %d sent in %.1f s%s, %.1f MB peak RSS" % (
        n, sent, c.wall, " (capped)" if c.capped else "", c.rss_kb / 1024))
    return {"due": n, "sent": sent, "wall_s": c.wall, "capped": c.capped, "rss_mb": c.rss_kb / 1024}


def counts_keys(db):
    con = sqlite3.connect(db)
    try:
        # Every campaign: the query benchmark's small ones are due at the same instant too.
        return [r[0] for r in con.execute("SELECT key FROM campaigns")]
    finally:
        con.close()


# ---- 6. fairness, idling and export ------------------------------------------------------------

def utc_campaign_at(key, at_s, **kw):
    """A one-step Feihe campaign due at at_s (a whole minute, epoch seconds), in UTC."""
    at = datetime.datetime.fromtimestamp(at_s, datetime.timezone.utc)
    return campaign(key, "fh", timezone="UTC", start_date=at.strftime("%Y-%m-%d"),
                    time_hhmm=at.strftime("%H:%M"), **kw)


def log_records(path, prefix):
    """(key, received_at_ms) of the accepted requests in a mock --log file whose key starts
    with prefix."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if prefix not in line:
                continue
            r = json.loads(line)
            if r["verdict"] == "accepted" and r["key"].startswith(prefix):
                out.append((r["key"], r["received_at_ms"]))
    return out


def stop_herald(proc):
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    if proc.returncode != 0:
        raise RuntimeError("herald run exited %d" % proc.returncode)


def bench_fair(env, n_big, n_small, lead, cap):
    """A big Feihe campaign, already due, drains at full speed through one long-running
    `herald run`; while it drains, a second campaign of n_small deliveries on the same channel
    is imported, due at the next minute boundary (the run starts lead seconds before it). Lag
    is the mock's received_at_ms minus that due time."""
    mock_log = env.path("fair-mock.log")
    if os.path.exists(mock_log):
        os.unlink(mock_log)
    mock = Mock(env.mock_bin, env.work, record=False, threads=env.mock_threads, log_file=mock_log)
    proc = None
    try:
        config = write_json(env.path("fair.json"), channels(mock.url, env.concurrency))
        db = env.migrated_db("fair.db", config)
        gen_csv(env.path("fair-big.csv"), n_big, "oFairBig", seed=31)
        write_json(env.path("fair-big.def.json"),
                   utc_campaign_at("bench-fair-big", (int(time.time()) // 60 - 1) * 60,
                                   recipients_file="fair-big.csv"))
        env.herald_ok(db, config, "import", env.path("fair-big.def.json"))
        due = (int(time.time() + lead + 2) // 60 + 1) * 60
        small = write_json(env.path("fair-small.def.json"), utc_campaign_at(
            "bench-fair-small", due, recipients=[{"id": "oFairSmall%02d" % i,
                                                  "vars": {"nickname": "s%d" % i}}
                                                 for i in range(n_small)]))
        log("fair: %d deliveries already due; %d more due at %s (UTC), the run starting %.0f s "
            "before" % (n_big, n_small, time.strftime("%H:%M:%S", time.gmtime(due)), lead))
        time.sleep(max(0.0, due - lead - time.time()))
        with open(env.path("fair-herald.log"), "wb") as herald_log:
            proc = subprocess.Popen(env.herald_cmd(db, config, "run"), cwd=env.work,
                                    stdout=subprocess.DEVNULL, stderr=herald_log)
        # The small campaign is imported once the big one is on the wire.
        while mock.stats()["providers"]["feihe"]["accepted"] < min(1000, n_big):
            if proc.poll() is not None:
                raise RuntimeError("herald run exited %d" % proc.returncode)
            time.sleep(0.05)
        imported_at = time.time()
        env.herald_ok(db, config, "import", small)
        log("fair: small campaign imported %.1f s before its due time, in %.2f s" % (
            due - imported_at, time.time() - imported_at))
        deadline = time.time() + cap
        while mock.stats()["providers"]["feihe"]["accepted"] < n_big + n_small:
            if proc.poll() is not None:
                raise RuntimeError("herald run exited %d" % proc.returncode)
            if time.time() > deadline:
                raise RuntimeError("fair: not everything arrived within %.0f s" % cap)
            time.sleep(0.2)
        stop_herald(proc)
        proc = None
    finally:
        if proc:
            proc.kill()
            proc.wait()
        mock.stop()
    small_recs = log_records(mock_log, "oFairSmall")
    big_at = sorted(t for _, t in log_records(mock_log, "oFairBig"))
    if len(small_recs) != n_small or len(big_at) != n_big:
        raise RuntimeError("fair: %d of %d small, %d of %d big arrived" % (
            len(small_recs), n_small, len(big_at), n_big))
    lags = [t - due * 1000 for _, t in small_recs]
    last_small = max(t for _, t in small_recs)
    p = percentiles(lags)
    out = {"big": n_big, "small": n_small, "concurrency": env.concurrency,
           "imported_ahead_s": due - imported_at,
           "p50_ms": p["p50"], "p99_ms": p["p99"], "max_ms": p["max"],
           "big_per_s": n_big / max((big_at[-1] - big_at[0]) / 1000.0, 1e-3),
           "big_after_small": sum(1 for t in big_at if t > last_small),
           "big_before_due": sum(1 for t in big_at if t < due * 1000)}
    out["under_load"] = out["big_after_small"] > 0 and out["big_before_due"] > 0
    log("fair: small p50 %d ms, p99 %d ms, max %d ms; big %.0f/s, %d of it before the due time "
        "and %d after the last small one" % (p["p50"], p["p99"], p["max"], out["big_per_s"],
                                             out["big_before_due"], out["big_after_small"]))
    return out


def proc_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def bench_idle(env, n, window, trials, gap):
    """`herald run` holding n future deliveries and nothing due: its CPU (utime + stime from
    /proc) over window seconds, RSS at the start and end of it. Then, on the same database, a
    new `herald run` with trials single deliveries due gap seconds apart, one at a time while
    it idles between them; lag = the mock's received_at_ms minus the due time.

    A step's time has whole minutes, so the single deliveries' due times (gap seconds apart)
    are written into their rows directly, before the run starts, as an import would write them:
    due, next attempt and expiry."""
    mock = Mock(env.mock_bin, env.work, record=True, threads=env.mock_threads)
    proc = None
    try:
        config = write_json(env.path("idle.json"), channels(mock.url, env.concurrency))
        db = env.migrated_db("idle.db", config)
        gen_csv(env.path("idle.csv"), n, "oIdle", seed=41)
        write_json(env.path("idle.def.json"),
                   campaign("bench-idle", "fh", recipients_file="idle.csv"))
        write_json(env.path("single.def.json"), campaign(
            "bench-single", "fh", recipients=[{"id": "oSingle%02d" % i,
                                               "vars": {"nickname": "s%d" % i}}
                                              for i in range(trials)]))
        env.herald_ok(db, config, "import", env.path("idle.def.json"))
        env.herald_ok(db, config, "import", env.path("single.def.json"))
        checkpoint(db)
        with open(env.path("idle-herald.log"), "wb") as herald_log:
            proc = subprocess.Popen(env.herald_cmd(db, config, "run"), cwd=env.work,
                                    stdout=subprocess.DEVNULL, stderr=herald_log)
        time.sleep(3)  # past start-up
        if proc.poll() is not None:
            raise RuntimeError("herald run exited %d" % proc.returncode)
        t0, cpu0, rss0 = time.monotonic(), proc_cpu_s(proc.pid), proc_rss_kb(proc.pid)
        rss_max = rss0
        while time.monotonic() - t0 < window:
            time.sleep(min(1.0, max(0.0, window - (time.monotonic() - t0))))
            rss_max = max(rss_max, proc_rss_kb(proc.pid))
        t1, cpu1, rss1 = time.monotonic(), proc_cpu_s(proc.pid), proc_rss_kb(proc.pid)
        stop_herald(proc)
        proc = None
        out = {"future": n, "window_s": t1 - t0, "cpu_s": cpu1 - cpu0,
               "cpu_pct": 100 * (cpu1 - cpu0) / (t1 - t0), "rss_start_mb": rss0 / 1024,
               "rss_end_mb": rss1 / 1024, "rss_max_mb": rss_max / 1024,
               "tick_s": 1.0 / os.sysconf("SC_CLK_TCK")}
        log("idle: %.3f s CPU in %.1f s (%.3f %% of a core); RSS %.1f MB -> %.1f MB (max %.1f)" % (
            out["cpu_s"], out["window_s"], out["cpu_pct"], out["rss_start_mb"],
            out["rss_end_mb"], out["rss_max_mb"]))

        base = int(time.time() * 1000) + 3000
        dues = {}
        con = sqlite3.connect(db)
        try:
            ids = con.execute(
                "SELECT d.id, r.rid FROM deliveries d JOIN recipients r ON r.id = d.recipient_id "
                "JOIN campaigns c ON c.id = d.campaign_id WHERE c.key = 'bench-single' "
                "ORDER BY r.rid").fetchall()
            for i, (did, rid) in enumerate(ids):
                at = base + int(i * gap * 1000)
                dues[rid] = at
                con.execute("UPDATE deliveries SET due_at_ms = ?, next_at_ms = ?, "
                            "expires_at_ms = ? WHERE id = ?", (at, at, at + EXPIRE_AFTER_MS, did))
            con.commit()
        finally:
            con.close()
        mock.reset()
        with open(env.path("single-herald.log"), "wb") as herald_log:
            proc = subprocess.Popen(env.herald_cmd(db, config, "run"), cwd=env.work,
                                    stdout=subprocess.DEVNULL, stderr=herald_log)
        deadline = base / 1000.0 + trials * gap + 15
        while mock.stats()["providers"]["feihe"]["accepted"] < trials:
            if proc.poll() is not None:
                raise RuntimeError("herald run exited %d" % proc.returncode)
            if time.time() > deadline:
                raise RuntimeError("single: not every delivery arrived in time")
            time.sleep(0.2)
        stop_herald(proc)
        proc = None
        got = {x["key"]: x["received_at_ms"] for x in mock.accepted("feihe")}
        lags = [got[rid] - at for rid, at in sorted(dues.items(), key=lambda kv: kv[1])
                if rid in got]
    finally:
        if proc:
            proc.kill()
            proc.wait()
        mock.stop()
    if len(lags) != trials:
        raise RuntimeError("single: %d of %d arrived" % (len(lags), trials))
    p = percentiles(lags)
    out["single"] = {"trials": trials, "gap_s": gap, "p50_ms": p["p50"], "p99_ms": p["p99"],
                     "max_ms": p["max"], "min_ms": min(lags), "lags_ms": lags}
    log("single delivery while idle, %d trials: p50 %d ms, p99 %d ms, min %d ms" % (
        trials, p["p50"], p["p99"], min(lags)))
    return out


def bench_export(env, dbs):
    """Peak RSS of `herald export KEY` (stdout to /dev/null) of each (label, db, key, rows), and
    of `herald status` on the same database: the process's baseline."""
    config = env.path("import.json")
    out = {}
    for label, db, key, rows in dbs:
        base = env.herald_ok(db, config, "status")
        c = env.run(env.herald_cmd(db, config, "export", key), discard_out=True)
        if c.rc != 0:
            raise RuntimeError("herald export exited %d: %s" % (c.rc, c.err[-2000:]))
        out[label] = {"rows": rows, "rss_mb": c.rss_kb / 1024, "wall_s": c.wall,
                      "rows_per_s": rows / c.wall, "status_rss_mb": base.rss_kb / 1024}
        log("export %d rows: %.1f s, %.1f MB peak RSS (status %.1f MB)" % (
            rows, c.wall, c.rss_kb / 1024, base.rss_kb / 1024))
    return out


# ---- 7. PostgreSQL -----------------------------------------------------------------------------

# Several `herald run` nodes share one PostgreSQL database. Each node sends on one Feihe channel
# with PG_IN_FLIGHT in flight; it claims once half its slots are free, as much as the free
# slots carry, so a claim in full flow is about half of them: the raw limit claims batches of
# that size (PG_BATCH).
PG_IN_FLIGHT = 64
PG_BATCH = PG_IN_FLIGHT // 2
PG_NODES = (1, 2, 4)
# Four nodes keep 256 requests on the mock at once, each on a connection of its own (Feihe).
PG_MOCK_THREADS = 4
PG_PARTS = ("pgimport", "pgclaims", "pgdispatch")
# The server's databases: the imports', the dispatch template, and the copy each run uses.
PG_IMPORT_DB = "bench_import"
PG_TEMPLATE_DB = "bench_dispatch"
PG_RUN_DB = "bench_run"


def pg_bin_dir():
    """The newest installed PostgreSQL server's bin directory, as scripts/pg picks it, or None."""
    found = glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")
    found.sort(key=lambda p: [int(x) if x.isdigit() else 0
                              for x in p.split("/")[-3].split(".")])
    return os.path.dirname(found[-1]) if found else None


def pg_missing():
    """Why the PostgreSQL figures cannot run on this machine, or None."""
    if not pg_bin_dir():
        return "no PostgreSQL server (/usr/lib/postgresql/*/bin/pg_ctl)"
    if not shutil.which("psql"):
        return "no psql"
    return None


def proc_stat(pid):
    """The fields of /proc/PID/stat after the command name (the 3rd field is [0])."""
    with open("/proc/%s/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()


def machine_ticks():
    """(busy, all) clock ticks of every CPU of the machine so far, from /proc/stat: what other
    work on a shared machine takes is in busy too."""
    with open("/proc/stat") as f:
        t = [int(x) for x in f.readline().split()[1:]]
    return sum(t) - t[3] - t[4], sum(t)  # idle and iowait are not busy


def machine_busy(since):
    """The share of the machine's CPU time busy since machine_ticks() gave since."""
    busy, total = machine_ticks()
    return (busy - since[0]) / max(total - since[1], 1)


class PgServer:
    """A throwaway PostgreSQL server of the benchmark's own, started by scripts/pg in a new
    directory under /tmp (the path of its Unix socket must stay short, so not the work
    directory), stopped and removed by stop(). Its settings are scripts/pg's: fsync on, the
    defaults otherwise, as the tests run with."""

    def __init__(self):
        self.script = os.path.join(SRC, "scripts", "pg")
        self.dir = tempfile.mkdtemp(prefix="herald-bench-pg-", dir="/tmp")
        p = subprocess.run([self.script, "start", self.dir], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=300)
        if p.returncode != 0:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise RuntimeError("scripts/pg start exited %d: %s" % (p.returncode, p.stderr[-2000:]))
        try:
            self.admin = p.stdout.strip().splitlines()[-1]
            with open(os.path.join(self.dir, "data", "postmaster.pid")) as f:
                self.pid = int(f.readline())
            self.version = self.psql("SHOW server_version")
        except BaseException:
            self.stop()
            raise

    def uri(self, db):
        """The admin URI with its database replaced by db."""
        u = urllib.parse.urlsplit(self.admin)
        return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + db, u.query, u.fragment))

    def psql(self, *sql, db=None):
        """Runs each statement on its own (CREATE DATABASE refuses a transaction block) in db
        (default the admin database); returns the unaligned, tuples-only output."""
        argv = ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
                "-d", self.uri(db) if db else self.admin]
        for stmt in sql:
            argv += ["-c", stmt]
        p = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                           timeout=600)
        if p.returncode != 0:
            raise RuntimeError("psql: %s" % p.stderr[-2000:])
        return p.stdout.strip()

    def fresh_db(self, name, template=None):
        """An empty database name, or a copy of template (a copy of its files: the default,
        logging every page into the WAL, is much slower for a database of some size); dropped
        first if it exists. Then a checkpoint, so every measured run starts from the same
        point: right after one, each page's first change logs the whole page. Its URI."""
        self.psql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % name,
                  "CREATE DATABASE %s%s" % (name, " TEMPLATE %s STRATEGY FILE_COPY" % template
                                            if template else ""),
                  "CHECKPOINT")
        return self.uri(name)

    def commits(self, db):
        """Transactions committed in db so far (a backend reports its own as it exits)."""
        return int(self.psql("SELECT xact_commit FROM pg_stat_database WHERE datname = '%s'" % db)
                   or 0)

    def cpu_s(self):
        """CPU seconds the server has used so far: the postmaster's own, those of the backends
        it has reaped (its cutime and cstime: a backend ends with its connection) and those of
        its live children (backends, checkpointer, WAL writer, autovacuum)."""
        f = proc_stat(self.pid)
        ticks = sum(int(f[i]) for i in (11, 12, 13, 14))
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                f = proc_stat(pid)
            except OSError:
                continue  # gone meanwhile: counted in the postmaster's cutime or not at all
            if int(f[1]) == self.pid:
                ticks += int(f[11]) + int(f[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def settle_cpu_s(self):
        """cpu_s once the backends of clients that just exited have ended and been reaped."""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and int(self.psql(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                "AND pid <> pg_backend_pid()")) > 0:
            time.sleep(0.05)
        time.sleep(0.05)
        return self.cpu_s()

    def stop(self):
        subprocess.run([self.script, "stop", self.dir], capture_output=True,
                       stdin=subprocess.DEVNULL, timeout=300)
        shutil.rmtree(self.dir, ignore_errors=True)


def pg_import_once(env, pg, csv_name, n, steps, herald_side):
    """One import of csv_name (n rows) into a fresh migrated database on pg, by herald or by
    bench-raw-pg's COPY. Returns (Child, server CPU seconds); checks every row arrived."""
    config = env.path("import.json")
    uri = pg.fresh_db(PG_IMPORT_DB)
    env.herald_ok(uri, config, "migrate")
    cpu0 = pg.cpu_s()
    if herald_side:
        c = env.run(env.herald_cmd(uri, config, "import",
                                   env.path("import-%s.def.json" % csv_name)))
        what = "herald import"
    else:
        due = [str(DAY1_MS + i * DAY_MS) for i in range(steps)]
        c = env.run([env.raw_pg, "copy", uri, env.path(csv_name), str(EXPIRE_AFTER_MS)] + due)
        what = "bench-raw-pg copy"
    server_cpu = pg.settle_cpu_s() - cpu0
    if c.rc != 0:
        raise RuntimeError("%s exited %d: %s" % (what, c.rc, c.err[-2000:]))
    got = pg.psql("SELECT (SELECT count(*) FROM deliveries) || ' ' || "
                  "(SELECT coalesce(sum(n), 0) FROM delivery_counts)", db=PG_IMPORT_DB)
    if got != "%d %d" % (n * steps, n * steps):
        raise RuntimeError("%s: deliveries and counts %s, not %d" % (what, got, n * steps))
    return c, server_cpu


def bench_pg_import(env, pg, n, runs, name):
    """`herald import` of figure 1's CSV of n recipients (3 steps) into PostgreSQL, and the raw
    COPY of the same rows, alternating, runs times each."""
    csv_name = prepare_import(env, n, name)
    herald, raw = [], []
    for r in range(runs):
        c, cpu = pg_import_once(env, pg, csv_name, n, 3, True)
        herald.append((c, cpu))
        log("pg import %d recipients, run %d/%d: herald %.1f s (%.1f s CPU, server %.1f s), "
            "%.1f MB peak RSS" % (n, r + 1, runs, c.wall, c.cpu, cpu, c.rss_kb / 1024))
        c, cpu = pg_import_once(env, pg, csv_name, n, 3, False)
        raw.append((c, cpu))
        log("pg import %d recipients, run %d/%d: raw COPY %.1f s (server %.1f s CPU)" % (
            n, r + 1, runs, c.wall, cpu))
    pg.psql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % PG_IMPORT_DB)
    hw, rw = median([c.wall for c, _ in herald]), median([c.wall for c, _ in raw])
    return {"recipients": n, "deliveries": 3 * n, "runs": runs,
            "herald_s": hw, "raw_s": rw,
            "herald_per_s": 3 * n / hw, "raw_per_s": 3 * n / rw, "ratio": rw / hw,
            "herald_cpu_s": median([c.cpu for c, _ in herald]),
            "herald_server_cpu_s": median([cpu for _, cpu in herald]),
            "raw_server_cpu_s": median([cpu for _, cpu in raw]),
            "herald_rss_mb": max(c.rss_kb for c, _ in herald) / 1024}


def mock_log_restart(path):
    """Empties the mock's --log between runs, so that it stays small: the mock opened it to
    append, so its next line lands at the start. Returns where that run's lines start."""
    os.truncate(path, 0)
    return 0


def check_once(log_path, offset, sent, what):
    """Exactly once, from the mock's --log from offset on (this run's requests): as many
    requests as deliveries recorded sent, every one accepted, no recipient twice."""
    per, total = {}, 0
    with open(log_path, "rb") as f:
        f.seek(offset)
        for line in f:
            r = json.loads(line)
            total += 1
            if r["verdict"] == "accepted":
                per[r["key"]] = per.get(r["key"], 0) + 1
    twice = sum(1 for v in per.values() if v > 1)
    if total != sent or len(per) != sent or twice:
        raise RuntimeError("%s: %d sent, but the mock had %d requests, %d recipients accepted, "
                           "%d of them more than once" % (what, sent, total, len(per), twice))


def pg_node_sent(err):
    """What one node's log says it sent (its last line: "stopped: N sent, ...")."""
    m = re.findall(r"stopped: (\d+) sent", err)
    return int(m[-1]) if m else 0


def pg_herald_once(env, pg, config, mock, nodes, n, cap):
    """nodes `herald run --once` processes started together on a fresh copy of the template,
    sending n due deliveries to mock. Checks exactly once; returns the run's figures."""
    uri = pg.fresh_db(PG_RUN_DB, template=PG_TEMPLATE_DB)
    mock.reset()
    at = mock_log_restart(mock.log)
    mock0, server0, ticks0 = mock.cpu_s(), pg.cpu_s(), machine_ticks()
    t0 = time.monotonic()
    started = [env.start(env.herald_cmd(uri, config, "run", "--once", "--now", DAY1_ISO),
                         cap=cap, log_to=env.path("pg-node%d.log" % i)) for i in range(nodes)]
    kids = [finish_child(h) for h in started]
    wall = time.monotonic() - t0
    busy = machine_busy(ticks0)
    server_cpu = pg.settle_cpu_s() - server0
    mock_cpu = mock.cpu_s() - mock0
    for c in kids:
        if c.rc != 0:
            raise RuntimeError("herald run (%d nodes) exited %d: %s" % (nodes, c.rc, c.err[-2000:]))
    capped = any(c.capped for c in kids)
    sent = check_durable({"bench-pg": env.counts(uri, config, "bench-pg")}, n, capped)
    check_once(mock.log, at, sent, "pg dispatch, %d nodes" % nodes)
    return dict(wall=wall, sent=sent, rate=sent / wall, capped=capped,
                cpu=sum(c.cpu for c in kids), server_cpu=server_cpu, mock_cpu=mock_cpu,
                machine_busy=busy,
                rss=max(c.rss_kb for c in kids) / 1024, commits=pg.commits(PG_RUN_DB),
                node_sent=[pg_node_sent(c.err) for c in kids])


def pg_raw_once(env, pg, campaign_id, workers, n, counts=True):
    """bench-raw-pg claiming and recording n due deliveries over workers connections, on a
    fresh copy of the template. counts=False: with the schema's count trigger disabled in that
    copy, to show what the shared per-campaign counts cost. Returns the run's figures."""
    pg.fresh_db(PG_RUN_DB, template=PG_TEMPLATE_DB)
    if not counts:
        pg.psql("ALTER TABLE deliveries DISABLE TRIGGER deliveries_count_update", db=PG_RUN_DB)
    server0, ticks0 = pg.cpu_s(), machine_ticks()
    c = env.run([env.raw_pg, "claim", pg.uri(PG_RUN_DB), str(campaign_id), str(DAY1_MS),
                 str(workers), str(PG_BATCH)])
    busy = machine_busy(ticks0)
    server_cpu = pg.settle_cpu_s() - server0
    if c.rc != 0:
        raise RuntimeError("bench-raw-pg claim exited %d: %s %s" % (c.rc, c.out, c.err[-2000:]))
    got = dict(zip(c.out.split()[::2], c.out.split()[1::2]))
    sent = int(pg.psql("SELECT count(*) FROM deliveries WHERE state = 'sent'", db=PG_RUN_DB))
    if int(got.get("sent", -1)) != n or sent != n:
        raise RuntimeError("bench-raw-pg: %r, %d sent in the table, not %d" % (
            c.out.strip(), sent, n))
    return dict(wall=c.wall, rate=n / c.wall, cpu=c.cpu, server_cpu=server_cpu,
                commits=pg.commits(PG_RUN_DB), machine_busy=busy)


def pg_summary(runs, n):
    """Medians of a side's runs (a raw run sends all n); CPU also per delivery, in us."""
    def per(x, key):
        return 1e6 * x[key] / x.get("sent", n)
    out = {"per_s": median([x["rate"] for x in runs]), "wall_s": median([x["wall"] for x in runs]),
           "cpu_s": median([x["cpu"] for x in runs]),
           "server_cpu_s": median([x["server_cpu"] for x in runs]),
           "cpu_us": median([per(x, "cpu") for x in runs]),
           "server_cpu_us": median([per(x, "server_cpu") for x in runs]),
           "commits_per_delivery": median([x["commits"] / x.get("sent", n) for x in runs])}
    if "mock_cpu" in runs[0]:
        out.update(mock_cpu_s=median([x["mock_cpu"] for x in runs]),
                   mock_cpu_us=median([per(x, "mock_cpu") for x in runs]),
                   sent_median=median([x["sent"] for x in runs]),
                   rss_mb=max(x["rss"] for x in runs),
                   capped_runs=sum(1 for x in runs if x["capped"]),
                   node_sent=runs[-1]["node_sent"])
    # What the run kept busy of the machine's cores (the clients, the server and the mock),
    # and how busy the machine was, whoever kept it so.
    out["busy"] = median([(x["cpu"] + x["server_cpu"] + x.get("mock_cpu", 0)) /
                          (x["wall"] * os.cpu_count()) for x in runs])
    out["machine_busy"] = median([x["machine_busy"] for x in runs])
    return out


def bench_pg_dispatch(env, pg, n, runs, cap, nodes):
    """`herald run --once` on 1, 2 and 4 nodes (nodes) sharing one database, sending n due Feihe
    deliveries to one mock with PG_IN_FLIGHT in flight each, each against bench-raw-pg claiming
    and recording the same rows over as many connections; then SQLite's single node on the same
    input, and the raw HTTP client against the same mock at every node's concurrency at once
    (the mock's own capacity). Alternating, runs times each."""
    mock = Mock(env.mock_bin, env.work, record=False, threads=PG_MOCK_THREADS,
                log_file=env.path("pg-mock.log"))
    try:
        config = write_json(env.path("pg.json"), channels(mock.url, PG_IN_FLIGHT))
        gen_csv(env.path("pg-feihe.csv"), n, "oFeihe", seed=11)
        defn = write_json(env.path("bench-pg.def.json"),
                          campaign("bench-pg", "fh", recipients_file="pg-feihe.csv"))
        template = pg.fresh_db(PG_TEMPLATE_DB)
        env.herald_ok(template, config, "migrate")
        env.herald_ok(template, config, "import", defn)
        # The planner's statistics as autovacuum would leave them soon after the import, the
        # same for every copy (else a copy's plans depend on when autovacuum came by).
        pg.psql("ANALYZE", db=PG_TEMPLATE_DB)
        campaign_id = int(pg.psql("SELECT id FROM campaigns WHERE key = 'bench-pg'",
                                  db=PG_TEMPLATE_DB))
        lite = env.migrated_db("pg-sqlite-template.db", config)
        env.herald_ok(lite, config, "import", defn)
        checkpoint(lite)
        reqs = env.path("pg-requests.txt")
        request_file(reqs, mock.url, read_csv(env.path("pg-feihe.csv")), [])
        herald = {k: [] for k in nodes}
        raw = {k: [] for k in nodes}
        # Where several nodes run, the first run also measures the raw limit without the
        # schema's count trigger: not a figure judged, what the shared counts cost.
        nocount = {k: [] for k in nodes} if len(nodes) > 1 else None
        sqlite_runs, http_runs = [], []
        for r in range(runs):
            for k in nodes:
                h = pg_herald_once(env, pg, config, mock, k, n, cap)
                herald[k].append(h)
                log("pg dispatch %d, %d node%s, run %d/%d: %d sent in %.1f s%s (%.0f/s; CPU s: "
                    "herald %.1f, server %.1f, mock %.1f; %d commits; per node %s)" % (
                        n, k, "s" if k > 1 else "", r + 1, runs, h["sent"], h["wall"],
                        " (capped)" if h["capped"] else "", h["rate"], h["cpu"],
                        h["server_cpu"], h["mock_cpu"], h["commits"],
                        "/".join(str(x) for x in h["node_sent"])))
                for side, counts in ((raw, True), (nocount, False)):
                    if side is None or (not counts and r > 0):
                        continue
                    x = pg_raw_once(env, pg, campaign_id, k, n, counts=counts)
                    side[k].append(x)
                    log("pg dispatch %d, raw SKIP LOCKED%s over %d connection%s, run %d/%d: "
                        "%.1f s (%.0f/s; CPU s: client %.1f, server %.1f; %d commits)" % (
                            n, "" if counts else " without the count trigger", k,
                            "s" if k > 1 else "", r + 1, runs, x["wall"], x["rate"], x["cpu"],
                            x["server_cpu"], x["commits"]))
            if len(nodes) > 1:
                at = mock_log_restart(mock.log)
                c, counts, mock_cpu, accepted, db = dispatch_herald_once(
                    env, lite, config, mock, ("bench-pg",), cap=cap, db_name="pg-sqlite-run.db")
                sent = check_durable(counts, n, c.capped)
                check_once(mock.log, at, sent, "sqlite dispatch")
                remove_db(db)
                sqlite_runs.append(dict(wall=c.wall, sent=sent, rate=sent / c.wall, cpu=c.cpu,
                                        mock_cpu=mock_cpu, capped=c.capped))
                log("pg dispatch %d, SQLite's single node, run %d/%d: %d sent in %.1f s (%.0f/s)"
                    % (n, r + 1, runs, sent, c.wall, sent / c.wall))
            conc = PG_IN_FLIGHT * max(nodes)
            c, mock_cpu, accepted = dispatch_raw_once(env, reqs, mock, conc)
            if accepted != n:
                raise RuntimeError("mock accepted %d of the raw client's %d" % (accepted, n))
            http_runs.append(dict(rate=n / c.wall, mock_cpu=mock_cpu))
            log("pg dispatch %d, raw HTTP client, %d in flight, run %d/%d: %.1f s (%.0f/s)" % (
                n, conc, r + 1, runs, c.wall, n / c.wall))
    finally:
        mock.stop()
        try:
            pg.psql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % PG_RUN_DB,
                    "DROP DATABASE IF EXISTS %s WITH (FORCE)" % PG_TEMPLATE_DB)
        except RuntimeError:
            pass
        remove_db(env.path("pg-sqlite-template.db"))
    out = {"deliveries": n, "runs": runs, "in_flight_per_node": PG_IN_FLIGHT, "batch": PG_BATCH,
           "mock_threads": PG_MOCK_THREADS,
           "herald": {str(k): pg_summary(herald[k], n) for k in nodes},
           "raw": {str(k): pg_summary(raw[k], n) for k in nodes},
           "raw_nocount": {str(k): pg_summary(nocount[k], n) for k in nodes} if nocount else {},
           "http": {"in_flight": PG_IN_FLIGHT * max(nodes),
                    "per_s": median([x["rate"] for x in http_runs]),
                    "mock_cpu_us": median([1e6 * x["mock_cpu"] / n for x in http_runs])},
           "exactly_once_runs": runs * len(nodes) + len(sqlite_runs)}
    if sqlite_runs:
        out["sqlite"] = {"per_s": median([x["rate"] for x in sqlite_runs]),
                         "cpu_us": median([1e6 * x["cpu"] / x["sent"] for x in sqlite_runs]),
                         "mock_cpu_us": median([1e6 * x["mock_cpu"] / x["sent"]
                                                for x in sqlite_runs]),
                         "capped_runs": sum(1 for x in sqlite_runs if x["capped"])}
    for k in nodes:
        if k > 1:
            out["scaling_%d" % k] = out["herald"][str(k)]["per_s"] / out["herald"]["1"]["per_s"]
            out["raw_scaling_%d" % k] = out["raw"][str(k)]["per_s"] / out["raw"]["1"]["per_s"]
            if nocount:
                out["raw_nocount_scaling_%d" % k] = (out["raw_nocount"][str(k)]["per_s"] /
                                                     out["raw_nocount"]["1"]["per_s"])
    return out


def pg_claims(d):
    """The claims+results figure from a dispatch result: Herald's single node against the raw
    limit over one connection (one node's store connection) at the same batch size."""
    h, x = d["herald"]["1"], d["raw"]["1"]
    return {"deliveries": d["deliveries"], "runs": d["runs"], "in_flight": PG_IN_FLIGHT,
            "batch": d["batch"], "herald_per_s": h["per_s"], "raw_per_s": x["per_s"],
            "ratio": h["per_s"] / x["per_s"], "http_per_s": d["http"]["per_s"],
            "http_in_flight": d["http"]["in_flight"],
            "herald_commits_per_delivery": h["commits_per_delivery"],
            "raw_commits_per_delivery": x["commits_per_delivery"],
            "herald_server_cpu_us": h["server_cpu_us"], "raw_server_cpu_us": x["server_cpu_us"],
            "herald_cpu_us": h["cpu_us"], "capped_runs": h["capped_runs"]}


# ---- report ------------------------------------------------------------------------------------

def machine():
    model, cores = "?", 0
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                cores += 1
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = "%.1f GiB" % (int(line.split()[1]) / 1048576)
    return {"cpu": model, "cores": cores or os.cpu_count(), "memory": mem,
            "kernel": os.uname().release}


def verdict(ok):
    return "PASS" if ok else "MISS"


def figures(res):
    """Rows of the table: (figure, herald, limit, ratio, target, verdict)."""
    rows = []
    imp = res.get("import")
    if imp:
        rows.append(("1 import %d recipients -> %d deliveries" % (imp["recipients"], imp["deliveries"]),
                     "%.1f s  %.0f/s" % (imp["herald_s"], imp["herald_per_s"]),
                     "raw insert %.1f s  %.0f/s" % (imp["raw_s"], imp["raw_per_s"]),
                     "%.2f" % imp["ratio"], ">= 0.50", verdict(imp["ratio"] >= 0.5)))
        rows.append(("1 import peak RSS", "%.1f MB" % imp["herald_rss_mb"],
                     "raw insert %.1f MB" % imp["raw_rss_mb"], "", "< 64 MB",
                     verdict(imp["herald_rss_mb"] < 64)))
    small = res.get("import_small")
    if small:
        rows.append(("  (import %d recipients)" % small["recipients"],
                     "%.1f s  %.0f/s" % (small["herald_s"], small["herald_per_s"]),
                     "raw insert %.1f s  %.0f/s" % (small["raw_s"], small["raw_per_s"]),
                     "%.2f" % small["ratio"], "", ""))
    for part in ("dispatch", "dispatch256"):
        d = res.get(part)
        if not d:
            continue
        cpu = d["herald_cpu_us"] / d["raw_cpu_us"]
        rows.append(("2 dispatch %d (Feihe + Tencent), %d in flight/channel%s" % (
            d["deliveries"], d["concurrency_per_channel"],
            ", capped %.0f s" % d["cap_s"] if d["capped_runs"] else ""),
            "%.0f/s" % d["herald_per_s"],
            "raw curl multi %.0f/s (%d in flight)" % (d["raw_per_s"], 2 * d["concurrency_per_channel"]),
            "%.3f" % d["ratio"], ">= 0.70", verdict(d["ratio"] >= 0.7)))
        rows.append(("2   CPU per delivery, %d in flight" % d["concurrency_per_channel"],
                     "%.0f us" % d["herald_cpu_us"], "raw %.0f us" % d["raw_cpu_us"],
                     "%.2fx" % cpu, "<= 1.50x", verdict(cpu <= 1.5)))
        rows.append(("2   peak RSS, %d in flight" % d["concurrency_per_channel"],
                     "%.1f MB" % d["herald_rss_mb"], "raw %.1f MB" % d["raw_rss_mb"], "", "", ""))
    r = res.get("rules")
    if r:
        rows.append(("2 dispatch %d, rules on (frequency cap) vs off" % r["deliveries"],
                     "on %.0f/s, %.0f us CPU" % (r["on_per_s"], r["on_cpu_us"]),
                     "off %.0f/s, %.0f us CPU" % (r["off_per_s"], r["off_cpu_us"]),
                     "%.3f" % r["ratio"], ">= 0.80", verdict(r["ratio"] >= 0.8)))
    o = res.get("ontime")
    if o:
        rows.append(("3 on time p50 (%d due at once)" % o["deliveries"], "%d ms" % o["herald_p50_ms"],
                     "raw %d ms" % o["raw_p50_ms"], "", "", ""))
        rows.append(("3 on time p99", "%d ms" % o["herald_p99_ms"], "raw %d ms" % o["raw_p99_ms"],
                     "%.2f of target" % (o["herald_p99_ms"] / 50.0), "< 50 ms",
                     verdict(o["herald_p99_ms"] < 50)))
        rows.append(("3 on time max", "%d ms" % o["herald_max_ms"], "raw %d ms" % o["raw_max_ms"],
                     "%.2f of target" % (o["herald_max_ms"] / 200.0), "< 200 ms",
                     verdict(o["herald_max_ms"] < 200)))
    q = res.get("queries")
    if q:
        for name, label in (("status_key_json", "status KEY --json"),
                            ("deliveries_failed_100", "deliveries KEY --state failed --limit 100"),
                            ("deliveries_page_100", "deliveries KEY --limit 100 (first page)"),
                            ("deliveries_page_100_mid", "deliveries KEY --limit 100 --after MID"),
                            ("status_all", "status (%d campaigns)" % q["campaigns"])):
            ms = q[name + "_ms"]
            rows.append(("4 %s, %d deliveries" % (label, q["deliveries"]), "%.1f ms" % ms,
                         "floor %.1f ms" % q["floor_ms"], "%.2f of target" % (ms / 50.0),
                         "< 50 ms", verdict(ms < 50)))
    f = res.get("fair")
    if f:
        rows.append(("3 fair under load: %d due at once while %d drain, p99" % (f["small"], f["big"]),
                     "%d ms (p50 %d, max %d)" % (f["p99_ms"], f["p50_ms"], f["max_ms"]),
                     "big %.0f/s%s" % (f["big_per_s"], "" if f["under_load"] else
                                        ", NOT draining throughout"),
                     "%.2f of target" % (f["p99_ms"] / 200.0), "< 200 ms",
                     verdict(f["p99_ms"] < 200 and f["under_load"])))
    idle = res.get("idle")
    if idle and "single" in idle:
        sg = idle["single"]
        rows.append(("3 single delivery while idle, %d trials, p99" % sg["trials"],
                     "%d ms (p50 %d, min %d)" % (sg["p99_ms"], sg["p50_ms"], sg["min_ms"]), "",
                     "%.2f of target" % (sg["p99_ms"] / 5.0), "< 5 ms", verdict(sg["p99_ms"] < 5)))
    p = res.get("pageindex")
    if p:
        rows.append(("1 import %d recipients: page index cost" % p["recipients"],
                     "%.1f s" % p["with_s"], "without %.1f s" % p["without_s"],
                     "%+.1f %%" % (100 * p["cost"]), "", ""))
    m = res.get("memory")
    if m:
        for what in ("import", "dispatch"):
            a, b = m[what + "_small"], m[what + "_big"]
            ratio = b["rss_mb"] / a["rss_mb"]
            rows.append(("5 %s RSS %s vs %s" % (what, b["label"], a["label"]),
                         "%.1f MB vs %.1f MB%s" % (b["rss_mb"], a["rss_mb"],
                                                   " (capped)" if b.get("capped") or a.get("capped") else ""),
                         "", "%.2f" % ratio, "<= 1.10", verdict(ratio <= 1.10)))
    e = res.get("export")
    if e:
        a, b = e["small"], e["big"]
        ratio = b["rss_mb"] / a["rss_mb"]
        rows.append(("5 export RSS %d vs %d rows" % (b["rows"], a["rows"]),
                     "%.1f MB vs %.1f MB" % (b["rss_mb"], a["rss_mb"]),
                     "status %.1f MB" % b["status_rss_mb"], "%.2f" % ratio, "<= 1.10",
                     verdict(ratio <= 1.10)))
        rows.append(("5   export %d rows, time" % b["rows"], "%.1f s  %.0f rows/s" % (
            b["wall_s"], b["rows_per_s"]), "", "", "", ""))
    if idle:
        rows.append(("6 idle CPU, %d future deliveries, %.0f s" % (idle["future"], idle["window_s"]),
                     "%.3f %% of a core (%.2f s)" % (idle["cpu_pct"], idle["cpu_s"]),
                     "tick %.0f ms" % (1000 * idle["tick_s"]),
                     "%.2f of target" % (idle["cpu_pct"] / 0.5), "< 0.5 %",
                     verdict(idle["cpu_pct"] < 0.5)))
        grow = idle["rss_end_mb"] / idle["rss_start_mb"]
        rows.append(("6 idle RSS, end vs start", "%.1f MB vs %.1f MB (max %.1f)" % (
            idle["rss_end_mb"], idle["rss_start_mb"], idle["rss_max_mb"]), "", "%.3f" % grow,
            "<= 1.05", verdict(grow <= 1.05)))
    rows += pg_figures(res)
    return rows


def pg_figures(res):
    """The PostgreSQL rows of the table (figure 7)."""
    def plural(k):
        return "" if str(k) == "1" else "s"
    rows = []
    if res.get("pg_skipped"):
        rows.append(("7 PostgreSQL", "skipped: " + res["pg_skipped"], "", "", "", ""))
    pi = res.get("pgimport")
    if pi:
        rows.append(("7 PG import %d recipients -> %d deliveries" % (pi["recipients"],
                                                                     pi["deliveries"]),
                     "%.1f s  %.0f/s" % (pi["herald_s"], pi["herald_per_s"]),
                     "raw COPY %.1f s  %.0f/s" % (pi["raw_s"], pi["raw_per_s"]),
                     "%.2f" % pi["ratio"], "", ""))
        rows.append(("7   import CPU s (server), peak RSS", "%.2f (%.1f), %.1f MB" % (
            pi["herald_cpu_s"], pi["herald_server_cpu_s"], pi["herald_rss_mb"]),
            "raw (%.1f)" % pi["raw_server_cpu_s"], "", "", ""))
    d = res.get("pgdispatch")
    pc = res.get("pgclaims")
    if pc:
        rows.append(("7 PG claims+results: dispatch, 1 node, %d in flight%s" % (
            pc["in_flight"], ", capped" if pc["capped_runs"] else ""),
                     "%.0f/s" % pc["herald_per_s"],
                     "raw SKIP LOCKED %.0f/s (1 conn, batch %d)" % (pc["raw_per_s"], pc["batch"]),
                     "%.3f" % pc["ratio"], ">= 0.50", verdict(pc["ratio"] >= 0.5)))
        rows.append(("7   store work per delivery", "%.3f commits, server %.0f us CPU" % (
            pc["herald_commits_per_delivery"], pc["herald_server_cpu_us"]),
            "raw %.3f commits, server %.0f us" % (pc["raw_commits_per_delivery"],
                                                  pc["raw_server_cpu_us"]), "", "", ""))
    if pc or d:
        # The mock's capacity: the raw client against it at every node's concurrency at once.
        http = d["http"] if d else {"per_s": pc["http_per_s"], "in_flight": pc["http_in_flight"]}
        best = max(h["per_s"] for h in d["herald"].values()) if d else pc["herald_per_s"]
        share = best / http["per_s"]
        rows.append(("7 PG mock not the bound: fastest herald / raw HTTP", "%.0f/s" % best,
                     "raw curl multi %.0f/s (%d in flight), same mock" % (
                         http["per_s"], http["in_flight"]),
                     "%.2f" % share, "< 0.50", verdict(share < 0.5)))
    if not d:
        return rows
    for k in sorted(d["herald"], key=int):
        h, x = d["herald"][k], d["raw"][k]
        rows.append(("7 PG dispatch %d Feihe, %s node%s x %d in flight%s" % (
            d["deliveries"], k, plural(k), d["in_flight_per_node"],
            ", capped" if h["capped_runs"] else ""),
            "%.0f/s" % h["per_s"],
            "raw SKIP LOCKED %.0f/s (%s conn%s)" % (x["per_s"], k, plural(k)),
            "%.3f" % (h["per_s"] / x["per_s"]), "", ""))
        rows.append(("7   CPU s: herald + server + mock, of %d cores" % res["machine"]["cores"],
                     "%.1f + %.1f + %.1f in %.1f s: %.0f %% (machine %.0f %%)" % (
                         h["cpu_s"], h["server_cpu_s"], h["mock_cpu_s"], h["wall_s"],
                         100 * h["busy"], 100 * h["machine_busy"]),
                     "raw: server %.1f in %.1f s: %.0f %% (machine %.0f %%)" % (
                         x["server_cpu_s"], x["wall_s"], 100 * x["busy"],
                         100 * x["machine_busy"]), "", "", ""))
    for k in (2, 4):
        if "scaling_%d" % k in d:
            rows.append(("7 PG scaling, %d nodes / 1 node" % k, "%.2fx" % d["scaling_%d" % k],
                         "raw %d / 1 connections %.2fx" % (k, d["raw_scaling_%d" % k]), "",
                         ">= 1.60x" if k == 2 else "",
                         verdict(d["scaling_2"] >= 1.6) if k == 2 else ""))
    if d.get("raw_nocount"):
        nc = d["raw_nocount"]
        rows.append(("7   raw without the count trigger, 1 / 2 / 4 conns, one run",
                     "/".join("%.0f" % nc[k]["per_s"] for k in sorted(nc, key=int)) + " per s",
                     "scaling 2 / 1 %.2fx, 4 / 1 %.2fx" % (d["raw_nocount_scaling_2"],
                                                           d["raw_nocount_scaling_4"]),
                     "", "", ""))
    lite = d.get("sqlite")
    if lite:
        one = d["herald"]["1"]
        rows.append(("7 SQLite single node, same input",
                     "%.0f/s, %.0f us CPU each" % (lite["per_s"], lite["cpu_us"]),
                     "PG 1 node %.0f/s, %.0f us + server %.0f us" % (
                         one["per_s"], one["cpu_us"], one["server_cpu_us"]),
                     "PG %.2f" % (one["per_s"] / lite["per_s"]), "", ""))
    rows.append(("7 PG exactly once, %d dispatch runs" % d["exactly_once_runs"],
                 "every delivery sent; mock: each rid accepted once", "", "", "", "PASS"))
    return rows


def print_table(rows):
    head = ("figure", "herald", "limit", "ratio", "target", "")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    for r in [head] + rows:
        print("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip())


def summary_json(res, rows):
    doc = {"bench": "herald", "mode": res["mode"], "machine": res["machine"],
           "versions": res["versions"], "pragmas": res["pragmas"], "targets": {r[0].strip(): r[5] for r in rows if r[5]}}
    for k in ("import", "import_small", "dispatch", "dispatch256", "rules", "ontime", "fair",
              "idle", "queries", "memory", "export", "pgimport", "pgclaims", "pgdispatch",
              "pg_skipped", "errors"):
        if k in res:
            doc[k] = res[k]
    return json.dumps(doc, ensure_ascii=False, sort_keys=True)


def rounded(x):
    if isinstance(x, float):
        return round(x, 3)
    if isinstance(x, dict):
        return {k: rounded(v) for k, v in x.items()}
    return x


# ---- main --------------------------------------------------------------------------------------

def find_binaries(build):
    b = {"herald": os.path.join(build, "herald"), "mock": os.path.join(build, "herald-mock"),
         "raw_insert": os.path.join(build, "bench", "bench-raw-insert"),
         "raw_http": os.path.join(build, "bench", "bench-raw-http"),
         "measure": os.path.join(build, "bench", "bench-measure"),
         "raw_pg": os.path.join(build, "bench", "bench-raw-pg")}
    for k, p in b.items():
        if not os.access(p, os.X_OK):
            sys.exit("bench: %s not found (build with -DHERALD_BENCH=ON)" % p)
    cache = os.path.join(build, "CMakeCache.txt")
    if os.path.exists(cache):
        with open(cache) as f:
            for line in f:
                if line.startswith("SANITIZE:") and line.strip().split("=", 1)[1]:
                    sys.exit("bench: %s is a sanitizer build; benchmark a plain one" % build)
    return b


def versions(b):
    out = {}
    for k, arg in (("herald", "--version"), ("sqlite", "--version"), ("curl", "--version"),
                   ("libpq", "--version")):
        binary = {"herald": b["herald"], "sqlite": b["raw_insert"], "curl": b["raw_http"],
                  "libpq": b["raw_pg"]}[k]
        p = subprocess.run([binary, arg], capture_output=True, text=True)
        out[k] = p.stdout.strip()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True, help="the build directory (plain, not sanitized)")
    ap.add_argument("--quick", action="store_true", help="small sizes, one run each")
    ap.add_argument("--runs", type=int, help="runs per figure (default 3; --quick 1)")
    ap.add_argument("--import-runs", type=int, help="runs of the big import (default 1)")
    ap.add_argument("--cap", type=float, help="seconds a dispatch run may take before it is "
                    "stopped (SIGTERM) and its rate taken from what it sent")
    ap.add_argument("--dispatch-n", type=int, help="deliveries per dispatch run, rules on/off "
                    "included (default 200,000; --quick 20,000)")
    ap.add_argument("--concurrency", type=int, default=32, help="max_in_flight per channel")
    ap.add_argument("--mock-threads", type=int, default=2)
    ap.add_argument("--pg-n", type=int, help="due deliveries per PostgreSQL dispatch run "
                    "(default 20,000; --quick 10,000)")
    ap.add_argument("--only", help="comma list of " + ALL_PARTS + " (pg: the three pg ones)")
    ap.add_argument("--work", help="work directory (default: a new temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--json-out", help="also write the JSON line to this file")
    a = ap.parse_args()
    size = dict(QUICK if a.quick else FULL)
    if a.runs:
        size["runs"] = a.runs
    if a.import_runs:
        size["import_runs"] = a.import_runs
    if a.dispatch_n:
        size["dispatch_n"] = a.dispatch_n
    if a.cap:
        size["cap"] = size["mem_cap"] = a.cap
    if a.pg_n:
        size["pg_n"] = a.pg_n
    only = set((a.only or ALL_PARTS).split(","))
    if "pg" in only:
        only = (only - {"pg"}) | set(PG_PARTS)
    if only - set(ALL_PARTS.split(",")):
        sys.exit("bench: --only: unknown part(s) %s" % ",".join(sorted(only - set(ALL_PARTS.split(",")))))
    b = find_binaries(os.path.abspath(a.build))
    work = a.work or tempfile.mkdtemp(prefix="herald-bench-")
    os.makedirs(work, exist_ok=True)
    env = Env(b["herald"], b["mock"], b["raw_insert"], b["raw_http"], work,
              concurrency=a.concurrency, mock_threads=a.mock_threads, measure=b["measure"],
              raw_pg=b["raw_pg"])
    res = {"mode": "quick" if a.quick else "full", "machine": machine(), "versions": versions(b),
           "pragmas": herald_pragmas()}
    t0 = time.monotonic()
    log("work directory %s" % work)
    errors = []

    def section(name, fn):
        """Runs one part; a broken part is reported and the others still run."""
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - any failure of a part is reported, not fatal
            log("%s FAILED: %s" % (name, e))
            traceback.print_exc(file=sys.stderr)
            errors.append("%s: %s" % (name, e))
            return None

    def memory():
        return {
            "import_small": {"label": "%dk" % (size["import_small"] // 1000),
                             "rss_mb": res["import_small"]["herald_rss_mb"]},
            "import_big": {"label": "%dk" % (size["import_n"] // 1000),
                           "rss_mb": res["import"]["herald_rss_mb"]},
            "dispatch_small": dict(dispatch_rss(env, env.path("small.db"), size["import_small"],
                                                size["mem_cap"]),
                                   label="%dk" % (size["import_small"] // 1000)),
            "dispatch_big": dict(dispatch_rss(env, env.path("big.db"), size["import_n"],
                                              size["mem_cap"]),
                                 label="%dk" % (size["import_n"] // 1000))}

    parts = []
    need_big = bool(only & {"queries", "memory", "export"})
    if "import" in only or need_big:
        runs = size["import_runs"] if "import" in only else 1
        parts.append(("import", lambda: bench_import(env, size["import_n"], runs, "big",
                                                     keep_as="big.db")))
    if only & {"memory", "import", "export"}:
        parts.append(("import_small", lambda: bench_import(env, size["import_small"],
                                                           size["runs"], "small",
                                                           keep_as="small.db")))
    if "pageindex" in only:
        parts.append(("pageindex", lambda: bench_page_index(env, size["import_small"],
                                                            size["runs"], "small")))
    if "dispatch" in only:
        parts.append(("dispatch", lambda: bench_dispatch(env, size["dispatch_n"], size["runs"],
                                                         size["cap"])))
    if "dispatch256" in only:
        parts.append(("dispatch256", lambda: bench_dispatch(env, size["dispatch_n"], size["runs"],
                                                            size["cap"], concurrency=256,
                                                            name="dispatch256")))
    if "rules" in only:
        parts.append(("rules", lambda: bench_rules(env, size["dispatch_n"], size["runs"],
                                                   size["cap"])))
    if "ontime" in only:
        parts.append(("ontime", lambda: bench_ontime(env, size["ontime_n"], size["ontime_runs"])))
    if "fair" in only:
        parts.append(("fair", lambda: bench_fair(env, size["fair_big"], size["fair_small"],
                                                 size["fair_lead"], size["mem_cap"])))
    if "idle" in only:
        parts.append(("idle", lambda: bench_idle(env, size["idle_n"], size["idle_window"],
                                                 size["single_trials"], size["single_gap"])))
    if "export" in only:
        # Before the queries, which add campaigns to the big database.
        parts.append(("export", lambda: bench_export(env, [
            ("small", env.path("small.db"), "bench-small", 3 * size["import_small"]),
            ("big", env.path("big.db"), "bench-big", 3 * size["import_n"])])))
    if "queries" in only:
        parts.append(("queries", lambda: bench_queries(env, env.path("big.db"), "bench-big",
                                                       size["campaigns"], size["query_runs"])))
    if "memory" in only:
        parts.append(("memory", memory))

    def postgres():
        """The PostgreSQL figures, on a server of their own for as long as they take; each
        part reported on its own, as the others are."""
        pg = PgServer()
        res["versions"]["postgres"] = pg.version
        log("PostgreSQL %s in %s" % (pg.version, pg.dir))
        try:
            if "pgimport" in only:
                got = section("pgimport", lambda: bench_pg_import(
                    env, pg, size["import_small"], size["runs"], "small"))
                if got is not None:
                    res["pgimport"] = got
            if only & {"pgclaims", "pgdispatch"}:
                # Claims+results is the dispatch's single node against the single connection.
                got = section("pgdispatch" if "pgdispatch" in only else "pgclaims",
                              lambda: bench_pg_dispatch(
                                  env, pg, size["pg_n"], size["runs"], size["cap"],
                                  PG_NODES if "pgdispatch" in only else (1,)))
                if got is not None and "pgclaims" in only:
                    res["pgclaims"] = pg_claims(got)
                if got is not None and "pgdispatch" in only:
                    res["pgdispatch"] = got
        finally:
            pg.stop()

    if only & set(PG_PARTS):
        why = pg_missing()
        if why:
            res["pg_skipped"] = why
            log("PostgreSQL figures skipped: " + why)
        else:
            parts.append(("postgres", postgres))
    try:
        for name, fn in parts:
            got = section(name, fn)
            if got is not None:
                res[name] = got
    finally:
        if not a.keep and not a.work:
            shutil.rmtree(work, ignore_errors=True)
    res["elapsed_s"] = time.monotonic() - t0
    res = rounded(res)
    rows = figures(res)
    print("Herald benchmark (%s) on %s, %d cores, %s; %s, %s%s" % (
        res["mode"], res["machine"]["cpu"], res["machine"]["cores"], res["machine"]["memory"],
        res["versions"]["sqlite"], res["versions"]["curl"].split()[0] if res["versions"]["curl"] else "",
        ", PostgreSQL %s" % res["versions"]["postgres"] if "postgres" in res["versions"] else ""))
    print_table(rows)
    print("elapsed %.0f s" % res["elapsed_s"])
    for e in errors:
        print("FAILED %s" % e)
    res["errors"] = errors
    line = summary_json(res, rows)
    print(line)
    if a.json_out:
        with open(a.json_out, "w") as f:
            f.write(line + "\n")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
