"""The plain text of HTML email bodies, for display and for search."""

from __future__ import annotations

import html
import re

import nh3

# Ends of block elements, which become line breaks in the text.
BLOCK_END = re.compile(r"<br\s*/?>|</(p|div|li|tr|h[1-6])\s*>", re.IGNORECASE)


def text_of_html(markup: str) -> str:
    """Return the text of an HTML body: tags removed, entities decoded."""
    blocks = BLOCK_END.sub("\n", markup)
    return html.unescape(nh3.clean(blocks, tags=set())).strip()


def html_text_of(text_body: str, html_body: str) -> str:
    """Return the text rendering that an email stores for HTML-only mail.

    Mail with a text body needs none, so the result is empty for it.
    """
    if text_body.strip() or not html_body.strip():
        return ""
    return text_of_html(html_body)
