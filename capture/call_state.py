"""How status events fold into a call's state, in memory and order-free.

Twilio does not guarantee arrival order, so a leg's status is the status of
its event with the highest `SequenceNumber`, and a finished leg never
returns to a live status.

A call is its parent leg plus any child legs (`ParentCallSid`: a `<Dial>`
or a REST-bridged leg). The rule for what the call shows:

- status and end: the parent leg's own, once any event of it arrived;
  until then (a placeholder made by a child leg that arrived first) the
  furthest status of the child legs and their latest end.
- answer time and talk time: with no child leg, the parent leg's own
  (`CallDuration` of its final status). With child legs, the earliest
  answer of a child and the sum of the children's `CallDuration`. A
  `<Dial>` bridges one child at a time, so that sum is the time the two
  parties talked. The parent leg's own answer does not count then:
  Twilio answers an inbound call itself to run its TwiML, and in
  click-to-call the parent leg is the rep picking up.
- start: the earliest start event of any leg.

Each of these is a minimum, maximum or sum over events, or the state of
the highest sequence number, so the result is the same in any arrival order
and a repeated event changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

CALL_STATUSES = (
    "queued",
    "initiated",
    "ringing",
    "in-progress",
    "completed",
    "busy",
    "failed",
    "no-answer",
    "canceled",
)
FINAL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
START_STATUSES = frozenset({"queued", "initiated", "ringing"})
# How far along a child leg got, to pick a placeholder's status from its
# legs: any answered leg beats one that rang out, which beats one that failed.
LEG_STATUS_RANK = {
    "queued": 0,
    "initiated": 1,
    "ringing": 2,
    "in-progress": 3,
    "canceled": 4,
    "failed": 5,
    "busy": 6,
    "no-answer": 7,
    "completed": 8,
}
# The parent leg's last_sequence before any event of its own arrived.
NO_OWN_EVENT = -1


@dataclass
class Progress:
    """The state of one leg, folded from its own status events."""

    status: str
    last_sequence: int
    started_at: datetime | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    # Talk time in seconds from CallDuration; None until the leg ends.
    talk_seconds: int | None = None

    def fold(
        self,
        status: str,
        sequence: int,
        moment: datetime,
        call_duration: int | None,
    ) -> None:
        # A final status older than the state, such as a stray busy after a
        # completed call, must not overwrite the end and talk time.
        latest_final = self.ended_at is None or sequence >= self.last_sequence
        if status in START_STATUSES:
            self.started_at = earliest(self.started_at, moment)
        if status == "in-progress":
            self.answered_at = earliest(self.answered_at, moment)
        if status in FINAL_STATUSES and latest_final:
            self.ended_at = moment
            # Only a completed leg was answered; the others talked for 0 s.
            completed = status == "completed"
            self.talk_seconds = (call_duration or 0) if completed else 0
        if sequence > self.last_sequence:
            leaving_final = (
                self.status in FINAL_STATUSES and status not in FINAL_STATUSES
            )
            if not leaving_final:
                self.status = status
            self.last_sequence = sequence


@dataclass
class Touch:
    """The customer, rep and direction of a call's touch, merged from its legs."""

    customer_id: int | None = None
    rep_id: int | None = None
    direction: str = "inbound"
    # True once the parent leg's own event or a missed call set it, which no
    # child leg overrides.
    direction_known: bool = False


@dataclass
class CallState:
    """A call and its touch as plain values, folded in memory, then written."""

    call_sid: str
    own: Progress
    occurred_at: datetime
    touch: Touch = field(default_factory=Touch)
    call_id: int | None = None
    activity_id: int | None = None
    started_at: datetime | None = None
    leg_count: int = 0
    leg_status: str = "queued"
    leg_ended_at: datetime | None = None
    leg_answered_at: datetime | None = None
    leg_talk_seconds: int | None = None
    # The call's stored Direction, From and To. A placeholder's come from the
    # leg or missed call that made it, until the parent leg's own event.
    twilio_direction: str | None = None
    from_party: str | None = None
    to_party: str | None = None
    changed: bool = False
    # The touch's time, rep, customer or direction changed.
    touch_changed: bool = False

    @property
    def placeholder(self) -> bool:
        return self.own.last_sequence == NO_OWN_EVENT

    def fold_own(
        self,
        status: str,
        sequence: int,
        moment: datetime,
        call_duration: int | None,
    ) -> None:
        # A placeholder's own state starts at NO_OWN_EVENT, so the parent
        # leg's first event sets its status, whatever status the legs gave.
        self.own.fold(status, sequence, moment, call_duration)
        if status in START_STATUSES:
            self.started_at = earliest(self.started_at, moment)
        self.touched_at(moment)

    def fold_leg(self, leg: Progress, before: Progress, moment: datetime) -> None:
        """Fold a child leg's change (`before` to `leg`) into the call."""
        if leg.answered_at is not None:
            self.leg_answered_at = earliest(self.leg_answered_at, leg.answered_at)
        if leg.talk_seconds is not None:
            delta = leg.talk_seconds - (before.talk_seconds or 0)
            self.leg_talk_seconds = (self.leg_talk_seconds or 0) + delta
        if LEG_STATUS_RANK[leg.status] > LEG_STATUS_RANK[self.leg_status]:
            self.leg_status = leg.status
        if leg.ended_at is not None:
            self.leg_ended_at = latest(self.leg_ended_at, leg.ended_at)
        if leg.started_at is not None:
            self.started_at = earliest(self.started_at, leg.started_at)
        self.touched_at(moment)

    def touched_at(self, moment: datetime) -> None:
        """Move the touch earlier when an earlier event arrives late."""
        if moment < self.occurred_at:
            self.occurred_at = moment
            self.touch_changed = True
        self.changed = True

    @property
    def status(self) -> str:
        return self.leg_status if self.placeholder else self.own.status

    @property
    def ended_at(self) -> datetime | None:
        return self.leg_ended_at if self.placeholder else self.own.ended_at

    @property
    def answered_at(self) -> datetime | None:
        return self.leg_answered_at if self.leg_count else self.own.answered_at

    @property
    def talk_seconds(self) -> int | None:
        if not self.leg_count:
            return self.own.talk_seconds
        if self.leg_talk_seconds is None and self.status in FINAL_STATUSES:
            # The call ended before any child leg reported its end.
            return 0
        return self.leg_talk_seconds


def earliest(current: datetime | None, moment: datetime) -> datetime:
    return moment if current is None else min(current, moment)


def latest(current: datetime | None, moment: datetime) -> datetime:
    return moment if current is None else max(current, moment)
