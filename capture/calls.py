"""Call status events: stored once each, folded into the call they belong to.

A status callback with a `ParentCallSid` is a child leg (`<Dial>` or a
REST-bridged leg) and is stored as a leg of its parent call, so a call is
one touch however many legs it has. capture/call_state.py has the rules for
what a call shows; they give the same result in any arrival order. A leg
that arrives before its parent makes a placeholder call keyed by the parent
SID, which the parent's own events fill in later.

Events are applied in batches with Core statements. One statement stores
every new event of the batch and one loads the calls they belong to; the
legs are loaded with one more only when the batch has child-leg events. The
parties of new calls and legs are resolved together, and new and changed
calls and legs are written with one statement each. So the cost per event
stays low under load.
"""

from __future__ import annotations

import copy
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, and_, bindparam, exists, or_, select, update
from sqlalchemy.orm import Session

from capture import rollups
from capture.call_state import (
    CALL_STATUSES,
    FINAL_STATUSES,
    NO_OWN_EVENT,
    START_STATUSES,
    CallState,
    Progress,
    Touch,
)
from capture.identity import Directory, Party, RepRef, parse_party
from capture.models import (
    Activity,
    Call,
    CallEvent,
    CallLeg,
    Customer,
    table_of,
    utcnow,
)
from capture.sql import (
    Prepared,
    insert_rows,
    one_of,
    utc,
    utc_or_none,
    values_of,
)
from capture.stream import PlanIndex, plan_open_at

__all__ = [
    "CALL_STATUSES",
    "FINAL_STATUSES",
    "START_STATUSES",
    "CallResult",
    "CallStatusEvent",
    "Outcome",
    "apply_call_status",
    "apply_call_statuses",
]

log = logging.getLogger(__name__)

# A click-to-call's parent leg: the REST API calls the rep from a company number.
CLICK_TO_CALL_DIRECTION = "outbound-api"


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

    @property
    def parent_sid(self) -> str:
        """The SID of the call this event belongs to."""
        return self.parent_call_sid or self.call_sid

    @property
    def lock_key(self) -> str:
        """The writer's lock: one call's events are written one batch at a time."""
        return "call:" + self.parent_sid


@dataclass(frozen=True)
class CallResult:
    outcome: Outcome
    call_sid: str
    activity_id: int | None = None


@dataclass
class LegState:
    call_sid: str
    parent_sid: str
    progress: Progress
    twilio_direction: str
    from_party: str
    to_party: str
    leg_id: int | None = None


CALLS = table_of(Call)
EVENTS = table_of(CallEvent)
ACTIVITIES = table_of(Activity)
LEGS = table_of(CallLeg)
CUSTOMERS = table_of(Customer)


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
    states = _load_states(session, {event.parent_sid for event in new_events})
    # Loaded touches may move or change talk time, so keep what they counted.
    rollups.mark_changed(
        session,
        [
            (
                s.activity_id,
                s.touch.rep_id,
                s.touch.direction,
                s.occurred_at,
                s.talk_seconds,
                s.touch.customer_id,
            )
            for s in states.values()
            if s.activity_id is not None
        ],
    )
    # Calls with new child-leg events load all their legs, because the leg
    # that owns the touch may be one stored by an earlier batch.
    leg_calls = {e.parent_sid for e in new_events if e.parent_call_sid is not None}
    legs = _load_legs(session, leg_calls)
    created = _create_missing(states, new_events)
    new_legs: set[str] = set()
    changed_legs: set[str] = set()
    # Events whose parties join the touch: a new leg's first, the parent's first.
    arrivals: dict[str, list[CallStatusEvent]] = defaultdict(list)
    outcomes: dict[int, Outcome] = {}
    for event in new_events:
        state = states[event.parent_sid]
        if event.parent_call_sid is None:
            outcomes[id(event)] = _fold_own(state, event, created, arrivals)
        else:
            outcomes[id(event)] = _fold_leg(
                state, legs, event, created, arrivals, new_legs
            )
            changed_legs.add(event.call_sid)
    legs_by_call = _legs_by_call(legs, leg_calls)
    _resolve_parties(session, states, arrivals, created, legs_by_call, default_region)
    _insert_calls(session, created, states, with_ids=bool(new_legs))
    _update_calls(session, [s for sid, s in states.items() if sid not in created])
    _write_legs(session, legs, new_legs, changed_legs, states)
    rollups.mark_current(
        session,
        [
            (
                s.activity_id,
                s.touch.rep_id,
                "call",
                s.touch.direction,
                s.occurred_at,
                s.talk_seconds,
                False,
                s.touch.customer_id,
            )
            for s in states.values()
            if s.activity_id is not None
        ],
    )
    results = []
    for event in events:
        # A repeat of an event, earlier or in this same batch, is a duplicate.
        outcome = outcomes.get(id(event), Outcome.DUPLICATE)
        known = states.get(event.parent_sid)
        activity_id = known.activity_id if known is not None else None
        results.append(CallResult(outcome, event.call_sid, activity_id))
    return results


def _create_missing(
    states: dict[str, CallState], events: list[CallStatusEvent]
) -> dict[str, CallStatusEvent]:
    """Add a state for each call not stored yet; return the event creating it.

    The parent leg's own event creates the call when the batch has one, so
    that its parties name the stored call; otherwise a child leg creates a
    placeholder.
    """
    created: dict[str, CallStatusEvent] = {}
    ordered = sorted(events, key=lambda event: event.parent_call_sid is not None)
    for event in ordered:
        sid = event.parent_sid
        if sid not in states:
            created[sid] = event
            states[sid] = CallState(
                call_sid=sid,
                own=Progress("queued", NO_OWN_EVENT),
                occurred_at=event.occurred_at,
            )
    return created


def _fold_own(
    state: CallState,
    event: CallStatusEvent,
    created: dict[str, CallStatusEvent],
    arrivals: dict[str, list[CallStatusEvent]],
) -> Outcome:
    if created.get(state.call_sid) is event:
        outcome = Outcome.CREATED
    elif event.sequence_number > state.own.last_sequence:
        outcome = Outcome.UPDATED
    else:
        outcome = Outcome.STALE
    if state.placeholder:
        # The parent leg's first event: its parties join the touch.
        arrivals[state.call_sid].append(event)
        state.twilio_direction = event.twilio_direction
        state.from_party = event.from_party
        state.to_party = event.to_party
    state.fold_own(
        event.status, event.sequence_number, event.occurred_at, event.call_duration
    )
    return outcome


def _fold_leg(
    state: CallState,
    legs: dict[str, LegState],
    event: CallStatusEvent,
    created: dict[str, CallStatusEvent],
    arrivals: dict[str, list[CallStatusEvent]],
    new_legs: set[str],
) -> Outcome:
    leg = legs.get(event.call_sid)
    if leg is None:
        leg = LegState(
            event.call_sid,
            state.call_sid,
            Progress("queued", NO_OWN_EVENT),
            event.twilio_direction,
            event.from_party,
            event.to_party,
        )
        legs[event.call_sid] = leg
        new_legs.add(event.call_sid)
        state.leg_count += 1
        arrivals[state.call_sid].append(event)
    if created.get(state.call_sid) is event:
        outcome = Outcome.CREATED
    elif event.sequence_number > leg.progress.last_sequence:
        outcome = Outcome.UPDATED
    else:
        outcome = Outcome.STALE
    before = copy.copy(leg.progress)
    leg.progress.fold(
        event.status, event.sequence_number, event.occurred_at, event.call_duration
    )
    state.fold_leg(leg.progress, before, event.occurred_at)
    return outcome


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
            ACTIVITIES.c.rep_id,
            ACTIVITIES.c.direction,
            CALLS.c.id,
            CALLS.c.activity_id,
            CALLS.c.twilio_direction,
            CALLS.c.from_party,
            CALLS.c.to_party,
            CALLS.c.started_at,
            CALLS.c.answered_at,
            CALLS.c.ended_at,
            CALLS.c.talk_seconds,
            CALLS.c.own_answered_at,
            CALLS.c.own_talk_seconds,
            CALLS.c.leg_count,
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
        state = _state_of_row(*row)
        states[state.call_sid] = state
    return states


def _state_of_row(
    call_sid: str,
    status: str,
    last_sequence: int,
    occurred_at: Any,
    customer_id: int | None,
    rep_id: int | None,
    direction: str,
    call_id: int,
    activity_id: int,
    twilio_direction: str,
    from_party: str,
    to_party: str,
    started_at: Any,
    answered_at: Any,
    ended_at: Any,
    talk_seconds: int | None,
    own_answered_at: Any,
    own_talk_seconds: int | None,
    leg_count: int,
) -> CallState:
    placeholder = last_sequence == NO_OWN_EVENT
    own = Progress(
        status="queued" if placeholder else status,
        last_sequence=last_sequence,
        started_at=utc_or_none(started_at),
        answered_at=utc_or_none(own_answered_at),
        ended_at=None if placeholder else utc_or_none(ended_at),
        talk_seconds=own_talk_seconds,
    )
    state = CallState(
        call_sid=call_sid,
        own=own,
        occurred_at=utc(occurred_at),
        touch=Touch(
            customer_id,
            rep_id,
            direction,
            # Set by the parent leg's own event or a missed call, never by a leg.
            direction_known=bool(twilio_direction),
        ),
        call_id=call_id,
        activity_id=activity_id,
        started_at=utc_or_none(started_at),
        leg_count=leg_count,
        twilio_direction=twilio_direction,
        from_party=from_party,
        to_party=to_party,
    )
    if placeholder:
        state.leg_status = status
        state.leg_ended_at = utc_or_none(ended_at)
    if leg_count:
        state.leg_answered_at = utc_or_none(answered_at)
        state.leg_talk_seconds = talk_seconds
    return state


def _legs_query(dialect: str) -> Select[Any]:
    return (
        select(
            LEGS.c.call_sid,
            LEGS.c.id,
            CALLS.c.call_sid,
            LEGS.c.twilio_direction,
            LEGS.c.from_party,
            LEGS.c.to_party,
            LEGS.c.status,
            LEGS.c.last_sequence,
            LEGS.c.started_at,
            LEGS.c.answered_at,
            LEGS.c.ended_at,
            LEGS.c.talk_seconds,
        )
        .join(CALLS, LEGS.c.call_id == CALLS.c.id)
        .where(one_of(dialect, CALLS.c.call_sid, "sids"))
    )


LOAD_LEGS = Prepared(_legs_query)


def _load_legs(session: Session, parent_sids: set[str]) -> dict[str, LegState]:
    """Load every stored leg of the calls with these SIDs, by the leg's SID."""
    if not parent_sids:
        return {}
    dialect = session.get_bind().dialect.name
    rows = LOAD_LEGS.rows(session, {"sids": values_of(dialect, parent_sids)})
    legs = {}
    for sid, leg_id, parent_sid, direction, from_party, to_party, *progress in rows:
        status, last_sequence, started_at, answered_at, ended_at, talk = progress
        legs[sid] = LegState(
            sid,
            parent_sid,
            Progress(
                status,
                last_sequence,
                utc_or_none(started_at),
                utc_or_none(answered_at),
                utc_or_none(ended_at),
                talk,
            ),
            direction,
            from_party,
            to_party,
            leg_id,
        )
    return legs


def _legs_by_call(
    legs: dict[str, LegState], call_sids: set[str]
) -> dict[str, list[LegState]]:
    """Group the legs of the given calls by their parent's SID."""
    grouped: dict[str, list[LegState]] = {sid: [] for sid in call_sids}
    for leg in legs.values():
        if leg.parent_sid in grouped:
            grouped[leg.parent_sid].append(leg)
    return grouped


def _resolve_parties(
    session: Session,
    states: dict[str, CallState],
    arrivals: dict[str, list[CallStatusEvent]],
    created: dict[str, CallStatusEvent],
    legs_by_call: dict[str, list[LegState]],
    default_region: str,
) -> None:
    """Merge the rep, customer and direction of newly seen legs into touches.

    Reps are merged before customers, so that a lead made for an unknown
    number is owned by the rep on the call whichever leg names the rep. A
    call whose legs name reps belongs to the rep that `_owning_leg_rep` picks.
    """
    if not arrivals and not legs_by_call:
        return
    parties = {
        id(event): (
            parse_party(event.from_party, default_region),
            parse_party(event.to_party, default_region),
        )
        for events in arrivals.values()
        for event in events
    }
    leg_parties = {
        leg.call_sid: (
            parse_party(leg.from_party, default_region),
            parse_party(leg.to_party, default_region),
        )
        for legs in legs_by_call.values()
        for leg in legs
    }
    all_parties = [*parties.values(), *leg_parties.values()]
    directory = Directory.load(session, [p for pair in all_parties for p in pair])
    owners: list[dict[str, Any]] = []
    for sid in sorted(arrivals.keys() | legs_by_call.keys()):
        state = states[sid]
        touch = state.touch
        had = (touch.customer_id, touch.rep_id, touch.direction)
        events = arrivals.get(sid, [])
        resolved = {id(e): _merge_rep(touch, e, directory, parties) for e in events}
        owning_rep = _owning_leg_rep(legs_by_call.get(sid, []), directory, leg_parties)
        if owning_rep is not None:
            touch.rep_id = owning_rep
        creator = created.get(sid)
        if creator is not None and not touch.direction_known:
            # No parent leg yet: guess from the legs, as for any unknown call.
            touch.direction = resolved[id(creator)][1]
        for other, _ in resolved.values():
            if touch.customer_id is not None:
                break
            rep = RepRef(touch.rep_id, "") if touch.rep_id is not None else None
            customer = directory.customer_for(session, other, rep)
            touch.customer_id = customer.id if customer else None
        now = (touch.customer_id, touch.rep_id, touch.direction)
        if sid not in created and now != had:
            state.touch_changed = True
            state.changed = True
            if now[1] is not None and now[0] is not None and now[1] != had[1]:
                owners.append(
                    {
                        "customer": now[0],
                        "owner": now[1],
                        "previous": had[1],
                        "activity": state.activity_id,
                    }
                )
    _own_leads(session, owners)


def _owning_leg_rep(
    legs: list[LegState],
    directory: Directory,
    parties: dict[str, tuple[Party, Party]],
) -> int | None:
    """Return the id of the rep who owns the call, from its child legs.

    The rep of the leg that answered owns the call: the earliest answer
    among the legs that name a rep. When no such leg answered, the rep of
    the leg rung first owns it, which inbound routing makes the customer's
    owner. Ties go to the lower CallSid. With no leg naming a rep, this
    returns None and the touch keeps the parent leg's rep or the missed
    call's owner. Each choice reads only the legs' folded state, so the
    result is the same in any arrival order.
    """
    named = []
    for leg in legs:
        rep, _, _ = directory.resolve_legs(*parties[leg.call_sid])
        if rep is not None:
            named.append((leg, rep.id))
    answered = [
        (answer, leg.call_sid, rep_id)
        for leg, rep_id in named
        if (answer := _answered_at(leg.progress)) is not None
    ]
    if answered:
        return min(answered)[2]
    rung = [(_first_seen(leg.progress), leg.call_sid, rep_id) for leg, rep_id in named]
    return min(rung)[2] if rung else None


def _answered_at(progress: Progress) -> datetime | None:
    """Return when a leg was answered, or None if it was not."""
    if progress.answered_at is not None:
        return progress.answered_at
    # A completed child leg was answered, even when its in-progress event is
    # missing.
    return progress.ended_at if progress.status == "completed" else None


def _first_seen(progress: Progress) -> datetime:
    """Return the time of a leg's earliest known event."""
    moments = [
        moment
        for moment in (progress.started_at, progress.answered_at, progress.ended_at)
        if moment is not None
    ]
    # Every folded event sets one of the three, so this is never empty.
    return min(moments)


def _merge_rep(
    touch: Touch,
    event: CallStatusEvent,
    directory: Directory,
    parties: dict[int, tuple[Party, Party]],
) -> tuple[Party, str]:
    """Merge one event's rep and direction into the touch.

    Return the event's party that is not the rep, and the direction guessed
    from its parties.
    """
    caller, callee = parties[id(event)]
    rep, other, guessed = directory.resolve_legs(caller, callee)
    if touch.rep_id is None and rep is not None:
        touch.rep_id = rep.id
    if event.parent_call_sid is not None:
        # A child leg (`outbound-dial`) only guesses, until the parent arrives.
        return other, guessed
    touch.direction = guessed
    calls_rep_from_company = (
        directory.is_company(caller)
        and rep is not None
        and rep == directory.rep(callee)
    )
    if event.twilio_direction == CLICK_TO_CALL_DIRECTION and calls_rep_from_company:
        # The rep was called first, but the call goes out to the customer.
        touch.direction = "outbound"
    touch.direction_known = True
    return other, guessed


OWN_LEAD = Prepared(
    lambda dialect: (
        update(CUSTOMERS)
        .where(
            CUSTOMERS.c.id == bindparam("customer"),
            CUSTOMERS.c.status == "lead",
            or_(
                CUSTOMERS.c.owner_id.is_(None),
                and_(
                    CUSTOMERS.c.owner_id == bindparam("previous"),
                    ~exists().where(
                        ACTIVITIES.c.customer_id == bindparam("customer"),
                        ACTIVITIES.c.id != bindparam("activity"),
                    ),
                ),
            ),
        )
        .values(owner_id=bindparam("owner"))
    )
)


def _own_leads(session: Session, owners: list[dict[str, Any]]) -> None:
    """Give a lead to the rep who now owns the call that made it.

    A lead with no owner goes to that rep. A lead owned by the call's
    previous rep goes too, when this call is its only touch, because then
    the call made it.
    """
    if owners:
        OWN_LEAD.run_many(session, owners)


def _insert_calls(
    session: Session,
    created: dict[str, CallStatusEvent],
    states: dict[str, CallState],
    with_ids: bool,
) -> None:
    """Insert the touch and the call of each new call, in their folded state."""
    if not created:
        return
    touches = _touch_rows(session, created, states)
    inserted = insert_rows(
        session, ACTIVITIES, touches, returning=("id", "external_key")
    )
    activity_ids = {key: activity_id for activity_id, key in inserted}
    rows = []
    for sid, event in created.items():
        state = states[sid]
        state.activity_id = activity_ids[f"call:{sid}"]
        rollups.mark_new(session, [state.activity_id])
        rows.append(_call_row(state, event))
    # The ids are needed only to insert legs, so the usual batch skips them.
    returning = ("id", "call_sid") if with_ids else ()
    for call_id, sid in insert_rows(session, CALLS, rows, returning=returning):
        states[sid].call_id = call_id
    for touch in touches:
        log.debug(
            "call created: key=%s customer=%s rep=%s",
            touch["external_key"],
            touch["customer_id"],
            touch["rep_id"],
        )


def _touch_rows(
    session: Session, created: dict[str, CallStatusEvent], states: dict[str, CallState]
) -> list[dict[str, Any]]:
    customer_ids = {
        customer_id
        for sid in created
        if (customer_id := states[sid].touch.customer_id) is not None
    }
    earliest = min(states[sid].occurred_at for sid in created)
    plans = PlanIndex.load(session, customer_ids, earliest)
    touches = []
    for sid in created:
        state = states[sid]
        touches.append(
            {
                "external_key": f"call:{sid}",
                "channel": "call",
                "direction": state.touch.direction,
                "occurred_at": state.occurred_at,
                "customer_id": state.touch.customer_id,
                "rep_id": state.touch.rep_id,
                "plan_id": plans.open_at(state.touch.customer_id, state.occurred_at),
                "summary": "",
                "automatic": False,
                "created_at": utcnow(),
            }
        )
    return touches


def _call_row(state: CallState, event: CallStatusEvent) -> dict[str, Any]:
    own_event = event.parent_call_sid is None
    return {
        "activity_id": state.activity_id,
        "call_sid": state.call_sid,
        "parent_call_sid": None,
        # A placeholder's direction is unknown until the parent's own event.
        "twilio_direction": event.twilio_direction if own_event else "",
        "from_party": event.from_party,
        "to_party": event.to_party,
        "status": state.status,
        "last_sequence": state.own.last_sequence,
        "started_at": state.started_at,
        "answered_at": state.answered_at,
        "ended_at": state.ended_at,
        "talk_seconds": state.talk_seconds,
        "own_answered_at": state.own.answered_at,
        "own_talk_seconds": state.own.talk_seconds,
        "leg_count": state.leg_count,
        "missed": False,
    }


UPDATE_CALL = Prepared(
    lambda dialect: (
        update(CALLS)
        .where(CALLS.c.id == bindparam("call_id"))
        .values(
            status=bindparam("new_status"),
            last_sequence=bindparam("new_last_sequence"),
            twilio_direction=bindparam("new_twilio_direction"),
            from_party=bindparam("new_from_party"),
            to_party=bindparam("new_to_party"),
            started_at=bindparam("new_started_at"),
            answered_at=bindparam("new_answered_at"),
            ended_at=bindparam("new_ended_at"),
            talk_seconds=bindparam("new_talk_seconds"),
            own_answered_at=bindparam("new_own_answered_at"),
            own_talk_seconds=bindparam("new_own_talk_seconds"),
            leg_count=bindparam("new_leg_count"),
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
                "new_last_sequence": s.own.last_sequence,
                "new_twilio_direction": s.twilio_direction or "",
                "new_from_party": s.from_party,
                "new_to_party": s.to_party,
                "new_started_at": s.started_at,
                "new_answered_at": s.answered_at,
                "new_ended_at": s.ended_at,
                "new_talk_seconds": s.talk_seconds,
                "new_own_answered_at": s.own.answered_at,
                "new_own_talk_seconds": s.own.talk_seconds,
                "new_leg_count": s.leg_count,
            }
            for s in changed
        ],
    )
    for state in changed:
        if state.touch_changed:
            _update_touch(session, state)


def _update_touch(session: Session, state: CallState) -> None:
    """Rewrite a stored touch whose time or parties changed with a late event."""
    plan_id = None
    customer_id = state.touch.customer_id
    if customer_id is not None:
        plan_id = plan_open_at(session, customer_id, state.occurred_at)
    session.execute(
        update(ACTIVITIES)
        .where(ACTIVITIES.c.id == state.activity_id)
        .values(
            occurred_at=state.occurred_at,
            plan_id=plan_id,
            customer_id=customer_id,
            rep_id=state.touch.rep_id,
            direction=state.touch.direction,
        )
    )


UPDATE_LEG = Prepared(
    lambda dialect: (
        update(LEGS)
        .where(LEGS.c.id == bindparam("leg_id"))
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


def _write_legs(
    session: Session,
    legs: dict[str, LegState],
    new_legs: set[str],
    changed_legs: set[str],
    states: dict[str, CallState],
) -> None:
    """Insert the new legs and update the changed ones."""
    if not changed_legs:
        return
    rows = []
    updates = []
    for sid in changed_legs:
        leg = legs[sid]
        progress = leg.progress
        if sid in new_legs:
            rows.append(
                {
                    "call_id": states[leg.parent_sid].call_id,
                    "call_sid": sid,
                    "twilio_direction": leg.twilio_direction,
                    "from_party": leg.from_party,
                    "to_party": leg.to_party,
                    "status": progress.status,
                    "last_sequence": progress.last_sequence,
                    "started_at": progress.started_at,
                    "answered_at": progress.answered_at,
                    "ended_at": progress.ended_at,
                    "talk_seconds": progress.talk_seconds,
                }
            )
        else:
            updates.append(
                {
                    "leg_id": leg.leg_id,
                    "new_status": progress.status,
                    "new_last_sequence": progress.last_sequence,
                    "new_started_at": progress.started_at,
                    "new_answered_at": progress.answered_at,
                    "new_ended_at": progress.ended_at,
                    "new_talk_seconds": progress.talk_seconds,
                }
            )
    insert_rows(session, LEGS, rows)
    if updates:
        UPDATE_LEG.run_many(session, updates)
