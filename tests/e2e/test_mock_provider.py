#!/usr/bin/env python3
"""End-to-end test of herald-mock, the mock provider server.

Starts the real binary (path in $HERALD_MOCK) on 127.0.0.1 with --port 0 and
--port-file, and checks each provider's wire format, the scripted rules, the
records and log, and a clean exit on SIGTERM. Standard library only.

    HERALD_MOCK=build/herald-mock python3 tests/e2e/test_mock_provider.py
"""
import base64
import hashlib
import hmac
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import unittest
import urllib.parse
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import MOCK, SLOW, Mock  # noqa: E402

FEIHE = "/wisdom-api/weixin/v1/sendCustomerMessage"
TIM = "/v4/desk_http_svc/send_msg"
APIUSB = "/api/platform"
SAINIU = "/SaiNiuApi/Api"
TAN = "/api/v3/groupSop/addGroupCorporate"
SERVICE = "Platform.ChatMessage.BulkSend"
HOUR_MS = 3600 * 1000
DAY_MS = 24 * HOUR_MS


def now_ms():
    return int(time.time() * 1000)


class MockCase(unittest.TestCase):
    """One mock per class, reset before every test."""
    ARGS = ()
    ENV = {}

    @classmethod
    def setUpClass(cls):
        cls.mock = Mock(*cls.ARGS, env=cls.ENV)

    @classmethod
    def tearDownClass(cls):
        rc, err = cls.mock.close()
        assert rc == 0, "herald-mock exit status %d: %s" % (rc, err)
        assert "Sanitizer" not in err and "runtime error" not in err, err

    def setUp(self):
        self.mock.reset()

    def assertRejected(self, reason_part=None):
        rec = self.mock.last()
        self.assertEqual(rec["verdict"], "rejected", rec)
        self.assertTrue(rec["reason"], rec)
        if reason_part:
            self.assertIn(reason_part, rec["reason"])
        return rec


# ---- Feihe ----

def feihe(mock, body, system="NEW_MEMBER", ctype="application/json", method="POST"):
    headers = {"Content-Type": ctype}
    if system is not None:
        headers["system"] = system
    if not isinstance(body, str):
        body = json.dumps(body, ensure_ascii=False)
    return mock.call(method, FEIHE, body, headers)


class FeiheTest(MockCase):
    def test_valid_is_accepted(self):
        status, text, headers = feihe(self.mock, {"openId": "oc63ewmu", "msg": "客服消息"})
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(text), {"code": 200, "msg": "操作成功",
                                            "data": {"errcode": 0, "errmsg": "ok"}})
        self.assertTrue(headers["Content-Type"].startswith("application/json"))
        rec = self.mock.last()
        self.assertEqual((rec["provider"], rec["verdict"], rec["key"], rec["reason"]),
                         ("feihe", "accepted", "oc63ewmu", None))
        self.assertEqual(rec["headers"]["system"], "NEW_MEMBER")
        self.assertEqual(json.loads(rec["body"])["msg"], "客服消息")

    def test_msg_over_2048_bytes_is_refused_as_wechat_does(self):
        for msg, ok in (("a" * 2048, True), ("a" * 2049, False), ("通" * 682, True),
                        ("通" * 683, False), ("通" * 1000, False)):
            with self.subTest(size=len(msg.encode())):
                self.mock.reset()
                status, text, _ = feihe(self.mock, {"openId": "o", "msg": msg})
                self.assertEqual(status, 200)
                doc = json.loads(text)
                if ok:
                    self.assertEqual(doc["data"]["errcode"], 0)
                    self.assertEqual(self.mock.last()["verdict"], "accepted")
                else:
                    self.assertEqual(doc, {"code": 200, "msg": "操作成功",
                                           "data": {"errcode": 45002,
                                                    "errmsg": "content size out of limit"}})
                    self.assertRejected("2048")

    def test_prefix_before_path_is_allowed(self):
        status, text, _ = self.mock.call(
            "POST", "/gateway" + FEIHE, '{"openId":"o","msg":"m"}',
            {"system": "NEW_MEMBER", "Content-Type": "application/json"})
        self.assertEqual(json.loads(text)["data"]["errcode"], 0)

    def test_invalid_requests_are_rejected(self):
        cases = [
            ({"openId": "o", "msg": "m"}, None, "application/json", "missing header system"),
            ({"openId": "o", "msg": "m"}, "OLD", "application/json", "system"),
            ({"openId": "o", "msg": "m"}, "NEW_MEMBER", "text/plain", "Content-Type"),
            ({"openId": "", "msg": "m"}, "NEW_MEMBER", "application/json", "openId"),
            ({"openId": "o"}, "NEW_MEMBER", "application/json", "msg"),
            ({"openId": "o", "msg": 5}, "NEW_MEMBER", "application/json", "msg"),
            ({"openId": "o", "msg": "m", "x": 1}, "NEW_MEMBER", "application/json", "unknown"),
            ('{"openId":"o","msg":"m"', "NEW_MEMBER", "application/json", "JSON"),
            ('{"openId":"o","openId":"p","msg":"m"}', "NEW_MEMBER", "application/json",
             "duplicate"),
            ('["o"]', "NEW_MEMBER", "application/json", "not a JSON object"),
        ]
        for body, system, ctype, why in cases:
            with self.subTest(body=body, system=system, ctype=ctype):
                status, text, _ = feihe(self.mock, body, system, ctype)
                self.assertEqual(status, 200)
                doc = json.loads(text)
                self.assertEqual(doc["code"], 400)
                self.assertIsNone(doc["data"])
                self.assertIn(why, doc["msg"])
                self.assertRejected(why)

    def test_wrong_method_is_405(self):
        status, _, _ = feihe(self.mock, "", method="GET")
        self.assertEqual(status, 405)
        self.assertRejected("method")

    def test_keep_alive_reuses_the_connection(self):
        conn = self.mock.conn()
        conn.connect()
        sock = conn.sock
        for i in range(50):
            status, text, headers = self.mock.call(
                "POST", FEIHE, json.dumps({"openId": "o%d" % i, "msg": "m"}),
                {"system": "NEW_MEMBER", "Content-Type": "application/json"}, conn=conn)
            self.assertEqual(status, 200)
            self.assertNotEqual(headers.get("Connection", "").lower(), "close")
        self.assertIs(conn.sock, sock)
        conn.close()
        self.assertEqual(len(self.mock.requests("feihe")), 50)


# ---- Tencent desk ----

SDKAPPID = 1400000000
TIM_SECRET = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"


def usersig(key, sdkappid, identifier, t, expire, level=6, ver="2.0", tamper=None):
    """TLSSigAPIv2, as providers.md section 2.1 describes it; tamper overrides JSON fields
    after signing."""
    content = "TLS.identifier:%s\nTLS.sdkappid:%d\nTLS.time:%d\nTLS.expire:%d\n" % (
        identifier, sdkappid, t, expire)
    sig = base64.b64encode(hmac.new(key.encode(), content.encode(), hashlib.sha256).digest())
    fields = {"TLS.ver": ver, "TLS.identifier": identifier, "TLS.sdkappid": sdkappid,
              "TLS.expire": expire, "TLS.time": t, "TLS.sig": sig.decode()}
    fields.update(tamper or {})
    doc = json.dumps(fields, separators=(",", ":"))
    raw = base64.b64encode(zlib.compress(doc.encode(), level)).decode()
    return raw.translate(str.maketrans("+/=", "*-_"))


def tim_url(sig="FIXED", sdkappid=SDKAPPID, identifier="admin", random="99999999",
            contenttype="json", extra=""):
    q = {"sdkappid": sdkappid, "identifier": identifier, "usersig": sig, "random": random,
         "contenttype": contenttype}
    q = {k: v for k, v in q.items() if v is not None}
    return TIM + "?" + urllib.parse.urlencode(q) + extra


def tim_msg(to="user45", rnd=82139, **over):
    body = {"FromAccount": "@customer_service_account", "ToAccount": to, "MsgRandom": rnd,
            "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "欢迎"}}],
            "CloudCustomData": "c"}
    body.update(over)
    return {k: v for k, v in body.items() if v is not None}


def tim(mock, body, url=None):
    if not isinstance(body, str):
        body = json.dumps(body, ensure_ascii=False)
    status, text, _ = mock.call("POST", url or tim_url(), body,
                                {"Content-Type": "application/json"})
    assert status == 200, (status, text)
    return json.loads(text)


OK_TIM = {"ActionStatus": "OK", "ErrorInfo": "", "ErrorCode": 0}


class TencentTest(MockCase):
    ARGS = ("--tim-usersig", "FIXED", "--tim-sdkappid", str(SDKAPPID),
            "--tim-identifier", "admin")

    def test_both_forms_are_accepted(self):
        self.assertEqual(tim(self.mock, tim_msg()), OK_TIM)
        self.assertEqual(self.mock.last()["key"], "user45")
        session = {"SessionId": "fd8a2e30-54de-4e40-bcaf-02718409c5cf", "MsgRandom": 8436874,
                   "MsgBody": [{"MsgType": "TIMCustomElem",
                                "MsgContent": {"Data": "{\"src\":\"22\"}", "Desc": "d"}},
                               {"MsgType": "TIMFaceElem", "MsgContent": {"Index": 1, "Data": "x"}},
                               {"MsgType": "TIMLocationElem", "MsgContent": {
                                   "Desc": "here", "Latitude": 39.9, "Longitude": 116.4}}],
                   "ExcludeFromUserRespTimeout": 1}
        self.assertEqual(tim(self.mock, session), OK_TIM)
        rec = self.mock.last()
        self.assertEqual((rec["verdict"], rec["key"]), ("accepted", session["SessionId"]))
        self.assertIn("usersig=***", rec["query"])  # a credential: masked in records

    def test_msgrandom_duplicate(self):
        self.assertEqual(tim(self.mock, tim_msg(rnd=7)), OK_TIM)
        self.assertEqual(tim(self.mock, tim_msg(rnd=7)), OK_TIM)
        first, dup = self.mock.requests()
        self.assertEqual(first["verdict"], "accepted")
        self.assertEqual(dup["verdict"], "duplicate")
        self.assertIn("seq %d" % first["seq"], dup["reason"])
        # Another MsgRandom, or another recipient, is a new message.
        tim(self.mock, tim_msg(rnd=8))
        tim(self.mock, tim_msg(to="user46", rnd=7))
        self.assertEqual([r["verdict"] for r in self.mock.requests()[2:]],
                         ["accepted", "accepted"])

    def test_scripted_failure_is_not_remembered_for_dedup(self):
        self.mock.rules({"provider": "tencent_desk", "code": 141002, "message": "内部错误"})
        doc = tim(self.mock, tim_msg(rnd=9))
        self.assertEqual(doc, {"ActionStatus": "FAIL", "ErrorInfo": "内部错误",
                               "ErrorCode": 141002})
        tim(self.mock, tim_msg(rnd=9))
        tim(self.mock, tim_msg(rnd=9))
        self.assertEqual([r["verdict"] for r in self.mock.requests()],
                         ["scripted", "accepted", "duplicate"])

    def test_invalid_requests_are_rejected(self):
        body = json.dumps(tim_msg())
        big = tim_msg(CloudCustomData="x" * 12300)
        cases = [
            (tim_url(sig="WRONG"), body, 70009),
            (tim_url(random=None), body, 60003),
            (tim_url(random="4294967296"), body, 60003),
            (tim_url(random="-1"), body, 60003),
            (tim_url(contenttype="xml"), body, 60003),
            (tim_url(extra="&sdkappid=1"), body, 60003),
            (tim_url(sdkappid=1400000001), body, 70020),
            (tim_url(identifier="other"), body, 90009),
            (tim_url(), json.dumps(big), 93000),
            (tim_url(), "{not json", 90001),
            (tim_url(), "[1]", 90001),
            (tim_url(), json.dumps(tim_msg(rnd="1")), 90005),
            (tim_url(), json.dumps(tim_msg(rnd=4294967296)), 90005),
            (tim_url(), json.dumps(tim_msg(rnd=1.5)), 90005),
            (tim_url(), json.dumps(tim_msg(rnd=None)), 90005),
            (tim_url(), json.dumps(tim_msg(MsgBody=[])), 90007),
            (tim_url(), json.dumps(tim_msg(MsgBody={"MsgType": "TIMTextElem"})), 90007),
            (tim_url(), json.dumps(tim_msg(SessionId="s")), 141004),
            (tim_url(), json.dumps(tim_msg(FromAccount=None)), 141004),
            (tim_url(), json.dumps(tim_msg(Extra=1)), 141004),
            (tim_url(), json.dumps(tim_msg(ExcludeFromUserRespTimeout=2)), 141004),
            (tim_url(), json.dumps(tim_msg(CloudCustomData=1)), 141004),
            (tim_url(), json.dumps(tim_msg(MsgBody=[
                {"MsgType": "TIMCustomElem", "MsgContent": {"Data": "a"}},
                {"MsgType": "TIMCustomElem", "MsgContent": {"Data": "b"}}])), 141004),
            (tim_url(), json.dumps(tim_msg(MsgBody=[
                {"MsgType": "TIMTextElem", "MsgContent": {"Text": 1}}])), 141004),
            (tim_url(), json.dumps(tim_msg(MsgBody=[
                {"MsgType": "TIMImageElem", "MsgContent": {}}])), 141004),
            (tim_url(), json.dumps(tim_msg(MsgBody=[
                {"MsgType": "TIMFaceElem", "MsgContent": {"Index": "1", "Data": "x"}}])), 141004),
        ]
        for url, body_text, code in cases:
            with self.subTest(url=url, body=body_text[:80]):
                doc = tim(self.mock, body_text, url)
                self.assertEqual(doc["ActionStatus"], "FAIL")
                self.assertEqual(doc["ErrorCode"], code)
                self.assertTrue(doc["ErrorInfo"])
                self.assertRejected()

    def test_rejection_does_not_enter_dedup(self):
        tim(self.mock, tim_msg(rnd=3), tim_url(sig="WRONG"))
        self.assertEqual(tim(self.mock, tim_msg(rnd=3)), OK_TIM)
        self.assertEqual(self.mock.last()["verdict"], "accepted")


class UserSigTest(MockCase):
    """Given the secret, the mock verifies TLSSigAPIv2 with its own decoder (not Herald's
    usersig.c), against UserSigs made here from the format alone."""
    ARGS = ("--tim-sdkappid", str(SDKAPPID), "--tim-identifier", "admin")
    ENV = {"MOCK_TIM_SECRET": TIM_SECRET}

    def test_usersig_verification(self):
        now = int(time.time())
        good = usersig(TIM_SECRET, SDKAPPID, "admin", now - 60, 86400)
        self.assertEqual(tim(self.mock, tim_msg(), tim_url(sig=good)), OK_TIM)
        expired = usersig(TIM_SECRET, SDKAPPID, "admin", now - 7200, 3600)
        self.assertEqual(tim(self.mock, tim_msg(), tim_url(sig=expired))["ErrorCode"], 70001)
        wrong_key = usersig("0" * 64, SDKAPPID, "admin", now - 60, 86400)
        self.assertEqual(tim(self.mock, tim_msg(), tim_url(sig=wrong_key))["ErrorCode"], 70009)
        self.assertEqual(tim(self.mock, tim_msg(), tim_url(sig="garbage"))["ErrorCode"], 70009)
        verdicts = [r["verdict"] for r in self.mock.requests()]
        self.assertEqual(verdicts, ["accepted", "rejected", "rejected", "rejected"])
        reasons = [r["reason"] for r in self.mock.requests()]
        self.assertEqual(reasons, [None, "usersig expired", "usersig signature mismatch",
                                   "usersig malformed"])

    def test_usersig_fields_and_encodings(self):
        now = int(time.time())
        # Any zlib level decodes; the four signed fields are all checked.
        for level in (0, 1, 9):
            with self.subTest(level=level):
                sig = usersig(TIM_SECRET, SDKAPPID, "admin", now - 60, 86400, level=level)
                self.assertEqual(tim(self.mock, tim_msg(), tim_url(sig=sig)), OK_TIM)
        cases = [
            (usersig(TIM_SECRET, SDKAPPID, "other", now - 60, 86400), "another identifier"),
            (usersig(TIM_SECRET, SDKAPPID + 1, "admin", now - 60, 86400), "another sdkappid"),
            (usersig(TIM_SECRET, SDKAPPID, "admin", now + 3600, 86400), "not yet valid"),
            (usersig(TIM_SECRET, SDKAPPID, "admin", now - 60, 86400, ver="1.0"), "version"),
            (usersig(TIM_SECRET, SDKAPPID, "admin", now - 60, 86400, tamper={"TLS.expire": 86401}),
             "signature mismatch"),
            (usersig(TIM_SECRET, SDKAPPID, "admin", now - 60, 86400, tamper={"TLS.time": now}),
             "signature mismatch"),
            # Standard base64 characters are not Tencent's alphabet.
            (usersig(TIM_SECRET, SDKAPPID, "admin", now - 60, 86400).replace("*", "+")
             .replace("-", "/").replace("_", "=") + "+/==", "malformed"),
            (base64.b64encode(b"not zlib at all").decode(), "malformed"),
        ]
        for sig, why in cases:
            with self.subTest(why=why):
                self.assertEqual(tim(self.mock, tim_msg(), tim_url(sig=sig))["ErrorCode"], 70009)
                self.assertRejected(why)
        self.assertNotIn(TIM_SECRET, json.dumps(self.mock.requests()))


# ---- APIUSB ----

TOKEN = "tok-123"


def apiusb_form(**over):
    params = {"s": SERVICE, "access_token": TOKEN, "chat_message_to_uuid": "u1,u2,u3",
              "chat_message_data": "hello word", "chat_message_type": "text"}
    params.update(over)
    return urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})


def apiusb(mock, form=None, query="", method="POST", ctype="application/x-www-form-urlencoded"):
    path = APIUSB + ("?" + query if query else "")
    headers = {"Content-Type": ctype} if method == "POST" else {}
    status, text, _ = mock.call(method, path, apiusb_form() if form is None else form, headers)
    assert status == 200, (status, text)
    return json.loads(text)


def items(*uuids):
    return [{"other_uuid": u, "chat_message_id": "m-%d" % (i + 1)} for i, u in enumerate(uuids)]


class ApiusbTest(MockCase):
    ARGS = ("--apiusb-token", TOKEN)

    def test_valid_post_is_accepted(self):
        doc = apiusb(self.mock)
        self.assertEqual(doc, {"ret": 200, "data": {"item": items("u1", "u2", "u3")}, "msg": ""})
        rec = self.mock.last()
        self.assertEqual((rec["verdict"], rec["key"]), ("accepted", "u1,u2,u3"))

    def test_service_in_query_and_get(self):
        doc = apiusb(self.mock, apiusb_form(s=None), query="s=" + SERVICE)
        self.assertEqual(doc["ret"], 200)
        self.mock.reset()
        status, text, _ = self.mock.call("GET", APIUSB + "?" + apiusb_form(service=SERVICE, s=None))
        self.assertEqual(json.loads(text)["data"]["item"], items("u1", "u2", "u3"))

    def test_percent_and_plus_decoding(self):
        apiusb(self.mock, apiusb_form(chat_message_data="a+b 你好&=", chat_message_type="html"))
        self.assertEqual(self.mock.last()["verdict"], "accepted")

    def test_invalid_requests_are_rejected(self):
        cases = [
            (apiusb_form(access_token=None), "", 406),
            (apiusb_form(access_token="bad"), "", 406),
            (apiusb_form(s="Platform.ChatMessage.BulkSendx"), "", 404),
            (apiusb_form(s=None), "", 400),
            (apiusb_form(chat_message_type=None), "", 400),
            (apiusb_form(chat_message_type="video"), "", 400),
            (apiusb_form(chat_message_data=""), "", 400),
            (apiusb_form(chat_message_to_uuid="u1,,u2"), "", 400),
            (apiusb_form(chat_message_to_uuid="u1,u1"), "", 400),
            (apiusb_form(chat_message_to_uuid="u1, u2"), "", 400),
            (apiusb_form(chat_message_to_uuid=None), "", 400),
            (apiusb_form(other="1"), "", 400),
            (apiusb_form() + "&chat_message_type=text", "", 400),
            (apiusb_form(chat_message_type=None), "chat_message_type=text", 400),
            (apiusb_form() + "&bad=%zz", "", 400),
        ]
        for form, query, ret in cases:
            with self.subTest(form=form, query=query):
                doc = apiusb(self.mock, form, query)
                self.assertEqual(doc["ret"], ret)
                self.assertTrue(doc["msg"])
                self.assertRejected()
        doc = apiusb(self.mock, apiusb_form(access_token=None))
        self.assertEqual(doc["msg"], "非法请求：access_token校验不通过")
        doc = apiusb(self.mock, ctype="application/json")
        self.assertEqual(doc["ret"], 400)

    def test_at_most_1000_uuids_a_call(self):
        # No source gives APIUSB's limit: 1000 is the mock's choice (Herald's largest batch).
        uuids = ["u%d" % i for i in range(1001)]
        doc = apiusb(self.mock, apiusb_form(chat_message_to_uuid=",".join(uuids[:1000])))
        self.assertEqual((doc["ret"], len(doc["data"]["item"])), (200, 1000))
        doc = apiusb(self.mock, apiusb_form(chat_message_to_uuid=",".join(uuids)))
        self.assertEqual(doc["ret"], 400)
        self.assertRejected("over 1000")

    def test_omit_rules(self):
        self.mock.rules([{"provider": "apiusb", "match": "u2", "omit": True},
                         {"provider": "apiusb", "match": "u3", "omit": True, "times": 0}])
        doc = apiusb(self.mock)
        self.assertEqual(doc["ret"], 200)
        self.assertEqual([i["other_uuid"] for i in doc["data"]["item"]], ["u1"])
        rec = self.mock.last()
        self.assertEqual(rec["verdict"], "scripted")
        self.assertIn("u2", rec["reason"])
        self.assertIn("u3", rec["reason"])
        # The u2 rule is used up; the u3 one applies every time.
        doc = apiusb(self.mock)
        self.assertEqual([i["other_uuid"] for i in doc["data"]["item"]], ["u1", "u2"])
        # A request that would be rejected is not "omitted": it is rejected as usual.
        doc = apiusb(self.mock, apiusb_form(chat_message_type="video"))
        self.assertEqual(doc["ret"], 400)
        self.assertEqual(self.mock.last()["verdict"], "rejected")

    def test_rule_on_one_member_applies_to_request(self):
        self.mock.rules({"provider": "apiusb", "match": "u3", "code": 500, "message": "服务端内部错误"})
        self.assertEqual(apiusb(self.mock, apiusb_form(chat_message_to_uuid="u1,u2")), {
            "ret": 200, "data": {"item": items("u1", "u2")}, "msg": ""})
        doc = apiusb(self.mock)
        self.assertEqual((doc["ret"], doc["msg"]), (500, "服务端内部错误"))


# ---- SaiNiu ----

SIGN_KEY = "123ABC"


def md5_sign(key, post, data, t):
    return hashlib.md5((key + post + data + t).encode("utf-8")).hexdigest().lower()


def sainiu(mock, data, key=SIGN_KEY, t=None, sign=None, post="SendCustomerServiceUserGroup",
           extra=None):
    if not isinstance(data, str):
        data = json.dumps(data, ensure_ascii=False)
    params = {"post": post, "data": data}
    if key is not None:
        t = str(now_ms()) if t is None else t
        params["time"] = t
        params["sign"] = sign or md5_sign(key, post, data, t)
    params.update(extra or {})
    status, text, _ = mock.call("POST", SAINIU, urllib.parse.urlencode(params),
                                {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200, (status, text)
    return json.loads(text)


def notice(nick="tb123456", sendtime=None, text="活动通知"):
    st = now_ms() + 3 * HOUR_MS if sendtime is None else sendtime
    return {"userNick": nick, "text": text, "sendtime": str(st)}


class SaiNiuTest(MockCase):
    ARGS = ("--sainiu-sign-key", SIGN_KEY)

    def test_documented_sign_example(self):
        # providers.md section 1.3, self-computed.
        self.assertEqual(md5_sign("123ABC", "SendMessages", '{"userNick":"tb123456"}',
                                  "1731682536947"), "d5c910b3e70ae1a31c00763c9f1f48c8")

    def test_valid_is_accepted(self):
        before = now_ms()
        doc = sainiu(self.mock, notice())
        self.assertEqual((doc["code"], doc["msg"], doc["data"]), (200, "调用成功", "1"))
        self.assertEqual(len(doc["passkey"]), 13)
        self.assertGreaterEqual(int(doc["passkey"]), before - 1000)
        rec = self.mock.last()
        self.assertEqual((rec["verdict"], rec["key"]), ("accepted", "tb123456"))

    def test_sign(self):
        self.assertEqual(sainiu(self.mock, notice(), sign="0" * 32)["code"], 403)
        self.assertRejected("md5")
        stale = str(now_ms() - 60000)
        self.assertEqual(sainiu(self.mock, notice(), t=stale)["code"], 403)
        self.assertRejected("15 s")
        self.assertEqual(sainiu(self.mock, notice(), key=None)["code"], 403)
        self.assertRejected("required")
        # The sign covers the exact data text.
        data = json.dumps(notice(), ensure_ascii=False)
        t = str(now_ms())
        good = md5_sign(SIGN_KEY, "SendCustomerServiceUserGroup", data, t)
        doc = sainiu(self.mock, data.replace("活动", "活 动"), t=t, sign=good)
        self.assertEqual(doc["code"], 403)

    def test_two_hour_rule(self):
        doc = sainiu(self.mock, notice(sendtime=now_ms() + 2 * HOUR_MS - 60000))
        self.assertEqual((doc["code"], doc["msg"], doc["data"]), (400, "sendtime至少延后2个小时", None))
        self.assertRejected("2 h")
        self.assertEqual(sainiu(self.mock, notice(sendtime=now_ms() + 2 * HOUR_MS + 60000))["code"],
                         200)

    def clock(self, offset_ms):
        """Moves the mock's clock; returns the signing time that goes with it."""
        status, doc = self.mock.json("POST", "/_mock/clock", json.dumps({"offset_ms": offset_ms}))
        self.assertEqual(status, 200, doc)
        return lambda: str(now_ms() + offset_ms)

    def test_seven_day_rule_sendtime(self):
        # The first call sets a send time five days out; a week of calls later, a send time
        # within that one's week is still refused.
        s0 = now_ms() + 5 * DAY_MS
        self.assertEqual(sainiu(self.mock, notice(sendtime=s0))["code"], 200)
        t = self.clock(7 * DAY_MS + 60000)
        doc = sainiu(self.mock, notice(sendtime=s0 + 2 * DAY_MS + 3 * HOUR_MS), t=t())
        self.assertEqual((doc["code"], doc["msg"]), (500, "间隔一周(7天)允许使用一次"))
        self.assertRejected("sendtime within 7 days")
        # Another seller is independent.
        self.assertEqual(sainiu(self.mock, notice(nick="tb999", sendtime=s0 + 3 * DAY_MS), t=t())[
            "code"], 200)
        # Seven full days after the last send time is allowed, and becomes the new reference.
        self.assertEqual(sainiu(self.mock, notice(sendtime=s0 + 7 * DAY_MS), t=t())["code"], 200)
        t = self.clock(15 * DAY_MS)
        self.assertEqual(sainiu(self.mock, notice(sendtime=s0 + 13 * DAY_MS), t=t())["code"], 500)
        self.assertRejected("sendtime within 7 days")

    def test_seven_day_rule_call_time(self):
        # Send times a week and more apart, calls not: the second call is refused.
        s0 = now_ms() + 3 * HOUR_MS
        self.assertEqual(sainiu(self.mock, notice(sendtime=s0))["code"], 200)
        doc = sainiu(self.mock, notice(sendtime=s0 + 8 * DAY_MS))
        self.assertEqual((doc["code"], doc["msg"]), (500, "间隔一周(7天)允许使用一次"))
        self.assertRejected("call within 7 days")
        # A second short of the week, still refused; the week over, accepted.
        t = self.clock(7 * DAY_MS - 1000)
        self.assertEqual(sainiu(self.mock, notice(sendtime=s0 + 8 * DAY_MS), t=t())["code"], 500)
        self.assertRejected("call within 7 days")
        t = self.clock(7 * DAY_MS)
        self.assertEqual(sainiu(self.mock, notice(sendtime=s0 + 8 * DAY_MS), t=t())["code"], 200)
        self.assertEqual([r["verdict"] for r in self.mock.requests()],
                         ["accepted", "rejected", "rejected", "accepted"])

    def test_rejected_and_scripted_calls_do_not_count(self):
        s0 = now_ms() + 3 * HOUR_MS
        self.mock.rules({"provider": "sainiu", "match": "tb123456", "code": 501, "message": "忙"})
        doc = sainiu(self.mock, notice(sendtime=s0))
        self.assertEqual((doc["code"], doc["msg"], doc["data"]), (501, "忙", None))
        self.assertEqual(sainiu(self.mock, notice(sendtime=now_ms()))["code"], 400)
        self.assertEqual(sainiu(self.mock, notice(sendtime=s0))["code"], 200)
        self.assertEqual([r["verdict"] for r in self.mock.requests()],
                         ["scripted", "rejected", "accepted"])

    def test_invalid_data_is_rejected(self):
        st = str(now_ms() + 3 * HOUR_MS)
        cases = [
            {"userNick": "tb1", "text": "t", "sendtime": int(st)},
            {"userNick": "tb1", "text": "t", "sendtime": st[:12]},
            {"userNick": "", "text": "t", "sendtime": st},
            {"userNick": "tb1", "sendtime": st},
            {"userNick": "tb1", "text": "t", "sendtime": st, "x": 1},
            '{"userNick":"$userNick$,"text":"你好","sendtime":"%s"}' % st,
        ]
        for data in cases:
            with self.subTest(data=data):
                self.assertEqual(sainiu(self.mock, data)["code"], 400)
                self.assertRejected()
        self.assertEqual(sainiu(self.mock, notice(), post="SendMessages")["code"], 400)
        self.assertEqual(sainiu(self.mock, notice(), extra={"foo": "1"})["code"], 400)


# ---- Tanmarket ----

APP_ID, APP_KEY = "demoApp", "demoKey"


def tan_sign(app_id, ts, body, key):
    return hashlib.sha256(app_id.encode() + ts.encode() + body + key.encode()).hexdigest()


def sop(**over):
    body = {"groupInfos": [{"chatId": "wrvRo3DwAAWTbx", "chatOwner": "399653652604992"},
                           {"chatId": "wrvRo3DwAAnjo", "chatOwner": "412770248998976"}],
            "title": "API测试", "mode": 1,
            "sopContents": [{"showDate": 5, "showTime": "10:00", "sopDatas": [
                {"type": 1, "content": "#客户昵称#"},
                {"type": 99, "mcId": "bbb", "title": "t", "mcType": 2}]}]}
    body.update(over)
    return {k: v for k, v in body.items() if v is not None}


def tanmarket(mock, body, app_id=APP_ID, key=APP_KEY, ts=None, sign=None, drop=(),
              ctype="application/json"):
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    ts = str(now_ms()) if ts is None else ts
    headers = {"appId": app_id, "timestamp": ts, "appKey": key, "Content-Type": ctype,
               "sign": sign or tan_sign(app_id, ts, raw, key)}
    for h in drop:
        del headers[h]
    status, text, _ = mock.call("POST", TAN, raw, headers)
    assert status == 200, (status, text)
    return json.loads(text)


class TanmarketTest(MockCase):
    ARGS = ("--tanmarket-app-id", APP_ID)
    ENV = {"MOCK_TANMARKET_APP_KEY": APP_KEY}

    def test_documented_sign_example(self):
        # providers.md section 4.1, computed here and then offered to the mock with its
        # clock set to the example's timestamp: the sign passes, the toy body does not.
        sign = tan_sign("demoApp", "1700000000000", b'{"a":1}', "demoKey")
        self.assertTrue(sign.startswith("4b6e06bd") and sign.endswith("36e8"), sign)
        self.assertEqual(sign, "4b6e06bd8870770ca90191baf2c993bbfb39d02bb8ae86d2f2234e78bb6336e8")
        self.mock.json("POST", "/_mock/clock",
                       json.dumps({"offset_ms": 1700000000000 - now_ms()}))
        doc = tanmarket(self.mock, b'{"a":1}', ts="1700000000000", sign=sign)
        self.assertEqual(doc["code"], 40001)
        self.assertRejected("unknown member")
        doc = tanmarket(self.mock, b'{"a":1}', ts="1700000000000", sign=sign[:-1] + "0")
        self.assertEqual((doc["code"], doc["msg"]), (1002, "签名校验未通过"))

    def test_valid_is_accepted(self):
        doc = tanmarket(self.mock, sop())
        self.assertEqual(doc, {"code": 0, "msg": "成功", "data": {"sopId": "sop-1"}})
        rec = self.mock.last()
        self.assertEqual((rec["verdict"], rec["key"]), ("accepted", "wrvRo3DwAAWTbx"))
        self.assertEqual(rec["headers"]["appId"], APP_ID)
        self.assertEqual(tanmarket(self.mock, sop())["data"]["sopId"], "sop-2")

    def test_headers_and_sign(self):
        self.assertEqual(tanmarket(self.mock, sop(), ts=str(now_ms() - 6 * 60000))["code"], 1003)
        self.assertEqual(tanmarket(self.mock, sop(), ts="170000000000")["code"], 1003)
        self.assertEqual(tanmarket(self.mock, sop(), drop=("timestamp",))["code"], 1003)
        self.assertEqual(tanmarket(self.mock, sop(), drop=("sign",))["code"], 1002)
        self.assertEqual(tanmarket(self.mock, sop(), drop=("appKey",))["code"], 1002)
        self.assertEqual(tanmarket(self.mock, sop(), app_id="other")["code"], 1002)
        self.assertEqual(tanmarket(self.mock, sop(), key="otherKey")["code"], 1002)
        self.assertEqual(tanmarket(self.mock, sop(), sign="A" * 64)["code"], 1002)
        # Sign over other bytes than the body sent.
        raw = json.dumps(sop()).encode()
        ts = str(now_ms())
        doc = tanmarket(self.mock, raw + b" ", ts=ts, sign=tan_sign(APP_ID, ts, raw, APP_KEY))
        self.assertEqual(doc["code"], 1002)
        self.assertEqual(len(self.mock.requests()), 9)
        self.assertTrue(all(r["verdict"] == "rejected" for r in self.mock.requests()))

    def test_invalid_bodies(self):
        content = sop()["sopContents"][0]
        cases = [
            sop(groupInfos=[]),
            sop(groupInfos=[{"chatId": "c"}]),
            sop(title=""),
            sop(mode=None),
            sop(mode="1"),
            sop(sopContents=[]),
            sop(sopContents=[dict(content, showDate=0)]),
            sop(sopContents=[dict(content, showTime="25:00")]),
            sop(sopContents=[dict(content, showTime="9:00")]),
            sop(sopContents=[dict(content, sopDatas=[])]),
            sop(sopContents=[dict(content, sopDatas=[{"content": "no type"}])]),
            sop(extra=1),
            b"not json",
        ]
        for body in cases:
            with self.subTest(body=body):
                doc = tanmarket(self.mock, body)
                self.assertEqual(doc["code"], 40001)
                self.assertTrue(doc["msg"])
                self.assertRejected()
        self.assertEqual(tanmarket(self.mock, sop(), ctype="text/plain")["code"], 40001)


# ---- Rules, records, log ----

def feihe_ok(mock, open_id="o1"):
    return feihe(mock, {"openId": open_id, "msg": "m"})


class MaskingTest(MockCase):
    """Records and the --log file never hold a credential: Tencent's usersig, APIUSB's
    access_token (query or form), Tanmarket's appKey; right or wrong, they are masked, while
    the mock still judges the real values."""
    SIG, TOKEN, KEY = "SIG-s3cr3t-4d1a", "TOKEN-s3cr3t-8c2b", "APPKEY-s3cr3t-6e3f"
    ARGS = ("--tim-usersig", SIG, "--tim-sdkappid", str(SDKAPPID), "--tim-identifier", "admin",
            "--apiusb-token", TOKEN, "--tanmarket-app-id", APP_ID)
    ENV = {"MOCK_TANMARKET_APP_KEY": KEY}

    def test_credentials_masked(self):
        self.assertEqual(tim(self.mock, tim_msg(), url=tim_url(sig=self.SIG)), OK_TIM)
        self.assertNotEqual(tim(self.mock, tim_msg(), url=tim_url(sig=self.SIG + "x"))["ErrorCode"], 0)
        self.assertEqual(apiusb(self.mock, apiusb_form(access_token=self.TOKEN))["ret"], 200)
        self.assertEqual(apiusb(self.mock, apiusb_form(access_token=self.TOKEN + "x"))["ret"], 406)
        # in a POST's query (refused: it belongs in the form), percent-encoded, and a GET
        self.assertEqual(apiusb(self.mock, apiusb_form(access_token=None, s=None),
                                query="s=%s&access_token=%s" % (SERVICE, self.TOKEN))["ret"], 400)
        self.assertEqual(apiusb(self.mock, apiusb_form(access_token=None) + "&access%5Ftoken=" +
                                self.TOKEN)["ret"], 200)
        status, text, _ = self.mock.call("GET", APIUSB + "?" + apiusb_form(
            access_token=self.TOKEN, service=SERVICE, s=None))
        self.assertEqual(json.loads(text)["ret"], 200)
        self.assertEqual(tanmarket(self.mock, sop(), key=self.KEY)["code"], 0)
        self.assertEqual(tanmarket(self.mock, sop(), key=self.KEY + "x")["code"], 1002)

        recs = self.mock.requests()
        verdicts = [r["verdict"] for r in recs]
        self.assertEqual(verdicts.count("accepted"), 5, verdicts)
        with open(self.mock.log) as f:
            log = f.read()
        self.assertEqual(len(log.splitlines()), len(recs))
        for where, text in (("records", json.dumps(recs, ensure_ascii=False)), ("log", log)):
            for secret in (self.SIG, self.TOKEN, self.KEY):
                self.assertNotIn(secret[:10], text, "%s hold %s" % (where, secret))
        tims = [r for r in recs if r["provider"] == "tencent_desk"]
        for r in tims:
            self.assertEqual(urllib.parse.parse_qs(r["query"])["usersig"], ["***"])
            self.assertEqual(urllib.parse.parse_qs(r["query"])["identifier"], ["admin"])
        api = [r for r in recs if r["provider"] == "apiusb"]
        self.assertEqual(len(api), 5)
        for r in api:
            both = r["query"] + "&" + r["body"]
            self.assertRegex(both, r"(^|&)access(_|%5F)token=\*\*\*(&|$)")
            # the rest of the form is kept as sent
            self.assertIn("chat_message_to_uuid=u1%2Cu2%2Cu3", both)
        for r in (r for r in recs if r["provider"] == "tanmarket"):
            self.assertEqual(r["headers"]["appKey"], "***")
            self.assertEqual(len(r["headers"]["sign"]), 64)   # a signature, kept


class RulesTest(MockCase):
    # One polling thread: a delay that blocked it would hold up every other request.
    ARGS = ("--threads", "1")

    def test_status_500(self):
        self.mock.rules({"provider": "feihe", "status": 500})
        status, text, _ = feihe_ok(self.mock)
        self.assertEqual(status, 500)
        rec = self.mock.last()
        self.assertEqual((rec["verdict"], rec["rule"]), ("scripted", 1))
        self.assertEqual(rec["reason"], "rule 1")
        self.assertEqual(feihe_ok(self.mock)[0], 200)

    def test_code_envelopes(self):
        self.mock.rules([{"provider": "feihe", "code": 45015, "message": "response out of time limit"},
                         {"provider": "feihe", "code": -1, "status": 503}])
        status, text, _ = feihe_ok(self.mock)
        self.assertEqual((status, json.loads(text)), (200, {
            "code": 200, "msg": "操作成功",
            "data": {"errcode": 45015, "errmsg": "response out of time limit"}}))
        status, text, _ = feihe_ok(self.mock)
        self.assertEqual((status, json.loads(text)["data"]["errcode"]), (503, -1))
        self.mock.rules([{"provider": "tanmarket", "code": 40417, "message": "电话号码重复"}])
        doc = tanmarket(self.mock, sop(), key="any", app_id="any")
        self.assertEqual(doc, {"code": 40417, "msg": "电话号码重复", "data": None})

    def test_garbage_and_empty_bodies(self):
        self.mock.rules([{"provider": "*", "body": "<html>502 Bad Gateway"},
                         {"provider": "feihe", "body": "", "status": 502}])
        status, text, _ = feihe_ok(self.mock)
        self.assertEqual((status, text), (200, "<html>502 Bad Gateway"))
        status, text, _ = feihe_ok(self.mock)
        self.assertEqual((status, text), (502, ""))

    def test_drop(self):
        self.mock.rules({"provider": "feihe", "drop": True})
        with self.assertRaises((http.client.HTTPException, ConnectionError)):
            feihe_ok(self.mock)
        self.assertEqual(self.mock.last()["verdict"], "scripted")
        self.assertEqual(feihe_ok(self.mock)[0], 200)

    def test_delay_does_not_block_others(self):
        self.mock.rules({"provider": "feihe", "match": "slow", "delay_ms": 1500, "code": 45009})
        result = {}

        def slow():
            t0 = time.monotonic()
            result["answer"] = feihe_ok(self.mock, "slow")
            result["elapsed"] = time.monotonic() - t0

        th = threading.Thread(target=slow)
        th.start()
        deadline = time.monotonic() + 10
        while not self.mock.requests() and time.monotonic() < deadline:
            time.sleep(0.01)
        t0 = time.monotonic()
        status, text, _ = feihe_ok(self.mock, "fast")
        fast = time.monotonic() - t0
        self.assertEqual(json.loads(text)["data"]["errcode"], 0)
        self.assertTrue(th.is_alive(), "the delayed answer came early")
        self.assertLess(fast, 1.0 * SLOW)
        th.join(10)
        self.assertGreaterEqual(result["elapsed"], 1.4)
        self.assertEqual(json.loads(result["answer"][1])["data"]["errcode"], 45009)

    def test_delay_only_answers_normally(self):
        self.mock.rules({"provider": "tencent_desk", "delay_ms": 200})
        t0 = time.monotonic()
        doc = tim(self.mock, tim_msg(rnd=1), tim_url())
        self.assertGreaterEqual(time.monotonic() - t0, 0.19)
        self.assertEqual(doc, OK_TIM)
        rec = self.mock.last()
        self.assertEqual((rec["verdict"], rec["rule"]), ("accepted", 1))

    def test_times_and_match(self):
        self.mock.rules([{"provider": "feihe", "match": "o2", "times": 0, "status": 500},
                         {"provider": "feihe", "times": 2, "status": 502}])
        self.assertEqual([feihe_ok(self.mock, o)[0] for o in ("o1", "o2", "o1", "o2", "o1")],
                         [502, 500, 502, 500, 200])
        rules = self.mock.json("GET", "/_mock/rules")[1]["rules"]
        self.assertEqual([(r["id"], r["used"]) for r in rules], [(1, 2), (2, 2)])
        self.assertEqual([r["rule"] for r in self.mock.requests()], [2, 1, 2, 1, None])

    def test_scripted_invalid_request_says_so(self):
        self.mock.rules({"provider": "feihe", "status": 500})
        feihe(self.mock, {"openId": "o1"})
        rec = self.mock.last()
        self.assertEqual(rec["verdict"], "scripted")
        self.assertIn("request invalid", rec["reason"])

    def test_bad_rules_are_refused(self):
        for bad in ({"provider": "nope"}, {"match": "x"}, {"provider": "feihe", "times": -1},
                    {"provider": "feihe", "omit": True}, {"provider": "feihe", "drop": True,
                                                          "status": 500},
                    {"provider": "feihe", "body": "x", "code": 1}, {"provider": "feihe", "x": 1},
                    [{"provider": "feihe"}, {"provider": "bad"}], "not json"):
            with self.subTest(rule=bad):
                text = bad if isinstance(bad, str) else json.dumps(bad)
                status, doc = self.mock.json("POST", "/_mock/rules", text)
                self.assertEqual(status, 400)
                self.assertFalse(doc["ok"])
                self.assertTrue(doc["error"])
        self.assertEqual(self.mock.json("GET", "/_mock/rules")[1]["rules"], [])

    def test_reset_clears_everything(self):
        self.mock.rules({"provider": "*", "status": 500, "times": 0})
        feihe_ok(self.mock)
        self.mock.reset()
        self.assertEqual(self.mock.requests(), [])
        self.assertEqual(feihe_ok(self.mock)[0], 200)
        self.assertEqual(self.mock.last()["seq"], 1)

    def test_records_stats_and_unknown_paths(self):
        feihe_ok(self.mock)
        tim(self.mock, tim_msg())
        status, _, _ = self.mock.call("POST", "/no/such/api", "{}")
        self.assertEqual(status, 404)
        self.assertEqual([r["provider"] for r in self.mock.requests()],
                         ["feihe", "tencent_desk", "unknown"])
        self.assertEqual(len(self.mock.requests("feihe")), 1)
        stats = self.mock.json("GET", "/_mock/stats")[1]
        self.assertEqual(stats["total"], 3)
        self.assertEqual(stats["providers"]["feihe"]["accepted"], 1)
        self.assertEqual(stats["providers"]["unknown"]["rejected"], 1)
        status, text, _ = self.mock.call("GET", "/_mock/health")
        self.assertEqual((status, text), (200, "ok"))
        self.assertEqual(self.mock.call("GET", "/_mock/nothing")[0], 404)
        self.assertEqual(self.mock.json("GET", "/_mock/requests?provider=x")[0], 400)


class LifecycleTest(unittest.TestCase):
    def test_sigterm_answers_delayed_requests_and_exits_0(self):
        mock = Mock("--threads", "2")
        try:
            mock.rules({"provider": "feihe", "delay_ms": 60000})
            result = {}

            def delayed():
                result["answer"] = feihe_ok(mock)

            th = threading.Thread(target=delayed)
            th.start()
            deadline = time.monotonic() + 10
            while not mock.requests() and time.monotonic() < deadline:
                time.sleep(0.01)
            t0 = time.monotonic()
            rc = mock.stop()
            th.join(10)
            self.assertEqual(rc, 0)
            self.assertLess(time.monotonic() - t0, 20 * SLOW)
            self.assertEqual(result["answer"][0], 200)
            with open(mock.log) as f:
                lines = [json.loads(line) for line in f]
            self.assertEqual([(r["seq"], r["provider"], r["rule"]) for r in lines],
                             [(1, "feihe", 1)])
        finally:
            rc, err = mock.close()
        self.assertNotIn("Sanitizer", err)

    def test_sigint_and_log_survive_exit(self):
        mock = Mock("--no-record")
        try:
            for i in range(3):
                feihe_ok(mock, "o%d" % i)
            self.assertEqual(mock.requests(), [])
            self.assertEqual(mock.stop(signal.SIGINT), 0)
            with open(mock.log) as f:
                lines = [json.loads(line) for line in f]
            self.assertEqual([r["key"] for r in lines], ["o0", "o1", "o2"])
            self.assertTrue(all(r["verdict"] == "accepted" for r in lines))
        finally:
            mock.close()

    def test_bad_command_line(self):
        rc = subprocess.run([MOCK, "--port", "70000"], stderr=subprocess.DEVNULL).returncode
        self.assertEqual(rc, 64)
        rc = subprocess.run([MOCK, "--bogus"], stderr=subprocess.DEVNULL).returncode
        self.assertEqual(rc, 64)


if __name__ == "__main__":
    if not MOCK or not os.access(MOCK, os.X_OK):
        raise SystemExit("set HERALD_MOCK to the herald-mock binary")
    unittest.main(verbosity=1)
