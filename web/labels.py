"""Page labels of stored codes: statuses, channels, directions, roles, actions.

The database and the API keep the codes (`no-answer`, `sms`, `manager`);
pages show these labels in the reader's language through the `label`
template filter. A code with no label here is shown as stored.
"""

from __future__ import annotations

import jinja2

from web.i18n import context_translations
from web.i18n import gettext_noop as N_

LABELS = {
    # Customer statuses.
    "lead": N_("lead"),
    "active": N_("active"),
    "won": N_("won"),
    "lost": N_("lost"),
    # Touch channels.
    "call": N_("call"),
    "sms": N_("SMS"),
    "mms": N_("MMS"),
    "email": N_("email"),
    "chat": N_("chat"),
    "meeting": N_("meeting"),
    "note": N_("note"),
    # Directions.
    "inbound": N_("inbound"),
    "outbound": N_("outbound"),
    # Contact point kinds.
    "phone": N_("phone"),
    # Call, message and recording statuses.
    "queued": N_("queued"),
    "initiated": N_("initiated"),
    "ringing": N_("ringing"),
    "in-progress": N_("in progress"),
    "completed": N_("completed"),
    "busy": N_("busy"),
    "failed": N_("failed"),
    "no-answer": N_("no answer"),
    "canceled": N_("canceled"),
    "accepted": N_("accepted"),
    "scheduled": N_("scheduled"),
    "sending": N_("sending"),
    "receiving": N_("receiving"),
    "sent": N_("sent"),
    "received": N_("received"),
    "delivered": N_("delivered"),
    "undelivered": N_("undelivered"),
    "partially_delivered": N_("partially delivered"),
    "read": N_("read"),
    "absent": N_("absent"),
    "deleted": N_("deleted"),
    "stored": N_("stored"),
    # Transcript speakers.
    "rep": N_("rep"),
    "customer": N_("customer"),
    "mixed": N_("mixed"),
    # Roles ("rep" is above).
    "manager": N_("manager"),
    "ops": N_("ops"),
    "admin": N_("admin"),
    # Audit actions.
    "login": N_("login"),
    "login_failed": N_("failed login"),
    "logout": N_("logout"),
    "password_changed": N_("password changed"),
    "token_created": N_("token created"),
    "token_revoked": N_("token revoked"),
    "user_created": N_("user created"),
    "user_updated": N_("user updated"),
    "user_deactivated": N_("user deactivated"),
    "user_activated": N_("user activated"),
    "recording_played": N_("recording played"),
    "export_downloaded": N_("export downloaded"),
    "team_created": N_("team created"),
    "team_renamed": N_("team renamed"),
    "number_added": N_("number added"),
    "number_removed": N_("number removed"),
    "setting_changed": N_("setting changed"),
    "webhook_replayed": N_("webhook replayed"),
    "export_scheduled": N_("export scheduled"),
    "export_schedule_deleted": N_("scheduled export deleted"),
    # Audit target types.
    "user": N_("user"),
    "recording": N_("recording"),
    "export": N_("export"),
    "token": N_("token"),
    "team": N_("team"),
    "number": N_("number"),
    "webhook_request": N_("webhook request"),
    # Webhook ledger outcomes and signature results ("accepted" and
    # "failed" are above).
    "created": N_("created"),
    "updated": N_("updated"),
    "stale": N_("stale"),
    "duplicate": N_("duplicate"),
    "forbidden": N_("forbidden"),
    "invalid": N_("invalid"),
    "valid": N_("valid"),
    "missing": N_("missing"),
    "unchecked": N_("unchecked"),
    # Next-step plan windows and purposes.
    "later_today": N_("later today"),
    "tonight": N_("tonight"),
    "tomorrow": N_("tomorrow"),
    "this_week": N_("this week"),
    "next_week": N_("next week"),
    "next_month": N_("next month"),
    "keep_in_touch": N_("keep in touch"),
    "deepen_relationship": N_("deepen the relationship"),
    "nurture_need": N_("nurture the need"),
    "uncover_opportunity": N_("uncover an opportunity"),
    "counter_competitor": N_("counter a competitor"),
    "sign_and_collect": N_("sign and collect payment"),
    "courtesy_greeting": N_("courtesy greeting"),
    # Plan statuses ("open" plans; "done" once completed).
    "open": N_("open"),
    "done": N_("done"),
    "closed": N_("closed"),
}


@jinja2.pass_context
def label_filter(context: jinja2.runtime.Context, code: str | None) -> str:
    """Return the label of `code` in the page's language."""
    if code is None:
        return ""
    label = LABELS.get(code)
    if label is None:
        return code
    return context_translations(context).ugettext(label)
