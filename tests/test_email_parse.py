"""MIME parsing, forwards and automatic-mail markers, without a database."""

from __future__ import annotations

import pytest

from capture.email_headers import subject_key
from capture.email_parse import MalformedEmail, parse_bytes


def test_parse_raw_utf8_and_gbk_headers() -> None:
    utf8 = "Subject: 合同\r\nFrom: ops@harbor.example\r\n\r\nx\r\n".encode()
    gbk = "Subject: 报价\r\nFrom: ops@harbor.example\r\n\r\nx\r\n".encode("gbk")

    assert parse_bytes(utf8).subject == "合同"
    assert parse_bytes(gbk).subject == "报价"


def test_parse_big5_body() -> None:
    raw = (
        b"From: ops@harbor.example\r\nSubject: t\r\n"
        b'Content-Type: text/plain; charset="big5"\r\n\r\n'
    ) + "報價單".encode("big5")

    assert parse_bytes(raw).text == "報價單"


def test_parse_unknown_charset_falls_back() -> None:
    raw = (
        b"From: ops@harbor.example\r\nSubject: t\r\n"
        b'Content-Type: text/plain; charset="x-no-such-charset"\r\n\r\nplain'
    )

    assert parse_bytes(raw).text == "plain"


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ("Auto-Submitted: auto-generated\r\n", "auto-submitted"),
        ("Auto-Submitted: no\r\n", None),
        ("X-Autoreply: yes\r\n", "autoreply"),
        ("Precedence: bulk\r\n", "bulk"),
        ("X-Failed-Recipients: a@b.example\r\n", "bounce"),
        (
            "Content-Type: multipart/report; report-type=delivery-status; "
            'boundary="b"\r\n',
            "bounce",
        ),
    ],
)
def test_parse_automatic_headers(headers: str, reason: str | None) -> None:
    raw = f"From: ops@harbor.example\r\nSubject: Hello\r\n{headers}\r\n".encode()
    if "multipart/report" in headers:
        raw += b"--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n--b--\r\n"

    assert parse_bytes(raw).automatic_reason == reason


@pytest.mark.parametrize(
    ("sender", "subject", "reason"),
    [
        ("MAILER-DAEMON@mx.example", "Failure", "bounce"),
        ("ops@harbor.example", "Undeliverable: Offer", "bounce"),
        ("ops@harbor.example", "Out of Office: back Monday", "out-of-office"),
        ("ops@harbor.example", "自动回复：我不在办公室", "out-of-office"),
        ("ops@harbor.example", "Outstanding invoice", None),
    ],
)
def test_parse_automatic_sender_subject(
    sender: str, subject: str, reason: str | None
) -> None:
    raw = f"From: {sender}\r\nSubject: {subject}\r\n\r\nbody\r\n".encode()

    assert parse_bytes(raw).automatic_reason == reason


def test_parse_outlook_forward_mailto() -> None:
    text = (
        "See below\r\n\r\n-----Original Message-----\r\n"
        "From: Orders [mailto:orders@northwind.example]\r\n"
        "Sent: Monday, November 30, 2026 8:15 AM\r\n"
        "To: Ana Ruiz\r\nSubject: Rye flour\r\n\r\nPlease send.\r\n"
    )
    raw = "From: ana@demo.touchline.test\r\nSubject: FW: Rye flour\r\n\r\n" + text

    forwarded = parse_bytes(raw.encode()).forwarded

    assert forwarded is not None
    assert forwarded.sender.address == "orders@northwind.example"
    assert forwarded.subject == "Rye flour"


def test_parse_chinese_forward_marker() -> None:
    text = (
        "请看下面\r\n\r\n---------- 转发的邮件 ----------\r\n"
        "发件人： 张三 <zhang@acme.example>\r\n"
        "主题： 报价\r\n"
        "收件人： ana@demo.touchline.test\r\n\r\n正文\r\n"
    )
    raw = "From: ana@demo.touchline.test\r\nSubject: 转发：报价\r\n"
    raw += "Content-Type: text/plain; charset=utf-8\r\n\r\n" + text

    forwarded = parse_bytes(raw.encode()).forwarded

    assert forwarded is not None
    assert forwarded.sender.address == "zhang@acme.example"
    assert [a.address for a in forwarded.to] == ["ana@demo.touchline.test"]


def test_parse_rejects_empty_and_headerless() -> None:
    with pytest.raises(MalformedEmail) as empty:
        parse_bytes(b"   \r\n")
    with pytest.raises(MalformedEmail) as headerless:
        parse_bytes(b"just some text without headers")

    assert empty.value.field == "message"
    assert headerless.value.field in ("message", "from")


@pytest.mark.parametrize(
    ("subject", "key"),
    [
        ("Re: Fwd: RE: Pallets", "pallets"),
        ("回复：报价", "报价"),
        ("AW: WG: Angebot", "angebot"),
        ("Re[2]: Pallets ", "pallets"),
        ("Review: plan", "review: plan"),
    ],
)
def test_subject_key_strips_prefixes(subject: str, key: str) -> None:
    assert subject_key(subject) == key
