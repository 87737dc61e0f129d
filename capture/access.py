"""The access policy as SQL filters, with no web code: who may see what.

Roles:

- rep: their own customers, the touches they made or received, and their
  own row in reports.
- manager: the same for every member of their team (themselves included).
- ops: every customer, touch, report and export, but no recording or
  transcript.
- admin: everything, and the user administration and audit log.

Every read query of the pages and the API takes a `Viewer` and applies
these filters, so that a row outside the viewer's scope reads as missing.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, exists, false, or_, select, true

from capture.models import Activity, Call, Customer, Plan, Recording, User

ROLES = ("rep", "manager", "ops", "admin")
# Roles whose scope is the whole organisation.
ORGANISATION_ROLES = frozenset({"ops", "admin"})


@dataclass(frozen=True)
class Viewer:
    """The user a request acts for, reduced to what the policy needs."""

    user_id: int
    email: str
    role: str
    team_id: int | None

    @classmethod
    def of(cls, user: User) -> Viewer:
        return cls(user.id, user.email, user.role, user.team_id)

    @property
    def sees_organisation(self) -> bool:
        return self.role in ORGANISATION_ROLES

    @property
    def can_play_recordings(self) -> bool:
        """Recordings and transcripts: every role but ops."""
        return self.role != "ops"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def visible_users(viewer: Viewer) -> ColumnElement[bool]:
    """Filter on `User`: the users whose customers, touches and figures show."""
    if viewer.sees_organisation:
        return true()
    if viewer.role == "manager" and viewer.team_id is not None:
        return or_(User.team_id == viewer.team_id, User.id == viewer.user_id)
    return User.id == viewer.user_id


def sees_user(viewer: Viewer, user_id: int, team_id: int | None) -> bool:
    """Return whether the viewer sees a user already read, by `visible_users`'s rule."""
    if viewer.sees_organisation or user_id == viewer.user_id:
        return True
    return (
        viewer.role == "manager"
        and viewer.team_id is not None
        and team_id == viewer.team_id
    )


def visible_user_ids(viewer: Viewer) -> Select[int]:
    return select(User.id).where(visible_users(viewer))


def visible_customers(viewer: Viewer) -> ColumnElement[bool]:
    """Filter on `Customer`: customers owned by a visible user."""
    if viewer.sees_organisation:
        return true()
    return Customer.owner_id.in_(visible_user_ids(viewer))


def visible_activities(viewer: Viewer) -> ColumnElement[bool]:
    """Filter on `Activity`: touches of visible customers or by visible reps.

    A rep also sees a touch they made with another rep's customer, or with
    no customer at all (a withheld caller), because it is their own call.
    """
    if viewer.sees_organisation:
        return true()
    return or_(
        Activity.customer_id.in_(select(Customer.id).where(visible_customers(viewer))),
        Activity.rep_id.in_(visible_user_ids(viewer)),
    )


def visible_calls(viewer: Viewer) -> ColumnElement[bool]:
    """Filter on `Call`: calls whose touch is visible."""
    if viewer.sees_organisation:
        return true()
    return Call.activity_id.in_(select(Activity.id).where(visible_activities(viewer)))


def visible_plans(viewer: Viewer) -> ColumnElement[bool]:
    """Filter on `Plan`: plans of visible customers, whoever owns the plan."""
    if viewer.sees_organisation:
        return true()
    return Plan.customer_id.in_(select(Customer.id).where(visible_customers(viewer)))


def visible_recordings(viewer: Viewer) -> ColumnElement[bool]:
    """Filter on `Recording`: recordings of a visible call, none for ops.

    A recording names the parent leg of its call, so it belongs to the call
    with that SID and to the child legs of that call.
    """
    if not viewer.can_play_recordings:
        return false()
    if viewer.sees_organisation:
        return true()
    return exists(
        select(Call.id)
        .join(Activity, Call.activity_id == Activity.id)
        .where(
            or_(
                Call.call_sid == Recording.call_sid,
                Call.parent_call_sid == Recording.call_sid,
            ),
            visible_activities(viewer),
        )
    )
