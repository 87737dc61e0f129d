"""Call status events: stored once each, folded into the call's state.

Twilio does not guarantee arrival order, so a call's status is the status of
the event with the highest `SequenceNumber` seen so far, whatever order the
events arrived in, and a finished call never returns to a live status.

Events are applied in batches with Core statements. One statement stores
every new event of the batch and one loads the calls they belong to. The
parties of new calls are resolved together, and new and changed calls are
written with one executemany each. So the cost per event stays low under
load.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, bindparam, select, update
from sqlalchemy.orm import Session

from capture import rollups
from capture.identity import Directory, parse_party
from capture.models import Activity, Call, CallEvent, table_of, utcnow
from capture.sql import (
    Prepared,
    insert_rows,
    one_of,
    utc,
    utc_or_none,
    values_of,
)
from capture.stream import PlanIndex, plan_open_at

log = logging.getLogger(__name__)

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


class Outcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    # Stored, but an event with a higher sequence number already set the state.
    STALE = "stale"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class CallStatusEvent:
    call_sid: str
    parent_call_sid: str | None
    from_party: str
    to_party: str
    status: str
    twilio_direction: str
    sequence_number: int
    occurred_at: datetime
    # Talk time in seconds, sent with the final status.
    call_duration: int | None

    @property
    def key(self) -> tuple[str, int]:
        return (self.call_sid, self.sequence_number)


@dataclass(frozen=True)
class CallResult:
    outcome: Outcome
    call_sid: str
    activity_id: int | None = None


@dataclass
class CallState:
    """A call and its touch as plain values, folded in memory, then written."""

    call_sid: str
    status: str
    last_sequence: int
    occurred_at: datetime
    customer_id: int | None
    call_id: int | None = None
    activity_id: int | None = None
    started_at: datetime | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    talk_seconds: int | None = None
    changed: bool = False
    moved: bool = False


CALLS = table_of(Call)
EVENTS = table_of(CallEvent)
ACTIVITIES = table_of(Activity)


def apply_call_status(
    session: Session, event: CallStatusEvent, default_region: str
) -> CallResult:
    """Store one status callback and update the call it belongs to."""
    [result] = apply_call_statuses(session, [event], default_region)
    return result


def apply_call_statuses(
    session: Session, events: Sequence[CallStatusEvent], default_region: str
) -> list[CallResult]:
    """Store status callbacks and update their calls; one result per event."""
    new_events = _store_events(session, events)
    states = _load_states(session, {event.call_sid for event in new_events})
    # Loaded touches may move or change talk time, so keep what they counted.
    rollups.mark_changed(
        session,
        [
            (s.activity_id, s.occurred_at, s.talk_seconds)
            for s in states.values()
            if s.activity_id is not None
        ],
    )
    firsts: dict[str, CallStatusEvent] = {}
    for event in new_events:
        if event.call_sid not in states:
            firsts.setdefault(event.call_sid, event)
            states[event.call_sid] = _initial_state(event)
    outcomes: dict[int, Outcome] = {}
    for event in new_events:
        state = states[event.call_sid]
        if firsts.get(event.call_sid) is event:
            outcomes[id(event)] = Outcome.CREATED
        elif event.sequence_number > state.last_sequence:
            outcomes[id(event)] = Outcome.UPDATED
        else:
            outcomes[id(event)] = Outcome.STALE
        _fold_event(state, event)
    _insert_calls(session, firsts, states, default_region)
    _update_calls(session, [s for sid, s in states.items() if sid not in firsts])
    results = []
    for event in events:
        # A repeat of an event, earlier or in this same batch, is a duplicate.
        outcome = outcomes.get(id(event), Outcome.DUPLICATE)
        known = states.get(event.call_sid)
        activity_id = known.activity_id if known is not None else None
        results.append(CallResult(outcome, event.call_sid, activity_id))
    return results


def _store_events(
    session: Session, events: Sequence[CallStatusEvent]
) -> list[CallStatusEvent]:
    """Insert the events not stored before; return those, in batch order."""
    first: dict[tuple[str, int], CallStatusEvent] = {}
    for event in events:
        first.setdefault(event.key, event)
    rows = [
        {
            "call_sid": event.call_sid,
            "sequence_number": event.sequence_number,
            "status": event.status,
            "occurred_at": event.occurred_at,
            "call_duration": event.call_duration,
            "received_at": utcnow(),
        }
        for event in first.values()
    ]
    inserted = set(
        insert_rows(
            session,
            EVENTS,
            rows,
            returning=("call_sid", "sequence_number"),
            ignore_conflicts=True,
        )
    )
    return [event for key, event in first.items() if key in inserted]


def _states_query(dialect: str) -> Select[Any]:
    return (
        select(
            CALLS.c.call_sid,
            CALLS.c.status,
            CALLS.c.last_sequence,
            ACTIVITIES.c.occurred_at,
            ACTIVITIES.c.customer_id,
            CALLS.c.id,
            CALLS.c.activity_id,
            CALLS.c.started_at,
            CALLS.c.answered_at,
            CALLS.c.ended_at,
            CALLS.c.talk_seconds,
        )
        .join(ACTIVITIES, CALLS.c.activity_id == ACTIVITIES.c.id)
        .where(one_of(dialect, CALLS.c.call_sid, "sids"))
    )


LOAD_STATES = Prepared(_states_query)


def _load_states(session: Session, call_sids: set[str]) -> dict[str, CallState]:
    if not call_sids:
        return {}
    dialect = session.get_bind().dialect.name
    rows = LOAD_STATES.rows(session, {"sids": values_of(dialect, call_sids)})
    states = {}
    for row in rows:
        state = CallState(*row)
        state.occurred_at = utc(state.occurred_at)
        state.started_at = utc_or_none(state.started_at)
        state.answered_at = utc_or_none(state.answered_at)
        state.ended_at = utc_or_none(state.ended_at)
        states[state.call_sid] = state
    return states


def _initial_state(event: CallStatusEvent) -> CallState:
    return CallState(
        call_sid=event.call_sid,
        status=event.status,
        last_sequence=event.sequence_number,
        occurred_at=event.occurred_at,
        customer_id=None,
    )


def _fold_event(state: CallState, event: CallStatusEvent) -> None:
    moment = event.occurred_at
    # A final status older than the state, such as a stray busy after a
    # completed call, must not overwrite the call's end and talk time.
    latest_final = (
        state.ended_at is None or event.sequence_number >= state.last_sequence
    )
    if event.status in START_STATUSES:
        state.started_at = _earliest(state.started_at, moment)
    if event.status == "in-progress":
        state.answered_at = _earliest(state.answered_at, moment)
    if event.status in FINAL_STATUSES and latest_final:
        state.ended_at = moment
        # Only a completed call was answered; the others talked for 0 s.
        completed = event.status == "completed"
        state.talk_seconds = (event.call_duration or 0) if completed else 0
    if event.sequence_number > state.last_sequence:
        leaving_final = (
            state.status in FINAL_STATUSES and event.status not in FINAL_STATUSES
        )
        if not leaving_final:
            state.status = event.status
        state.last_sequence = event.sequence_number
    if moment < state.occurred_at:
        state.occurred_at = moment
        state.moved = True
    state.changed = True


def _earliest(current: datetime | None, moment: datetime) -> datetime:
    return moment if current is None else min(current, moment)


def _insert_calls(
    session: Session,
    firsts: dict[str, CallStatusEvent],
    states: dict[str, CallState],
    default_region: str,
) -> None:
    """Insert the touch and the call of each new call, in their folded state."""
    if not firsts:
        return
    touches = _resolve_touches(session, firsts, states, default_region)
    inserted = insert_rows(
        session, ACTIVITIES, touches, returning=("id", "external_key")
    )
    activity_ids = {key: activity_id for activity_id, key in inserted}
    rows = []
    for sid, event in firsts.items():
        state = states[sid]
        state.activity_id = activity_ids[f"call:{sid}"]
        rollups.mark_new(session, [state.activity_id])
        rows.append(_call_row(state, event))
    insert_rows(session, CALLS, rows)
    for touch in touches:
        log.debug(
            "call created: key=%s customer=%s rep=%s",
            touch["external_key"],
            touch["customer_id"],
            touch["rep_id"],
        )


def _resolve_touches(
    session: Session,
    firsts: dict[str, CallStatusEvent],
    states: dict[str, CallState],
    default_region: str,
) -> list[dict[str, Any]]:
    """Resolve rep, customer, direction and plan of each new call's touch."""
    parties = {
        sid: (
            parse_party(event.from_party, default_region),
            parse_party(event.to_party, default_region),
        )
        for sid, event in firsts.items()
    }
    directory = Directory.load(session, [p for pair in parties.values() for p in pair])
    legs: dict[str, tuple[int | None, str]] = {}
    for sid, (caller, callee) in parties.items():
        rep, other, direction = directory.resolve_legs(caller, callee)
        customer = directory.customer_for(session, other, rep)
        states[sid].customer_id = customer.id if customer else None
        legs[sid] = (rep.id if rep else None, direction)
    customer_ids = {
        customer_id
        for sid in firsts
        if (customer_id := states[sid].customer_id) is not None
    }
    earliest = min(states[sid].occurred_at for sid in firsts)
    plans = PlanIndex.load(session, customer_ids, earliest)
    touches = []
    for sid, (rep_id, direction) in legs.items():
        state = states[sid]
        touches.append(
            {
                "external_key": f"call:{sid}",
                "channel": "call",
                "direction": direction,
                "occurred_at": state.occurred_at,
                "customer_id": state.customer_id,
                "rep_id": rep_id,
                "plan_id": plans.open_at(state.customer_id, state.occurred_at),
                "summary": "",
                "automatic": False,
                "created_at": utcnow(),
            }
        )
    return touches


def _call_row(state: CallState, event: CallStatusEvent) -> dict[str, Any]:
    return {
        "activity_id": state.activity_id,
        "call_sid": state.call_sid,
        "parent_call_sid": event.parent_call_sid,
        "twilio_direction": event.twilio_direction,
        "from_party": event.from_party,
        "to_party": event.to_party,
        "status": state.status,
        "last_sequence": state.last_sequence,
        "started_at": state.started_at,
        "answered_at": state.answered_at,
        "ended_at": state.ended_at,
        "talk_seconds": state.talk_seconds,
    }


UPDATE_CALL = Prepared(
    lambda dialect: (
        update(CALLS)
        .where(CALLS.c.id == bindparam("call_id"))
        .values(
            status=bindparam("new_status"),
            last_sequence=bindparam("new_last_sequence"),
            started_at=bindparam("new_started_at"),
            answered_at=bindparam("new_answered_at"),
            ended_at=bindparam("new_ended_at"),
            talk_seconds=bindparam("new_talk_seconds"),
        )
    )
)


def _update_calls(session: Session, states: list[CallState]) -> None:
    changed = [state for state in states if state.changed]
    if not changed:
        return
    UPDATE_CALL.run_many(
        session,
        [
            {
                "call_id": s.call_id,
                "new_status": s.status,
                "new_last_sequence": s.last_sequence,
                "new_started_at": s.started_at,
                "new_answered_at": s.answered_at,
                "new_ended_at": s.ended_at,
                "new_talk_seconds": s.talk_seconds,
            }
            for s in changed
        ],
    )
    for state in changed:
        if state.moved:
            _move_touch(session, state)


def _move_touch(session: Session, state: CallState) -> None:
    """Move a touch earlier when an earlier event of it arrived late."""
    plan_id = None
    if state.customer_id is not None:
        plan_id = plan_open_at(session, state.customer_id, state.occurred_at)
    session.execute(
        update(ACTIVITIES)
        .where(ACTIVITIES.c.id == state.activity_id)
        .values(occurred_at=state.occurred_at, plan_id=plan_id)
    )
