#!/usr/bin/env python3
"""End-to-end tests of the channels file (SPEC §1, §2): where it is found, every kind of
configuration error (78, naming the channel and key, writing nothing), `K_env` indirection,
and that no secret, given in the file or in the environment, is ever printed or stored.

    HERALD_BIN=build/herald HERALD_MOCK=build/herald-mock HERALD_SRC=. \
        python3 tests/e2e/test_config.py
"""
import json
import os
import signal
import stat
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

FEIHE = {"provider": "feihe", "base_url": "http://127.0.0.1:9"}
TAN = {"provider": "tanmarket", "base_url": "http://127.0.0.1:9", "app_id": "app-1"}


def definition(channel="fh", key="c1", message=None, recipients=None):
    return {
        "key": key, "name": "配置测试", "channel": channel, "start_date": "2026-11-23",
        "steps": [{"day": 1, "time": "10:00",
                   "message": message or {"type": "text", "text": "您好 {{id}}"}}],
        "recipients": recipients or [{"id": "oc-1"}, {"id": "oc-2"}],
    }


class ConfigTest(harness.HeraldTest):

    def setUp(self):
        super().setUp()
        self.defn = self.write("c.json", definition())
        self.outputs = []          # every stdout and stderr seen, for the secret checks

    def run_herald(self, *args, **kw):
        rc, out, err = self.herald(*args, **kw)
        self.outputs.append(out + err)
        return rc, out, err

    def config_error(self, config, *needles, command=("import",), env=None):
        """Writes the config, runs a command that loads it: 78, stderr names each needle,
        nothing written. Returns stderr."""
        self.write("herald.json", config)
        before = self.db_snapshot()
        args = list(command) + ([self.defn] if command == ("import",) else [])
        rc, out, err = self.run_herald(*args, env=env)
        self.assertEqual(rc, 78, "stdout: %s\nstderr: %s" % (out, err))
        self.assertEqual(out, "")
        for n in needles:
            self.assertIn(n, err)
        self.assertEqual(self.db_snapshot(), before)
        return err

    def seed(self):
        self.config({"fh": FEIHE})
        self.ok("import", self.write("seed.json", definition(key="seed")))

    def test_missing_config_file(self):
        self.seed()
        os.unlink(self.config_path)
        before = self.db_snapshot()
        rc, out, err = self.run_herald("import", self.defn)
        self.assertEqual(rc, 78, err)
        self.assertIn(self.config_path, err)
        self.assertEqual(self.db_snapshot(), before)
        # commands that only read the database do not need it
        self.ok("status")

    def test_invalid_json(self):
        self.seed()
        self.config_error('{"channels": {"fh": {"provider": "feihe",}}', "herald.json")
        self.config_error(b'{"channels": {"fh": {"provider": "fe\xffhe"}}}', "herald.json")
        self.config_error("", "herald.json")
        self.config_error('["channels"]', "herald.json")

    def test_unknown_provider(self):
        self.seed()
        self.config_error({"channels": {"fh": FEIHE, "wx": {"provider": "wechat"}}},
                          '"wx"', "wechat")

    def test_unknown_keys(self):
        self.seed()
        self.config_error({"channels": {"fh": dict(FEIHE, colour="red")}}, '"fh"', "colour")
        self.config_error({"channels": {"t": dict(TAN, app_key="k", sdkappid=1)}}, '"t"',
                          "sdkappid")
        self.config_error({"channels": {"fh": FEIHE}, "logging": {}}, "logging")
        self.config_error({"channels": {"fh": FEIHE}, "scheduler": {"max_tries": 3}},
                          "max_tries")

    def test_missing_required_keys(self):
        self.seed()
        self.config_error({"channels": {"fh": FEIHE, "t": TAN}}, '"t"', "app_key")
        self.config_error({"channels": {"t": {"provider": "tanmarket", "app_id": "a",
                                              "app_key": "k"}}}, '"t"', "base_url")
        self.config_error({"channels": {"d": {"provider": "tencent_desk", "identifier": "admin",
                                              "usersig": "sig"}}}, '"d"', "sdkappid")
        self.config_error({"channels": {"d": {"provider": "tencent_desk", "sdkappid": 1400000000,
                                              "identifier": "admin"}}}, '"d"', "usersig",
                          "secret_key")
        self.config_error({"channels": {"x": {"base_url": "http://127.0.0.1:9"}}}, '"x"',
                          "provider")
        self.config_error({"scheduler": {"max_attempts": 3}}, "channels")

    def test_wrong_types(self):
        self.seed()
        cases = [
            (dict(FEIHE, max_in_flight="many"), "max_in_flight"),
            (dict(FEIHE, max_in_flight=1.5), "max_in_flight"),
            (dict(FEIHE, max_in_flight="5"), "max_in_flight"),   # a string is not a number
            (dict(FEIHE, suspend_after="20"), "suspend_after"),
            (dict(FEIHE, on_ambiguous="maybe"), "on_ambiguous"),
            (dict(FEIHE, probe_every=60), "probe_every"),
            (dict(FEIHE, rate_per_sec=[1]), "rate_per_sec"),
            (dict(FEIHE, base_url=5), "base_url"),
            (dict(FEIHE, base_url="ftp://example.com"), "base_url"),
            (dict(FEIHE, system=True), "system"),
            ({"provider": 3}, "provider"),
            ({"provider": "sainiu", "lead": "1h59m"}, "lead"),
            ({"provider": "apiusb", "batch_size": "lots"}, "batch_size"),
            ({"provider": "tencent_desk", "sdkappid": "x14", "identifier": "admin",
              "usersig": "sig"}, "sdkappid"),
        ]
        for chan, key in cases:
            self.config_error({"channels": {"ch-1": chan}}, '"ch-1"', key)
        self.config_error({"channels": {"fh": "feihe"}}, '"fh"')
        self.config_error({"channels": ["fh"]}, "channels")
        self.config_error({"channels": {"fh": FEIHE}, "scheduler": {"max_attempts": "8"}},
                          "max_attempts")
        self.config_error({"channels": {"fh": FEIHE}, "scheduler": []}, "scheduler")

    def test_env_indirection(self):
        secret = "tan-key-from-env-7f3a9c"
        self.config({"tan": dict(TAN, app_key_env="HERALD_TEST_TAN_KEY"),
                     "fh": dict(FEIHE, max_in_flight_env="HERALD_TEST_INFLIGHT")})
        defn = self.write("t.json", definition(
            "tan", "t1", {"contents": [{"type": 1, "text": "早上好"}]},
            [{"chat_id": "wr-1", "chat_owner": "owner"}]))
        env = {"HERALD_TEST_TAN_KEY": secret, "HERALD_TEST_INFLIGHT": "4"}
        rc, out, err = self.run_herald("import", defn, env=env)
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.status("t1")["provider"], "tanmarket")
        # the variable unset, or empty: the import needs no secret, a run that would send
        # through the channel refuses to start, naming channel, key and variable
        for value in (None, ""):
            e = dict(os.environ)
            e.pop("HERALD_TEST_TAN_KEY", None)
            if value is not None:
                e["HERALD_TEST_TAN_KEY"] = value
            e["HERALD_TEST_INFLIGHT"] = "4"
            p = subprocess.run([harness.HERALD, "--db", self.db, "--config", self.config_path,
                                "import", defn], env=e, capture_output=True, cwd=self.dir,
                               timeout=60 * harness.SLOW)
            self.outputs.append(p.stdout.decode() + p.stderr.decode())
            self.assertEqual(p.returncode, 0, p.stderr.decode())
            before = self.db_snapshot()
            p = subprocess.run([harness.HERALD, "--db", self.db, "--config", self.config_path,
                                "run", "--once", "--now", "2026-11-23T10:00:30+08:00"], env=e,
                               capture_output=True, cwd=self.dir, timeout=60 * harness.SLOW)
            err = p.stderr.decode()
            self.outputs.append(p.stdout.decode() + err)
            self.assertEqual(p.returncode, 78, err)
            for needle in ('"tan"', "app_key_env", "HERALD_TEST_TAN_KEY"):
                self.assertIn(needle, err)
            self.assertEqual(self.db_snapshot(), before)
        # an _env value of the wrong type names the key, not the value
        err = self.config_error({"channels": {"fh": dict(FEIHE, max_in_flight_env="HERALD_TEST_N")}},
                                "max_in_flight", env={"HERALD_TEST_N": "not-a-number-5d1e"})
        self.assertNotIn("not-a-number-5d1e", err)
        # an _env that is not a variable name
        self.config_error({"channels": {"t": dict(TAN, app_key_env=12)}}, '"t"', "app_key_env")
        # the same key twice
        self.config_error({"channels": {"t": dict(TAN, app_key="k", app_key_env="HERALD_TEST_TAN_KEY")}},
                          '"t"', "app_key", env=env)
        self.assertNotIn(secret, "".join(self.outputs))

    def test_config_path_defaults(self):
        """--config wins; then $HERALD_CONFIG; then ./herald.json in the working directory."""
        os.mkdir(os.path.join(self.dir, "elsewhere"))
        alt = os.path.join(self.dir, "elsewhere", "channels.json")
        with open(alt, "w") as f:
            json.dump({"channels": {"alt": FEIHE}}, f)
        self.config({"fh": FEIHE})

        def run(args, env_extra, cwd):
            env = dict(os.environ)
            env.pop("HERALD_CONFIG", None)
            env.pop("HERALD_DB", None)
            env.update(env_extra)
            p = subprocess.run([harness.HERALD] + args, env=env, capture_output=True, cwd=cwd,
                               timeout=60 * harness.SLOW)
            return p.returncode, p.stderr.decode()

        alt_def = self.write("alt.json", definition("alt", "a1"))
        fh_def = self.write("fh.json", definition("fh", "f1"))
        db = ["--db", self.db]
        # ./herald.json in the working directory
        self.assertEqual(run(db + ["import", fh_def, "--dry-run"], {}, self.dir)[0], 0)
        self.assertEqual(run(db + ["import", alt_def, "--dry-run"], {}, self.dir)[0], 65)
        # $HERALD_CONFIG
        self.assertEqual(run(db + ["import", alt_def, "--dry-run"], {"HERALD_CONFIG": alt},
                             self.dir)[0], 0)
        # --config beats $HERALD_CONFIG, before or after the command
        self.assertEqual(run(db + ["--config", self.config_path, "import", fh_def, "--dry-run"],
                             {"HERALD_CONFIG": alt}, self.dir)[0], 0)
        self.assertEqual(run(db + ["import", alt_def, "--dry-run", "--config=" + alt], {},
                             self.dir)[0], 0)
        # no file where the default points: 78
        rc, err = run(db + ["import", fh_def], {}, os.path.join(self.dir, "elsewhere"))
        self.assertEqual(rc, 78, err)
        self.assertIn("herald.json", err)

    def test_campaign_naming_missing_channel_is_65(self):
        self.config({"fh": FEIHE})
        rc, _, err = self.run_herald("import", self.write("x.json", definition("nope")))
        self.assertEqual(rc, 65, err)
        self.assertIn("nope", err)

    def test_broken_config_stops_run(self):
        self.config_error({"channels": {"fh": dict(FEIHE, colour=1)}}, "colour",
                          command=("run", "--once"))

    def test_secrets_never_printed_or_stored(self):
        secrets = {
            "tan_key": "TANKEY-s3cr3t-01a",
            "api_token": "APITOKEN-s3cr3t-02b",
            "tim_key": "TIMKEY-s3cr3t-03c",
            "usersig": "USERSIG-s3cr3t-04d",
            "sign_key": "SIGNKEY-s3cr3t-05e",
        }
        env = {"HERALD_TEST_API_TOKEN": secrets["api_token"],
               "HERALD_TEST_TIM_KEY": secrets["tim_key"]}
        mock = self.mock("--tanmarket-app-id", "app-1", "--tanmarket-app-key", secrets["tan_key"],
                         "--apiusb-token", secrets["api_token"], "--tim-sdkappid", "1400000000",
                         "--tim-identifier", "admin", "--tim-secret", secrets["tim_key"],
                         "--sainiu-sign-key", secrets["sign_key"])
        channels = {
            "tan": {"provider": "tanmarket", "base_url": mock.url, "app_id": "app-1",
                    "app_key": secrets["tan_key"]},
            "api": {"provider": "apiusb", "base_url": mock.url,
                    "access_token_env": "HERALD_TEST_API_TOKEN"},
            "desk": {"provider": "tencent_desk", "base_url": mock.url, "sdkappid": 1400000000,
                     "identifier": "admin", "secret_key_env": "HERALD_TEST_TIM_KEY",
                     "from_account": "service"},
            "desk2": {"provider": "tencent_desk", "base_url": mock.url, "sdkappid": 1400000000,
                      "identifier": "admin", "usersig": secrets["usersig"],
                      "from_account": "service"},
            "sn": {"provider": "sainiu", "base_url": mock.url, "sign_key": secrets["sign_key"]},
            "fh": {"provider": "feihe", "base_url": mock.url},
        }
        self.config(channels)
        defs = {
            "tan": definition("tan", "k-tan", {"contents": [{"type": 1, "text": "群发"}]},
                              [{"chat_id": "wr-1", "chat_owner": "o-1"}]),
            "api": definition("api", "k-api", {"type": "text", "data": "hi {{id}}"}),
            "desk": definition("desk", "k-desk"),
            "desk2": definition("desk2", "k-desk2"),
            "sn": definition("sn", "k-sn"),
            "fh": definition("fh", "k-fh"),
        }
        for name, d in defs.items():
            path = self.write(name + ".json", d)
            rc, out, err = self.run_herald("import", path, "--dry-run", env=env)
            self.assertEqual(rc, 0, err)
            rc, out, err = self.run_herald("import", path, env=env)
            self.assertEqual(rc, 0, err)
        rc, out, err = self.run_herald("import", self.write("bad.json", dict(defs["desk"], x=1)),
                                       env=env)
        self.assertEqual(rc, 65)
        # One pass to the mock, once with everything accepted, once with every call failing.
        rc, out, err = self.run_herald("run", "--once", "--verbose", "--now",
                                       "2026-11-23T10:00:30+08:00", env=env)
        self.assertEqual(rc, 0, err)
        self.assertTrue(mock.requests(), "the scheduler sent nothing")
        mock.rules([{"provider": "*", "times": 0, "status": 500}])
        for d in defs.values():
            d["key"] += "-b"
            rc, out, err = self.run_herald("import", self.write("again.json", d), env=env)
            self.assertEqual(rc, 0, err)
        self.run_herald("run", "--once", "--verbose", "--log-format", "json", "--now",
                        "2026-11-23T10:00:40+08:00", env=env)
        self.assertTrue(any(r["verdict"] == "scripted" for r in mock.requests()))
        for key in [d["key"] for d in defs.values()] + [d["key"][:-2] for d in defs.values()]:
            for cmd in (("status", key), ("status", key, "--json"), ("deliveries", key),
                        ("deliveries", key, "--json"), ("attempts", key),
                        ("attempts", key, "--json")):
                rc, out, err = self.run_herald(*cmd, env=env)
                self.assertEqual(rc, 0, err)
        for cmd in (("status",), ("status", "--json"), ("migrate",), ("--help",)):
            self.run_herald(*cmd, env=env)
        # configuration errors next to secrets
        for bad in (dict(channels, tan=dict(channels["tan"], colour="x")),
                    dict(channels, desk2=dict(channels["desk2"], sdkappid="x")),
                    dict(channels, api=dict(channels["api"], batch_size=0)),
                    dict(channels, desk=dict(channels["desk"], usersig=secrets["usersig"]))):
            self.write("herald.json", {"channels": bad})
            rc, _, _ = self.run_herald("import", self.defn, env=env)
            self.assertEqual(rc, 78)
        self.write("herald.json", '{"channels": {"tan": {"app_key": "%s" ' % secrets["tan_key"])
        self.assertEqual(self.run_herald("import", self.defn, env=env)[0], 78)

        everything = "\n".join(self.outputs)
        for name, value in secrets.items():
            self.assertNotIn(value, everything, "secret %s printed" % name)
            self.assertNotIn(value[:12], everything, "part of secret %s printed" % name)
        self.assertNotIn("usersig=", everything)
        stored = b""
        for f in os.listdir(self.dir):
            if f.startswith("herald.db"):
                with open(os.path.join(self.dir, f), "rb") as fh:
                    stored += fh.read()
        # On a server the rows are what is stored; on SQLite the files hold them (and more).
        stored += repr(self.db_snapshot()).encode()
        self.assertGreater(len(stored), 0)
        for name, value in secrets.items():
            self.assertNotIn(value.encode(), stored, "secret %s stored in the database" % name)


    @harness.sqlite_only("its mode bits and side files")
    def test_files_are_private(self):
        """The database, its -wal and -shm and the runners' lock file are created 0600 whatever
        the umask: they hold recipients and messages."""
        self.config({"fh": FEIHE})
        old = os.umask(0o022)
        try:
            self.ok("import", self.defn)
            run = self.spawn("run")
            files = [self.db + suffix for suffix in ("", "-wal", "-shm", "-runners.lock")]
            harness.wait_until(lambda: all(os.path.exists(f) for f in files),
                               what="the database, its -wal/-shm and the lock file")
            for f in files:
                self.assertEqual(stat.S_IMODE(os.stat(f).st_mode), 0o600, f)
            run.send_signal(signal.SIGTERM)
            self.assertEqual(run.wait(timeout=30 * harness.SLOW), 0)
            # a umask that would take the owner's own bits does not change the mode either
            os.umask(0o277)
            other = os.path.join(self.dir, "other.db")
            self.ok("--db", other, "migrate")
            self.assertEqual(stat.S_IMODE(os.stat(other).st_mode), 0o600)
        finally:
            os.umask(old)

    def test_process_not_dumpable(self):
        """herald clears its dumpable flag (no core dumps of a process holding secrets). The
        kernel shows it by giving the files under the process's /proc directory to root; as
        root the test runs herald as nobody to see that."""
        self.config({"fh": FEIHE})
        as_nobody = os.getuid() == 0
        if as_nobody:
            os.chmod(self.dir, 0o777)
            os.chmod(self.config_path, 0o644)
        p = subprocess.Popen([harness.HERALD, "--db", self.db, "--config", self.config_path,
                              "import", "-"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, cwd=self.dir,
                             preexec_fn=(lambda: os.setuid(65534)) if as_nobody else None)
        self.procs.append(p)
        proc = "/proc/%d" % p.pid

        def waiting_on_stdin():
            # herald, not the forked Python before exec, blocked in read long after main began
            with open(proc + "/cmdline", "rb") as f:
                if b"import" not in f.read():
                    return False
            with open(proc + "/wchan") as f:
                return p.poll() is None and f.read() not in ("", "0")
        harness.wait_until(waiting_on_stdin, what="herald waiting on stdin")
        # looked up only now: the kernel caches /proc inodes with the owner seen first
        self.assertEqual(os.stat(proc + "/environ").st_uid, 0)
        with open(proc + "/status") as f:
            uid = [line.split()[1] for line in f if line.startswith("Uid:")][0]
        self.assertNotEqual(uid, "0")
        p.stdin.close()
        p.wait(timeout=30 * harness.SLOW)

    def test_plain_http_only_to_loopback(self):
        """SPEC §2 allow_insecure_http: credentials never travel in clear off this machine
        unless the channel says so."""
        for url in ("http://example.com", "http://10.0.0.7:8080/api", "http://127.0.0.1.example.com",
                    "http://[2001:db8::1]:80", "http://localhost.example.com",
                    "http://user:pw-77e1@10.0.0.1/x"):
            err = self.config_error({"channels": {"fh": dict(FEIHE, base_url=url)}},
                                    '"fh"', "base_url", "allow_insecure_http")
            self.assertNotIn("pw-77e1", err)
        # loopback, https, or said out loud
        for ch in (dict(FEIHE, base_url="http://127.0.0.1:9"), dict(FEIHE, base_url="http://127.8.9.10"),
                   dict(FEIHE, base_url="http://localhost:9/x"), dict(FEIHE, base_url="http://[::1]:9"),
                   dict(FEIHE, base_url="https://guide-api.feihe.com"),
                   dict(FEIHE, base_url="http://10.0.0.7:8080", allow_insecure_http=True),
                   dict(FEIHE, base_url="http://10.0.0.7", allow_insecure_http_env="HERALD_TEST_INSECURE")):
            self.config({"fh": ch})
            rc, out, err = self.run_herald("import", self.defn, "--dry-run",
                                           env={"HERALD_TEST_INSECURE": "true"})
            self.assertEqual(rc, 0, "%s: %s" % (ch, err))
        self.config_error({"channels": {"fh": dict(FEIHE, base_url="http://10.0.0.7",
                                                   allow_insecure_http=False)}}, "base_url")
        self.config_error({"channels": {"fh": dict(FEIHE, allow_insecure_http="yes")}},
                          '"fh"', "allow_insecure_http")
        # another provider, the same rule
        self.config_error({"channels": {"sn": {"provider": "sainiu",
                                               "base_url": "http://sainiu.example.com"}}}, '"sn"')

    def test_secrets_needed_only_where_used(self):
        """SPEC §2: a command needs the secrets of the channels it touches, not of every one."""
        mock = self.mock()
        unset = {"tan": dict(TAN, app_key_env="HERALD_TEST_UNSET_KEY"),
                 "desk": {"provider": "tencent_desk", "sdkappid": 1400000000, "identifier": "a",
                          "secret_key_env": "HERALD_TEST_UNSET_TIM", "base_url": mock.url},
                 "slow": dict(FEIHE, max_in_flight_env="HERALD_TEST_UNSET_N")}
        self.config(dict(unset, fh=dict(FEIHE, base_url=mock.url)))
        env = {k: "" for k in ("HERALD_TEST_UNSET_KEY", "HERALD_TEST_UNSET_TIM",
                               "HERALD_TEST_UNSET_N")}
        # import onto a channel whose keys are all there; then status and friends need none
        self.ok("import", self.defn, env=env)
        for cmd in (("status",), ("status", "c1"), ("deliveries", "c1"), ("attempts", "c1"),
                    ("migrate",)):
            self.ok(*cmd, env=env)
        # import onto a channel lacking only its secret: validation needs none
        self.ok("import", self.write("d.json", definition("desk", "d1")), env=env)
        # a channel lacking a setting (which shapes sending) cannot take an import
        rc, out, err = self.run_herald("import", self.write("s.json", definition("slow", "s1")),
                                       env=env)
        self.assertEqual(rc, 78, err)
        for needle in ('"slow"', "max_in_flight_env", "HERALD_TEST_UNSET_N"):
            self.assertIn(needle, err)
        # run: the desk campaign waits on a channel without its secret: refused, nothing sent
        before = self.db_snapshot()
        rc, out, err = self.run_herald("run", "--once", "--now", "2026-11-23T10:00:30+08:00",
                                       env=env)
        self.assertEqual(rc, 78, err)
        for needle in ('"desk"', "secret_key_env", "HERALD_TEST_UNSET_TIM"):
            self.assertIn(needle, err)
        self.assertEqual(mock.requests(), [])
        self.assertEqual(self.db_snapshot(), before)
        # paused, it waits on nobody: the run sends on fh and leaves desk alone
        self.ok("pause", "d1", env=env)
        self.ok("run", "--once", "--now", "2026-11-23T10:00:30+08:00", env=env)
        self.assertEqual(self.counts("c1")["sent"], 2)
        self.assertEqual(self.counts("d1")["pending"], 2)
        self.assertEqual({r["provider"] for r in mock.requests()}, {"feihe"})

if __name__ == "__main__":
    harness.main()
