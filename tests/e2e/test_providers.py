#!/usr/bin/env python3
"""End-to-end tests of each provider: the real herald binary against the real herald-mock, with
the example channels file and campaigns from examples/ (loaded, pointed at the test's mock,
dated into the future, written into the test's temp dir with their recipient files).

The mock checks every request against the provider's document and records why it rejects one,
so each test also proves the mock rejected nothing it was not meant to. Time is driven with
`herald run --once --now TIME`, one process per run (so every run is also a restart), at times
after the real clock: the mock checks SaiNiu's 2 hours, Tanmarket's timestamp and Tencent's
UserSig against its own real clock.

    HERALD_BIN=build/herald HERALD_MOCK=build/herald-mock HERALD_SRC=. \
        python3 tests/e2e/test_providers.py
"""
import csv
import datetime
import hashlib
import json
import os
import re
import shutil
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SRC, HeraldTest, main  # noqa: E402

EXAMPLES = os.path.join(SRC, "examples")
SHANGHAI = datetime.timezone(datetime.timedelta(hours=8))  # no DST since 1991
MINUTE = datetime.timedelta(minutes=1)
HOUR = datetime.timedelta(hours=1)
WEEK = datetime.timedelta(days=7)
WEEK_MS = 7 * 24 * 3600 * 1000

# Demo credentials, as scripts/demo uses them: herald reads them from the environment (the
# channels file names the variables), the mock from MOCK_* variables.
SECRETS = {
    "TIM_SECRET_KEY": "e2e-tim-secret-key-6f1d0c2b",
    "APIUSB_TOKEN": "e2e-apiusb-token-93a7",
    "TANMARKET_APP_KEY": "e2e-tanmarket-key-41c8",
}
MOCK_SECRETS = {
    "MOCK_TIM_SECRET": SECRETS["TIM_SECRET_KEY"],
    "MOCK_APIUSB_TOKEN": SECRETS["APIUSB_TOKEN"],
    "MOCK_TANMARKET_APP_KEY": SECRETS["TANMARKET_APP_KEY"],
}
SAINIU_SIGN_KEY = "e2e-sainiu-sign-key-5b2e"

PLACEHOLDER = re.compile(r"\{\{([^{}|]+)(?:\|([^{}]*))?\}\}")


def load_example(name):
    with open(os.path.join(EXAMPLES, name), encoding="utf-8") as f:
        return json.load(f)


def ms(t):
    return int(t.timestamp() * 1000)


def parse_time(text):
    return datetime.datetime.fromisoformat(text)


def parse_duration(text):
    """The subset of herald's durations the examples use (d h m s)."""
    parts = re.fullmatch(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text)
    assert parts and text, "unsupported duration %r" % text
    d, h, m, s = (int(p or 0) for p in parts.groups())
    return datetime.timedelta(days=d, hours=h, minutes=m, seconds=s)


def render(template, rid, variables):
    """What herald's {{var|default}} rendering must produce (SPEC §3)."""
    def one(m):
        name, default = m.group(1), m.group(2)
        value = rid if name == "id" else variables.get(name)
        if value in (None, ""):
            assert default is not None, "no value for {{%s}}" % name
            return default
        return value
    return PLACEHOLDER.sub(one, template)


def recipients_of(campaign):
    """(id, vars) of every recipient: inline ones, then the recipients file's rows."""
    out = [(r.get("id"), r.get("vars", {})) for r in campaign.get("recipients", [])]
    name = campaign.get("recipients_file")
    if name and name.endswith(".jsonl"):
        with open(os.path.join(EXAMPLES, name), encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    r = json.loads(line)
                    out.append((r["id"], r.get("vars", {})))
    elif name:
        with open(os.path.join(EXAMPLES, name), encoding="utf-8-sig", newline="") as f:
            for row in csv.DictReader(f):
                rid = row.pop("id")
                row.pop("enrolled_at", None)
                out.append((rid, row))
    return out


def form(body):
    """A form body as a dict; fails on a repeated name."""
    pairs = urllib.parse.parse_qsl(body, keep_blank_values=True, strict_parsing=True)
    names = [n for n, _ in pairs]
    assert len(names) == len(set(names)), "repeated form parameter: %r" % names
    return dict(pairs)


class ProviderTest(HeraldTest):
    """The example config and campaigns against a fresh mock, dated from day 1 = D1."""

    def setUp(self):
        super().setUp()
        today = datetime.datetime.now(SHANGHAI).date()
        # Far enough ahead that every --now below is after the real clock.
        self.d1 = today + datetime.timedelta(days=30)
        self.channels = load_example("herald.json")
        self.env = dict(SECRETS)

    def at(self, day, hhmm):
        """Campaign day `day` (day 1 = self.d1) at HH:MM[:SS], Asia/Shanghai."""
        date = self.d1 + datetime.timedelta(days=day - 1)
        return datetime.datetime.combine(date, datetime.time.fromisoformat(hhmm), SHANGHAI)

    def date(self, day):
        return (self.d1 + datetime.timedelta(days=day - 1)).isoformat()

    def channel(self, name):
        return self.channels["channels"][name]

    def start_mock(self, *args, env=None):
        tim = self.channel("desk")
        full_env = dict(MOCK_SECRETS)
        full_env.update(env or {})
        return self.mock(
            "--feihe-system", self.channel("feihe-prod").get("system", "NEW_MEMBER"),
            "--tim-sdkappid", str(tim["sdkappid"]), "--tim-identifier", tim["identifier"],
            "--tanmarket-app-id", self.channel("groups")["app_id"], *args, env=full_env)

    def write_config(self, mock):
        """The example channels file with every base_url at the mock."""
        doc = json.loads(json.dumps(self.channels))
        for ch in doc["channels"].values():
            ch["base_url"] = mock.url
        # A retry comes due 30-60 s later: never inside the same --once pass, however slow
        # the build (sanitizers), and always by the next pass, minutes later.
        doc.setdefault("scheduler", {})["backoff_base_ms"] = 60000
        doc["scheduler"]["backoff_max_ms"] = 60000
        self.write("herald.json", doc)

    def example(self, name, start_day=1):
        """An example campaign dated to start on day start_day; its recipient file is copied."""
        doc = load_example(name + ".json")
        # at() builds times at +08:00: the examples must be in Beijing time.
        self.assertEqual(doc.get("timezone", "Asia/Shanghai"), "Asia/Shanghai")
        doc["start_date"] = self.date(start_day)
        if doc.get("recipients_file"):
            shutil.copy(os.path.join(EXAMPLES, doc["recipients_file"]), self.dir)
        return doc

    def import_campaign(self, doc, filename=None):
        path = self.write(filename or doc["key"] + ".json", doc)
        return self.ok("import", path, env=self.env)

    def run_once(self, when, env=None):
        full_env = dict(self.env)
        full_env.update(env or {})
        return self.ok("run", "--once", "--now", when.isoformat(), env=full_env)

    def by_recipient(self, key, step=None):
        return {d["recipient"]: d for d in self.deliveries(key)
                if step is None or d["step"] == step}

    def add_rules(self, mock, rules):
        """Adds mock rules; returns their ids."""
        return mock.rules(rules)

    def assert_no_rejected(self, mock):
        bad = [r for r in mock.requests() if r["verdict"] == "rejected"]
        self.assertEqual(bad, [], "the mock rejected requests")

    def assert_scripted_valid(self, records):
        """A request answered by a rule was still checked: "rule N" alone means it was valid."""
        for r in records:
            if r["verdict"] == "scripted":
                self.assertRegex(r["reason"], r"^rule \d+( omitted .*)?$", r)


class FeiheTest(ProviderTest):

    def test_bodies_and_errcodes(self):
        mock = self.start_mock()
        self.write_config(mock)
        camp = self.example("feihe")
        self.import_campaign(camp)
        key = camp["key"]
        system = self.channel(camp["channel"])["system"]
        members = recipients_of(camp)
        self.assertEqual(len(members), 6)
        ids = [rid for rid, _ in members]
        failed_id, deferred_id, busy_id = ids[1], ids[2], ids[3]
        mock.rules([
            {"provider": "feihe", "match": failed_id, "code": 40003, "message": "invalid openid"},
            {"provider": "feihe", "match": deferred_id, "code": 45009,
             "message": "reach max api daily quota limit"},
            {"provider": "feihe", "match": busy_id, "code": -1, "message": "system error"},
        ])

        self.run_once(self.at(1, "10:00:30"))
        reqs = mock.requests("feihe")
        self.assertEqual(len(reqs), 6, reqs)
        template = camp["steps"][0]["message"]["text"]
        expected = {rid: {"openId": rid, "msg": render(template, rid, v)} for rid, v in members}
        # The placeholders as the examples fill them: a value, an empty cell's default, quotes.
        self.assertEqual(expected[ids[0]]["msg"], "小王，欢迎加入飞鹤会员！")
        self.assertEqual(expected[ids[3]]["msg"], "亲爱的会员，欢迎加入飞鹤会员！")
        self.assertEqual(expected[ids[5]]["msg"], '陈"小"明，欢迎加入飞鹤会员！')
        got = {}
        for r in reqs:
            self.assertEqual(r["method"], "POST")
            self.assertEqual(r["headers"]["system"], system)
            self.assertRegex(r["headers"]["content-type"], r"^application/json")
            body = json.loads(r["body"])
            self.assertNotIn(body["openId"], got, "two requests for one openId")
            got[body["openId"]] = body
        self.assertEqual(got, expected)
        self.assert_scripted_valid(reqs)

        dl = self.by_recipient(key, step=1)
        self.assertEqual({r: d["state"] for r, d in dl.items()}, {
            ids[0]: "sent", failed_id: "failed", deferred_id: "deferred", busy_id: "retrying",
            ids[4]: "sent", ids[5]: "sent"})
        self.assertIn("invalid openid", dl[failed_id]["last_error"])
        att = self.attempts(key, "--recipient", failed_id)
        self.assertEqual(len(att), 1)
        self.assertEqual((att[0]["http_status"], att[0]["provider_code"],
                          att[0]["provider_message"], att[0]["outcome"]),
                         (200, "40003", "invalid openid", "failed"))
        att = self.attempts(key, "--recipient", deferred_id)
        self.assertEqual((att[0]["provider_code"], att[0]["outcome"]), ("45009", "deferred"))
        att = self.attempts(key, "--recipient", busy_id)
        self.assertEqual((att[0]["provider_code"], att[0]["outcome"]), ("-1", "retrying"))
        self.assertTrue(all(d["state"] == "pending" for d in self.by_recipient(key, 2).values()))

        # The retry goes out on the next pass; the deferred one stays deferred.
        self.run_once(self.at(1, "10:05"))
        reqs = mock.requests("feihe")
        self.assertEqual(len(reqs), 7)
        self.assertEqual(json.loads(reqs[-1]["body"])["openId"], busy_id)
        self.assertEqual(reqs[-1]["verdict"], "accepted")
        self.assertEqual(self.by_recipient(key, 1)[busy_id]["state"], "sent")
        # 45009 is the daily quota: deferred to the next 00:00 Beijing time.
        st = self.status(key)
        self.assertEqual(st["counts"]["deferred"], 1)
        self.assertEqual(parse_time(st["next_due_at"]), self.at(2, "00:00"))

        self.run_once(self.at(1, "23:59:30"))
        self.assertEqual(len(mock.requests("feihe")), 7, "a deferred delivery went early")
        self.assertEqual(self.by_recipient(key, 1)[deferred_id]["state"], "deferred")

        self.run_once(self.at(2, "00:00:30"))
        reqs = mock.requests("feihe")
        self.assertEqual(len(reqs), 8)
        self.assertEqual(json.loads(reqs[-1]["body"]), expected[deferred_id])
        dl = self.by_recipient(key, 1)
        self.assertEqual(dl[deferred_id]["state"], "sent")
        self.assertEqual(dl[deferred_id]["attempts"], 2)
        counts = self.counts(key)
        self.assertEqual((counts["sent"], counts["failed"], counts["pending"]), (5, 1, 6))
        self.assert_no_rejected(mock)


class TencentDeskTest(ProviderTest):

    def check_query(self, record):
        tim = self.channel("desk")
        pairs = urllib.parse.parse_qsl(record["query"], keep_blank_values=True,
                                       strict_parsing=True)
        q = dict(pairs)
        self.assertEqual(len(pairs), 5, record["query"])
        self.assertEqual(set(q), {"sdkappid", "identifier", "usersig", "random", "contenttype"})
        self.assertEqual(q["sdkappid"], str(tim["sdkappid"]))
        self.assertEqual(q["identifier"], tim["identifier"])
        self.assertEqual(q["contenttype"], "json")
        self.assertRegex(q["random"], r"^\d+$")
        self.assertTrue(q["usersig"])
        return q

    def test_send_retry_and_msg_random(self):
        mock = self.start_mock()
        self.write_config(mock)
        camp = self.example("tencent_desk")
        self.import_campaign(camp)
        key = camp["key"]
        user = camp["recipients"][0]
        session = camp["recipients"][1]["session_id"]
        from_account = self.channel(camp["channel"])["from_account"]
        # The first request for the user fails with HTTP 500, so it is resent.
        mock.rules([{"provider": "tencent_desk", "match": user["id"], "status": 500}])

        self.run_once(self.at(1, "10:00:30"))
        dl = self.by_recipient(key, 1)
        self.assertEqual(dl[user["id"]]["state"], "retrying")
        self.assertEqual(dl[session]["state"], "sent")
        self.run_once(self.at(1, "10:05"))
        self.assertEqual(self.by_recipient(key, 1)[user["id"]]["state"], "sent")
        self.run_once(self.at(2, "11:00:30"))
        self.assertTrue(all(d["state"] == "sent" for d in self.deliveries(key)))

        reqs = mock.requests("tencent_desk")
        self.assertEqual([r["verdict"] for r in reqs].count("accepted"), 4, reqs)
        self.assertEqual(len(reqs), 5)
        self.assert_scripted_valid(reqs)
        queries = [self.check_query(r) for r in reqs]
        self.assertEqual(len({q["random"] for q in queries}), 5, "random repeated")
        bodies = [json.loads(r["body"]) for r in reqs]
        for r in reqs:
            self.assertRegex(r["headers"]["content-type"], r"^application/json")

        def addressed(b):
            return b.get("ToAccount", b.get("SessionId"))

        step1 = camp["steps"][0]["message"]["text"]
        for b in bodies[:3]:
            self.assertIsInstance(b["MsgRandom"], int)
            if "SessionId" in b:
                want = {"SessionId": session,
                        "MsgBody": [{"MsgType": "TIMTextElem",
                                     "MsgContent": {"Text": render(step1, session, {})}}]}
            else:
                want = {"FromAccount": from_account, "ToAccount": user["id"],
                        "MsgBody": [{"MsgType": "TIMTextElem",
                                     "MsgContent": {"Text": render(step1, user["id"],
                                                                   user["vars"])}}]}
            self.assertEqual({k: v for k, v in b.items() if k != "MsgRandom"}, want)
        # The user's two requests: the retry reuses the delivery's MsgRandom.
        user1 = [i for i in range(3) if bodies[i].get("ToAccount") == user["id"]]
        self.assertEqual(len(user1), 2)
        self.assertEqual(bodies[user1[0]]["MsgBody"][0]["MsgContent"]["Text"],
                         "张先生，感谢您的咨询，请问问题解决了吗？")
        self.assertEqual(reqs[user1[0]]["verdict"], "scripted")
        self.assertEqual(reqs[user1[1]]["verdict"], "accepted")
        self.assertEqual(bodies[user1[0]]["MsgRandom"], bodies[user1[1]]["MsgRandom"])
        self.assertNotEqual(queries[user1[0]]["random"], queries[user1[1]]["random"])
        # Step 2: the custom element's Data is the object as a JSON string.
        msg2 = camp["steps"][1]["message"]
        for b in bodies[3:]:
            self.assertEqual(len(b["MsgBody"]), 1)
            elem = b["MsgBody"][0]
            self.assertEqual(elem["MsgType"], "TIMCustomElem")
            self.assertEqual(set(elem["MsgContent"]), {"Data"})
            self.assertIsInstance(elem["MsgContent"]["Data"], str)
            self.assertEqual(json.loads(elem["MsgContent"]["Data"]), msg2["data"])
            self.assertEqual(b["CloudCustomData"], msg2["cloud_custom_data"])
            self.assertEqual(b["ExcludeFromUserRespTimeout"], 1)
        self.assertEqual({addressed(b) for b in bodies[3:]}, {user["id"], session})
        # One MsgRandom per delivery, different between deliveries.
        per_delivery = {(addressed(b), i >= 3): b["MsgRandom"] for i, b in enumerate(bodies)}
        self.assertEqual(len(per_delivery), 4)
        self.assertEqual(len(set(per_delivery.values())), 4, per_delivery)

        att = self.attempts(key, "--recipient", user["id"])
        self.assertEqual([(a["step"], a["http_status"], a["outcome"]) for a in att],
                         [(1, 500, "retrying"), (1, 200, "sent"), (2, 200, "sent")])
        self.assert_no_rejected(mock)

    def test_wrong_secret_key(self):
        mock = self.start_mock()
        self.write_config(mock)
        camp = self.example("tencent_desk")
        self.import_campaign(camp)
        key = camp["key"]
        wrong = "e2e-not-the-tim-secret-key"
        out = self.run_once(self.at(1, "10:00:30"), env={"TIM_SECRET_KEY": wrong})
        self.assertNotIn(wrong, out)
        # A UserSig the provider refuses is the channel's fault: it is suspended, and the
        # deliveries wait for it with no attempt spent (SPEC 5.11).
        dl = self.by_recipient(key, 1)
        self.assertEqual([(d["state"], d["attempts"]) for d in dl.values()],
                         [("pending", 0), ("pending", 0)])
        for rid in dl:
            att = self.attempts(key, "--recipient", rid)
            self.assertEqual(len(att), 1)
            self.assertEqual((att[0]["provider_code"], att[0]["outcome"]), ("70009", "requeued"))
        ch = self.json("channels", env=self.env)["channels"]
        desk = [c for c in ch if c["provider"] == "tencent_desk"][0]
        self.assertEqual(desk["state"], "suspended")
        self.assertIn("70009", desk["reason"])
        reqs = mock.requests("tencent_desk")
        self.assertEqual(len(reqs), 2)
        for r in reqs:
            self.assertEqual(r["verdict"], "rejected")
            self.assertIn("usersig", r["reason"].lower())
        self.assertNotIn(wrong, json.dumps(self.attempts(key)))

    def test_message_over_12kb_rejected_at_import(self):
        mock = self.start_mock()
        self.write_config(mock)
        camp = self.example("tencent_desk")
        # The template is small; the user's name makes the rendered body over 12 KB.
        camp["recipients"][0]["vars"]["name"] = "长" * 4200
        path = self.write("big.json", camp)
        self.ok("migrate", env=self.env)
        before = self.db_snapshot()
        rc, out, err = self.herald("import", path, env=self.env)
        self.assertEqual(rc, 65, err)
        self.assertRegex(err, r"12 ?KB|12288")
        self.assertIn(camp["recipients"][0]["id"], err)
        self.assertEqual(self.db_snapshot(), before)
        self.assertEqual(mock.requests(), [])


class ApiusbTest(ProviderTest):

    def bulk(self, record):
        """(uuids, form) of one BulkSend request, checked against the document's shape."""
        self.assertEqual(record["method"], "POST")
        self.assertEqual(dict(urllib.parse.parse_qsl(record["query"])),
                         {"s": "Platform.ChatMessage.BulkSend"})
        self.assertRegex(record["headers"]["content-type"], r"^application/x-www-form-urlencoded")
        f = form(record["body"])
        # masked in the mock's records; the mock itself refuses a wrong token (406)
        self.assertEqual(f["access_token"], "***")
        uuids = f["chat_message_to_uuid"].split(",")
        self.assertEqual(len(uuids), len(set(uuids)))
        return uuids, f

    def test_bulk_send(self):
        mock = self.start_mock()
        self.write_config(mock)
        camp = self.example("apiusb")
        self.import_campaign(camp)
        key = camp["key"]
        batch = self.channel(camp["channel"])["batch_size"]
        members = [rid for rid, _ in recipients_of(camp)]
        self.assertEqual((len(members), batch), (250, 100))
        omitted = {members[i] for i in (0, 57, 123, 199, 249)}
        mock.rules([{"provider": "apiusb", "match": m, "omit": True} for m in sorted(omitted)])

        self.run_once(self.at(1, "10:00:30"))
        reqs = mock.requests("apiusb")
        self.assertEqual(len(reqs), 3, [len(r["body"]) for r in reqs])
        self.assert_scripted_valid(reqs)
        seen, sizes, ids, serial = [], [], {}, 1
        msg1 = camp["steps"][0]["message"]
        for r in reqs:
            uuids, f = self.bulk(r)
            self.assertEqual(f["chat_message_type"], msg1["type"])
            self.assertEqual(f["chat_message_data"], msg1["data"])
            self.assertNotIn("ext_data", f)
            self.assertEqual(r["verdict"], "scripted" if omitted & set(uuids) else "accepted")
            # The mock numbers chat_message_id per member in arrival order ("m-<n>").
            n = serial
            for u in uuids:
                if u not in omitted:
                    ids[u] = "m-%d" % n
                    n += 1
            serial += len(uuids)
            seen.extend(uuids)
            sizes.append(len(uuids))
        self.assertEqual(sorted(sizes), [50, 100, 100])
        self.assertEqual(sorted(seen), sorted(members))

        dl = self.by_recipient(key, 1)
        self.assertEqual(len(dl), 250)
        for m, d in dl.items():
            if m in omitted:
                self.assertEqual(d["state"], "failed", m)
                self.assertIn("not in data.item", d["last_error"])
                self.assertIsNone(d["provider_message_id"])
            else:
                self.assertEqual((d["state"], d["provider_message_id"]), ("sent", ids[m]), m)

        # Step 2: the first BulkSend to arrive meets HTTP 503 (the provider did nothing: safe
        # to retry), the others are accepted. A refused token is test_faults' business.
        busy_rule, = self.add_rules(mock, [{"provider": "apiusb", "status": 503}])
        self.run_once(self.at(2, "10:00:30"))
        reqs = mock.requests("apiusb")[3:]
        self.assertEqual(len(reqs), 3)
        self.assert_scripted_valid(reqs)
        msg2 = camp["steps"][1]["message"]
        by_rule = {}
        for r in reqs:
            uuids, f = self.bulk(r)
            self.assertEqual(f["chat_message_type"], msg2["type"])
            self.assertEqual(json.loads(f["chat_message_data"]), msg2["data"])
            by_rule.setdefault(r["rule"], []).extend(uuids)
        busy = by_rule.pop(busy_rule)
        accepted = by_rule.pop(None)
        self.assertEqual(by_rule, {})
        dl = self.by_recipient(key, 2)
        for m in busy:
            self.assertEqual(dl[m]["state"], "retrying", m)
        att = self.attempts(key, "--recipient", busy[0])
        self.assertEqual((att[-1]["http_status"], att[-1]["outcome"]), (503, "retrying"))
        for m in accepted:
            self.assertEqual(dl[m]["state"], "sent", m)
            self.assertRegex(dl[m]["provider_message_id"], r"^m-\d+$")

        # The retried ones go together, as the one request they were, on the next pass.
        self.run_once(self.at(2, "10:05"))
        reqs = mock.requests("apiusb")[6:]
        self.assertEqual(len(reqs), 1)
        self.assertEqual(sorted(self.bulk(reqs[0])[0]), sorted(busy))
        self.assertEqual(reqs[0]["verdict"], "accepted")
        dl = self.by_recipient(key, 2)
        self.assertTrue(all(dl[m]["state"] == "sent" for m in busy))
        counts = self.counts(key)
        self.assertEqual((counts["sent"], counts["failed"]), (245 + 250, 5))
        self.assert_no_rejected(mock)


class SaiNiuTest(ProviderTest):
    # Set by a test: the mock's clock follows --now, so its once-a-week checks (calls and send
    # times) judge each call at the time Herald believes it is. Not with a sign key: Herald
    # signs with the real clock, and the mock checks the sign's time against its own.
    mock_follows_now = False

    def run_once(self, when, env=None):
        if self.mock_follows_now:
            for m in self.mocks:
                m.clock(ms(when) - int(time.time() * 1000))
        return super().run_once(when, env)

    def calls(self, mock):
        """(record, data, form) of every SaiNiu request; data is the parsed `data` JSON."""
        out = []
        for r in mock.requests("sainiu"):
            self.assertEqual(r["method"], "POST")
            self.assertEqual(r["query"], "")
            self.assertRegex(r["headers"]["content-type"],
                             r"^application/x-www-form-urlencoded")
            f = form(r["body"])
            self.assertEqual(f["post"], "SendCustomerServiceUserGroup")
            data = json.loads(f["data"])
            self.assertEqual(set(data), {"userNick", "text", "sendtime"})
            self.assertIsInstance(data["sendtime"], str)
            self.assertRegex(data["sendtime"], r"^\d{13}$")
            out.append((r, data, f))
        return out

    def lead(self):
        return parse_duration(self.channel("shop-notify")["lead"])

    def test_seven_day_rule_across_campaigns_and_restarts(self):
        self.mock_follows_now = True
        mock = self.start_mock()
        self.write_config(mock)
        lead = self.lead()
        # Two definitions on one channel naming the same sellers, due two days apart. Only the
        # first step is kept: the 7-day rule is about these two.
        first = self.example("sainiu")
        first["steps"] = first["steps"][:1]
        second = self.example("sainiu", start_day=3)
        second["key"] = first["key"] + "-later"
        second["steps"] = second["steps"][:1]
        self.import_campaign(first)
        self.import_campaign(second)
        nicks = sorted(r["id"] for r in first["recipients"])
        due1 = self.at(1, first["steps"][0]["time"])
        due2 = self.at(3, second["steps"][0]["time"])
        text = first["steps"][0]["message"]["text"]

        # Calls go `lead` ahead of the due time, not earlier.
        self.run_once(due1 - lead - MINUTE)
        self.assertEqual(mock.requests(), [])
        self.assertEqual(self.counts(first["key"])["pending"], len(nicks))
        call1 = due1 - lead + MINUTE
        self.run_once(call1)
        calls = self.calls(mock)
        self.assertEqual(sorted(d["userNick"] for _, d, _ in calls), nicks)
        for r, d, _ in calls:
            self.assertEqual(r["verdict"], "accepted", r)
            self.assertEqual(d["text"], text)
            self.assertEqual(d["sendtime"], str(ms(due1)))
            self.assertGreaterEqual(int(d["sendtime"]), ms(call1) + 2 * 3600 * 1000)
            self.assertGreaterEqual(int(d["sendtime"]), r["received_at_ms"] + 2 * 3600 * 1000)
        self.assertEqual(self.counts(first["key"])["sent"], len(nicks))
        sendtime1 = due1

        # The second campaign's call time comes: within 7 days of the first, so it is deferred.
        self.run_once(due2 - lead + MINUTE)
        self.assertEqual(len(mock.requests()), len(nicks), "sent within 7 days")
        dl = self.by_recipient(second["key"])
        self.assertEqual({n: d["state"] for n, d in dl.items()}, {n: "deferred" for n in nicks})
        st = self.status(second["key"])
        self.assertEqual(st["counts"]["deferred"], len(nicks))
        self.assertGreaterEqual(parse_time(st["next_due_at"]), sendtime1 + WEEK)
        for d in dl.values():
            # The delivery's last error says when it will go (README: "7-day rule").
            when = re.search(r"\d{4}-\d\d-\d\dT[\d:.]+(?:Z|[+-]\d\d:\d\d)|\b\d{13}\b",
                             d["last_error"] or "")
            self.assertTrue(when, d)
            when = when.group(0)
            self.assertGreaterEqual(int(when) if when.isdigit() else ms(parse_time(when)),
                                    ms(sendtime1 + WEEK), d)

        # Still deferred at its own due time and just before the week is over.
        self.run_once(due2)
        self.run_once(sendtime1 + WEEK - lead - MINUTE)
        self.assertEqual(len(mock.requests()), len(nicks), "sent within 7 days")
        dl = self.by_recipient(second["key"])
        self.assertEqual({n: d["state"] for n, d in dl.items()}, {n: "deferred" for n in nicks})

        # Once the week is over it goes, with a sendtime a week after the first.
        walk = sendtime1 + WEEK - lead + 2 * MINUTE
        self.run_once(walk)
        calls = self.calls(mock)
        self.assertEqual(len(calls), 2 * len(nicks), "not sent once the week was over: %r" % [
            (d["recipient"], d["state"], d["last_error"]) for d in self.deliveries(second["key"])])
        for r, d, _ in calls[len(nicks):]:
            self.assertEqual(r["verdict"], "accepted", r)
            self.assertGreaterEqual(int(d["sendtime"]), ms(sendtime1) + WEEK_MS)
            self.assertGreaterEqual(int(d["sendtime"]), ms(walk) + 2 * 3600 * 1000)
        dl = self.by_recipient(second["key"])
        self.assertEqual({n: d["state"] for n, d in dl.items()}, {n: "sent" for n in nicks})
        # Per seller: the accepted calls and their sendtimes are a week apart.
        for nick in nicks:
            times = sorted(int(d["sendtime"]) for _, d, _ in calls if d["userNick"] == nick)
            self.assertEqual(len(times), 2)
            self.assertGreaterEqual(times[1] - times[0], WEEK_MS)
            started = sorted(parse_time(a["started_at"])
                             for k in (first["key"], second["key"])
                             for a in self.attempts(k, "--recipient", nick)
                             if a["outcome"] == "sent")
            self.assertEqual(len(started), 2)
            self.assertGreaterEqual(started[1] - started[0], WEEK)
        self.assert_no_rejected(mock)

    def test_second_campaign_waits_for_the_call_week(self):
        # The first call is late (due in 30 minutes), so its send time is only 2h05m after
        # it: the send-time week then ends less than a lead after the call week, and only the
        # call week holds the second campaign back for its last 25 minutes.
        self.mock_follows_now = True
        mock = self.start_mock()
        self.write_config(mock)
        lead = self.lead()
        first = self.example("sainiu")
        first["steps"] = first["steps"][:1]
        second = self.example("sainiu", start_day=3)
        second["key"] = first["key"] + "-later"
        second["steps"] = second["steps"][:1]
        self.import_campaign(first)
        self.import_campaign(second)
        nicks = sorted(r["id"] for r in first["recipients"])
        call1 = self.at(1, first["steps"][0]["time"]) - 30 * MINUTE
        self.run_once(call1)
        calls = self.calls(mock)
        self.assertEqual(sorted(d["userNick"] for _, d, _ in calls), nicks)
        sendtime1 = max(int(d["sendtime"]) for _, d, _ in calls)
        self.assertLess(sendtime1 - ms(call1), ms(call1 + lead) - ms(call1))
        self.assertEqual(self.counts(first["key"])["sent"], len(nicks))
        # The second campaign's call time comes: within the week, so it is deferred.
        self.run_once(self.at(3, second["steps"][0]["time"]) - lead + MINUTE)
        self.assertEqual(len(mock.requests()), len(nicks), "called within 7 days")

        # Past the send-time week less a lead, inside the call week: nobody is called.
        inside = call1 + WEEK - 10 * MINUTE
        self.assertGreater(ms(inside), sendtime1 + WEEK_MS - ms(call1 + lead) + ms(call1))
        self.run_once(inside)
        self.assertEqual(len(mock.requests()), len(nicks), "called inside the call week")
        dl = self.by_recipient(second["key"])
        self.assertEqual({n: d["state"] for n, d in dl.items()}, {n: "deferred" for n in nicks})

        # The call week over: every seller is called once more, and the mock accepts it.
        after = call1 + WEEK + MINUTE
        self.run_once(after)
        calls = self.calls(mock)
        self.assertEqual(len(calls), 2 * len(nicks))
        for r, d, _ in calls[len(nicks):]:
            self.assertEqual(r["verdict"], "accepted", r)
            self.assertGreaterEqual(int(d["sendtime"]), sendtime1 + WEEK_MS)
        for nick in nicks:
            started = sorted(parse_time(a["started_at"])
                             for k in (first["key"], second["key"])
                             for a in self.attempts(k, "--recipient", nick)
                             if a["outcome"] == "sent")
            self.assertEqual(len(started), 2)
            self.assertGreaterEqual(started[1] - started[0], WEEK)
        self.assertEqual(self.counts(second["key"])["sent"], len(nicks))
        self.assert_no_rejected(mock)

    def test_due_closer_than_two_hours(self):
        mock = self.start_mock()
        self.write_config(mock)
        camp = self.example("sainiu")
        camp["steps"] = camp["steps"][:1]
        self.import_campaign(camp)
        due = self.at(1, camp["steps"][0]["time"])
        now = due - 30 * MINUTE
        self.run_once(now)
        calls = self.calls(mock)
        self.assertEqual(len(calls), len(camp["recipients"]))
        want = ms(now + 2 * HOUR + 5 * MINUTE)
        for r, d, _ in calls:
            self.assertEqual(r["verdict"], "accepted", r)
            self.assertLessEqual(abs(int(d["sendtime"]) - want), 1000, d)
        self.assertEqual(self.counts(camp["key"])["sent"], len(camp["recipients"]))
        self.assert_no_rejected(mock)

    def test_http_sign(self):
        mock = self.start_mock(env={"MOCK_SAINIU_SIGN_KEY": SAINIU_SIGN_KEY})
        self.channel("shop-notify")["sign_key_env"] = "SAINIU_SIGN_KEY"
        self.env["SAINIU_SIGN_KEY"] = SAINIU_SIGN_KEY
        self.write_config(mock)
        camp = self.example("sainiu")
        camp["steps"] = camp["steps"][:1]
        self.import_campaign(camp)
        key = camp["key"]
        due = self.at(1, camp["steps"][0]["time"])
        n = len(camp["recipients"])

        # A wrong key: the provider refuses the sign (403), nothing counts against the week.
        wrong = "e2e-not-the-sign-key"
        out = self.run_once(due - self.lead() + MINUTE, env={"SAINIU_SIGN_KEY": wrong})
        self.assertNotIn(wrong, out)
        calls = self.calls(mock)
        self.assertEqual(len(calls), n)
        for r, _, f in calls:
            self.assertEqual(r["verdict"], "rejected")
            self.assertIn("sign", r["reason"])
        for d in self.deliveries(key):
            self.assertEqual(d["state"], "failed")
        for a in self.attempts(key):
            self.assertEqual((a["provider_code"], a["outcome"]), ("403", "failed"))

        # The right key, after `herald retry`: accepted, with time and sign as HttpSign says.
        self.ok("retry", key, env=self.env)
        self.run_once(due - self.lead() + 2 * MINUTE, env={"SAINIU_SIGN_KEY": SAINIU_SIGN_KEY})
        calls = self.calls(mock)[n:]
        self.assertEqual(len(calls), n)
        for r, d, f in calls:
            self.assertEqual(r["verdict"], "accepted", r)
            self.assertEqual(set(f), {"post", "data", "time", "sign"})
            self.assertRegex(f["time"], r"^\d{13}$")
            self.assertLessEqual(abs(int(f["time"]) - r["received_at_ms"]), 15000)
            sign = hashlib.md5((SAINIU_SIGN_KEY + f["post"] + f["data"] + f["time"])
                               .encode()).hexdigest()
            self.assertEqual(f["sign"], sign)
            self.assertEqual(d["sendtime"], str(ms(due)))
        self.assertTrue(all(d["state"] == "sent" for d in self.deliveries(key)))
        rejected = [r for r in mock.requests() if r["verdict"] == "rejected"]
        self.assertEqual(len(rejected), n, "only the wrong-key requests are rejected")


class TanmarketTest(ProviderTest):

    def check_headers(self, record):
        h = record["headers"]
        ch = self.channel("groups")
        self.assertEqual(record["method"], "POST")
        self.assertEqual(h["appId"], ch["app_id"])
        self.assertEqual(h["appKey"], "***")    # masked in the mock's records
        self.assertRegex(h["content-type"], r"^application/json")
        self.assertRegex(h["timestamp"], r"^\d{13}$")
        # Signs use the real clock, whatever --now says.
        self.assertLessEqual(abs(int(h["timestamp"]) - record["received_at_ms"]), 60000)
        sign = hashlib.sha256((h["appId"] + h["timestamp"] + record["body"] +
                               SECRETS["TANMARKET_APP_KEY"]).encode()).hexdigest()
        self.assertEqual(h["sign"], sign)

    @staticmethod
    def sop_steps(camp, day):
        """The sopContents of a call made early on campaign day `day`: the steps still ahead,
        showDate counting from the day of the call."""
        return [{"showDate": s["day"] - (day - 1), "showTime": s["time"],
                 "sopDatas": s["message"]["contents"]}
                for s in camp["steps"] if s["day"] >= day]

    def test_one_call_on_day_one(self):
        mock = self.start_mock()
        self.write_config(mock)
        camp = self.example("tanmarket")
        self.import_campaign(camp)
        key = camp["key"]
        groups = [{"chatId": r["chat_id"], "chatOwner": r["chat_owner"]}
                  for r in camp["recipients"]]

        self.run_once(self.at(0, "12:00"))
        self.run_once(self.at(0, "23:59:50"))
        self.assertEqual(mock.requests(), [], "called before day 1")
        self.run_once(self.at(1, "00:00:01"))
        reqs = mock.requests("tanmarket")
        self.assertEqual(len(reqs), 1, reqs)
        self.check_headers(reqs[0])
        self.assertEqual(reqs[0]["verdict"], "accepted", reqs[0])
        body = json.loads(reqs[0]["body"])
        self.assertEqual(set(body), {"groupInfos", "title", "mode", "sopContents"})
        self.assertEqual(sorted(body["groupInfos"], key=json.dumps),
                         sorted(groups, key=json.dumps))
        self.assertEqual(body["title"], camp["name"])
        self.assertEqual(body["mode"], 1)
        self.assertEqual(body["sopContents"], self.sop_steps(camp, 1))
        self.assertEqual(len(body["sopContents"]), len(camp["steps"]))
        dl = self.deliveries(key)
        self.assertEqual(len(dl), len(groups) * len(camp["steps"]))
        for d in dl:
            self.assertEqual((d["state"], d["provider_message_id"]), ("sent", "sop-1"), d)

        # Never twice.
        self.run_once(self.at(1, "00:05"))
        self.run_once(self.at(2, "10:00:30"))
        self.assertEqual(len(mock.requests()), 1, "a second call for the same groups")

        # A group added later gets one more call, for it alone, with the steps still ahead.
        new = {"chat_id": "wrvRo3DwAAe2eNewGroupForSopTest01", "chat_owner": "500000000000001"}
        camp["recipients"].append(new)
        self.import_campaign(camp)
        self.run_once(self.at(3, "00:00:01"))
        reqs = mock.requests("tanmarket")
        self.assertEqual(len(reqs), 2, reqs)
        self.check_headers(reqs[1])
        self.assertEqual(reqs[1]["verdict"], "accepted", reqs[1])
        body = json.loads(reqs[1]["body"])
        self.assertEqual(body["groupInfos"],
                         [{"chatId": new["chat_id"], "chatOwner": new["chat_owner"]}])
        self.assertEqual(body["sopContents"], self.sop_steps(camp, 3))
        self.assertEqual([s["showDate"] for s in body["sopContents"]],
                         [s["day"] - 2 for s in camp["steps"] if s["day"] >= 3])
        dl = [d for d in self.deliveries(key) if d["recipient"] == new["chat_id"]]
        self.assertEqual(sorted((d["step"], d["state"]) for d in dl),
                         [(i + 1, "sent" if camp["steps"][i]["day"] >= 3 else "expired")
                          for i in range(len(camp["steps"]))])
        self.run_once(self.at(3, "00:05"))
        self.assertEqual(len(mock.requests()), 2)
        self.assert_no_rejected(mock)

    def test_bad_sign_fails(self):
        mock = self.start_mock()
        self.write_config(mock)
        camp = self.example("tanmarket")
        self.import_campaign(camp)
        wrong = "e2e-not-the-tanmarket-key"
        out = self.run_once(self.at(1, "00:00:01"), env={"TANMARKET_APP_KEY": wrong})
        self.assertNotIn(wrong, out)
        reqs = mock.requests("tanmarket")
        self.assertEqual(len(reqs), 1)
        self.assertEqual(reqs[0]["verdict"], "rejected")
        self.assertRegex(reqs[0]["reason"], r"appKey|sign")
        # A refused sign is the channel's credentials: suspended, the SOP waits, unspent.
        dl = self.deliveries(camp["key"])
        self.assertEqual({(d["state"], d["attempts"]) for d in dl}, {("pending", 0)})
        for a in self.attempts(camp["key"]):
            self.assertEqual((a["provider_code"], a["outcome"]), ("1002", "requeued"))
        tan = [c for c in self.json("channels", env=self.env)["channels"] if c["provider"] == "tanmarket"][0]
        self.assertEqual((tan["state"], tan["waiting"]), ("suspended", len(dl)))
        self.assertNotIn(wrong, json.dumps(self.attempts(camp["key"])))


if __name__ == "__main__":
    main()
