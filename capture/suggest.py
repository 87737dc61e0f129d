"""Suggested next steps from the text of a touch, by keyword rules.

The rules look for a time expression (English or Chinese), a contact
intent ("call me", "再联系") and purpose cues (a contract, a payment, a
competitor, a meeting, a holiday greeting). A suggestion needs a time
expression with an intent or a purpose cue, or a competitor or payment
mention on its own, which is urgent enough to follow up tomorrow. A
refusal ("not interested", "不需要") suppresses every suggestion.
Precision and recall on the labelled set in tests/suggestions.json are
recorded in docs/plans.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Checked in order, so that the longer phrase wins ("下个月" before "下").
TIME_PATTERNS: tuple[tuple[str, str], ...] = (
    ("next_month", r"\bnext month\b|\bin a month\b|\bin a few weeks\b|下个?月|下个月"),
    (
        "next_week",
        r"\bnext week\b|\bnext (?:monday|tuesday|wednesday|thursday|friday)\b"
        r"|\bin a week\b|下周|下星期|下个星期|下礼拜",
    ),
    (
        "tomorrow",
        r"\btomorrow\b|\btmrw\b|\btomorow\b|明天|明早|明日|明儿",
    ),
    ("tonight", r"\btonight\b|\bthis evening\b|今晚|今天晚上|今儿晚上"),
    (
        "later_today",
        r"\blater today\b|\bthis afternoon\b|\bin an hour\b|\bin a couple of hours\b"
        r"|\blater on\b|待会|等会|一会儿|稍后|晚点|今天下午",
    ),
    (
        "this_week",
        r"\bthis week\b|\bby (?:monday|tuesday|wednesday|thursday|friday)\b"
        r"|\bend of the week\b|\bin a few days\b|\bthis (?:thursday|friday)\b"
        r"|本周|这周|这个星期|这个礼拜|周五前|后天|过两天",
    ),
)

# Purpose cues, checked in order: the first that matches is the purpose.
PURPOSE_PATTERNS: tuple[tuple[str, str], ...] = (
    (
        "counter_competitor",
        r"\bcompetitors?\b|\banother (?:vendor|supplier)\b"
        r"|\bother (?:vendor|supplier)s?\b|\bcheaper\b|\bbetter (?:price|offer)\b"
        r"|竞争对手|竞品|别家|其他供应商|另一家|更便宜",
    ),
    (
        "sign_and_collect",
        r"\bcontracts?\b|\bsign(?:ed|ing)?\b|\binvoices?\b|\bpay(?:ment|ing)?\b"
        r"|\bdeposit\b|\bwire\b|\bpurchase order\b"
        r"|合同|签约|签字|付款|打款|发票|定金|汇款|转账|回款",
    ),
    (
        "courtesy_greeting",
        r"\bhappy (?:new year|holidays|birthday)\b|\bmerry christmas\b"
        r"|新年快乐|春节快乐|节日快乐|中秋|生日快乐",
    ),
    (
        "uncover_opportunity",
        r"\bquote\b|\bpricing\b|\bproposal\b|\bdemo\b|\bnew project\b|\bexpand\b"
        r"|报价|方案|演示|新项目|扩大",
    ),
    (
        "deepen_relationship",
        r"\blunch\b|\bdinner\b|\bcoffee\b|\bvisit\b|\bmeet (?:up|in person)\b"
        r"|吃饭|拜访|见面|喝茶|参观",
    ),
    (
        "nurture_need",
        r"\bthink (?:about|it over)\b|\bnot ready\b|\bbrochure\b|\bcase stud(?:y|ies)\b"
        r"|\bmore information\b|\bbudget\b|考虑|资料|还没准备|预算|案例",
    ),
)

CONTACT_INTENT = (
    r"\bcall\b|\bring\b|\btalk\b|\bspeak\b|\bchat\b|\bfollow up\b|\bget back\b"
    r"|\breach out\b|\bcatch up\b|\btouch base\b|\bemail\b|\btext\b|\bsend\b"
    r"|\bcheck in\b|\bremind\b|联系|再聊|回电|打电话|电话|回复|发给|发你|发送|沟通|聊"
)
REFUSAL = (
    r"\bnot interested\b|\bno longer interested\b|\bdon'?t call\b|\bdo not call\b"
    r"|\bstop (?:calling|texting|messaging)\b|\bunsubscribe\b|\bremove me\b"
    r"|\bno need\b|\bwrong number\b|不需要|不感兴趣|别再|不要再|不用联系|打错了|退订"
)
# Purposes worth a follow-up tomorrow even without a time expression.
URGENT_PURPOSES = ("counter_competitor", "sign_and_collect")
URGENT_WINDOW = "tomorrow"
DEFAULT_PURPOSE = "keep_in_touch"
EVIDENCE_CHARS = 120

_TIMES = [
    (window, re.compile(pattern, re.IGNORECASE)) for window, pattern in TIME_PATTERNS
]
_PURPOSES = [
    (name, re.compile(pattern, re.IGNORECASE)) for name, pattern in PURPOSE_PATTERNS
]
_INTENT = re.compile(CONTACT_INTENT, re.IGNORECASE)
_REFUSAL = re.compile(REFUSAL, re.IGNORECASE)


@dataclass(frozen=True)
class Suggestion:
    window: str
    purpose: str
    # The words that led to the suggestion, for the rep to check.
    evidence: str


def detect_window(text: str) -> tuple[str, re.Match[str]] | None:
    """Return the first window whose pattern matches, with its match."""
    for window, pattern in _TIMES:
        found = pattern.search(text)
        if found:
            return window, found
    return None


def detect_purpose(text: str) -> str | None:
    for purpose, pattern in _PURPOSES:
        if pattern.search(text):
            return purpose
    return None


def suggest(text: str) -> Suggestion | None:
    """Propose a next step from one touch's text, or None."""
    if not text.strip() or _REFUSAL.search(text):
        return None
    purpose = detect_purpose(text)
    timed = detect_window(text)
    if timed is not None and (purpose is not None or _INTENT.search(text)):
        window, found = timed
        return Suggestion(window, purpose or DEFAULT_PURPOSE, _evidence(text, found))
    if purpose in URGENT_PURPOSES:
        assert purpose is not None
        return Suggestion(URGENT_WINDOW, purpose, _evidence(text, None))
    return None


def _evidence(text: str, found: re.Match[str] | None) -> str:
    """Return the sentence around `found`, shortened to EVIDENCE_CHARS."""
    sentences = re.split(r"(?<=[.!?。！？])\s*", text.strip())
    chosen = sentences[0]
    if found is not None:
        position = 0
        for sentence in sentences:
            position = text.find(sentence, position)
            if position <= found.start() < position + len(sentence):
                chosen = sentence
                break
    chosen = " ".join(chosen.split())
    if len(chosen) > EVIDENCE_CHARS:
        return chosen[: EVIDENCE_CHARS - 1] + "…"
    return chosen
