"""Database tables of the domain core (SQLAlchemy 2 declarative mapping).

Timestamps are stored in UTC and come back timezone-aware. Money is stored
in integer minor units beside an ISO 4217 currency code.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and returned timezone-aware.

    SQLite has no time zone type, so aware values are converted to UTC and
    stored naive; values read back get UTC attached.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime stored; attach a time zone")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        # The same text as SQLAlchemy's SQLite DATETIME writes, in one step:
        # webhooks bind several timestamps per event, and the two-step path
        # of a type decorator was a sixth of the batch writer's time.
        def process(value: Any) -> str | None:
            if value is None:
                return None
            if value.tzinfo is not UTC:
                if value.tzinfo is None:
                    raise ValueError("naive datetime stored; attach a time zone")
                value = value.astimezone(UTC)
            # Cut the "+00:00" suffix rather than build a naive copy.
            return str(value.isoformat(" ", "microseconds"))[:-6]

        return process


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def table_of(model: type[Base]) -> Table:
    """Return the Core table of a mapped class, typed as a Table."""
    return cast(Table, model.__table__)


class Team(Base):
    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)


class User(Base):
    """A person who logs in; reps make and receive touches."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    phone: Mapped[str | None] = mapped_column(String(20), unique=True)
    client_identity: Mapped[str | None] = mapped_column(String(200), unique=True)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"))
    timezone: Mapped[str | None] = mapped_column(String(64))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # BCP 47 language tag of the user's pages.
    locale: Mapped[str] = mapped_column(String(16), default="en", server_default="en")
    # Stored in each login session; raising it ends every session of the user.
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    team: Mapped[Team | None] = relationship()


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters of the secret, shown in listings to tell tokens apart.
    prefix: Mapped[str] = mapped_column(String(16), default="", server_default="")
    label: Mapped[str] = mapped_column(String(100), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LoginThrottle(Base):
    """Failed logins of one email address, whether or not a user has it.

    Keyed by a hash of the address, so that addresses typed by mistake are
    not stored in the clear.
    """

    __tablename__ = "login_throttles"

    email_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_failure_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditEvent(Base):
    """Who did what: logins, recordings played, exports, account changes.

    `actor_email` keeps the actor readable after the user is renamed;
    `detail` is a JSON object, and callers never put a password or token
    secret in it.
    """

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_time", "occurred_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    actor_email: Mapped[str] = mapped_column(String(320), default="")
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32), default="")
    target_id: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[str] = mapped_column(Text, default="{}")
    remote: Mapped[str] = mapped_column(String(64), default="")


class CompanyNumber(Base):
    """A Twilio number of the organisation; never a customer's number."""

    __tablename__ = "company_numbers"

    id: Mapped[int] = mapped_column(primary_key=True)
    phone: Mapped[str] = mapped_column(String(20), unique=True)
    label: Mapped[str] = mapped_column(String(200), default="")


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = (
        # Reports count the customers created in a period, per owner.
        Index("ix_customers_created_at", "created_at", "owner_id"),
        # The per-rep summary counts the customers lost in a period.
        Index("ix_customers_closed_at", "closed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    # lead: created from an unknown number; active; won; lost.
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Why the customer was closed as won or lost, as the rep wrote it.
    closed_reason: Mapped[str] = mapped_column(Text, default="", server_default="")

    # Value calibration: the rep's judgement of the customer, the deal size
    # expected, and when and for how much the customer should sign.
    judgement: Mapped[str | None] = mapped_column(String(16))
    deal_size: Mapped[str | None] = mapped_column(String(16))
    expected_sign_date: Mapped[date | None] = mapped_column(Date)
    expected_amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    expected_currency: Mapped[str | None] = mapped_column(String(3))

    owner: Mapped[User | None] = relationship()
    contact_points: Mapped[list[ContactPoint]] = relationship(
        back_populates="customer", cascade="all, delete-orphan"
    )


class ContactPoint(Base):
    """A phone number (E.164) or email address (lower case) of a customer."""

    __tablename__ = "contact_points"
    __table_args__ = (
        UniqueConstraint("customer_id", "kind", "value"),
        Index("ix_contact_points_kind_value", "kind", "value"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(8))
    value: Mapped[str] = mapped_column(String(320))
    label: Mapped[str] = mapped_column(String(100), default="")

    customer: Mapped[Customer] = relationship(back_populates="contact_points")


class Plan(Base):
    """A next-step plan; a customer has at most one open plan."""

    __tablename__ = "plans"
    __table_args__ = (
        Index(
            "uq_plans_one_open",
            "customer_id",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    purpose: Mapped[str] = mapped_column(String(32))
    window: Mapped[str | None] = mapped_column(String(16))
    due_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    due_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    note: Mapped[str] = mapped_column(Text, default="")
    # open, done, cancelled
    status: Mapped[str] = mapped_column(String(16), default="open")
    # The touch whose text suggested this plan, when a suggestion was accepted.
    source_activity_id: Mapped[int | None] = mapped_column(
        ForeignKey("activities.id", ondelete="SET NULL", use_alter=True)
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Activity(Base):
    """A touch: one contact between a rep and a customer.

    `external_key` makes recording idempotent: `call:<CallSid>`,
    `sms:<MessageSid>` and so on. A touch whose customer could not be
    determined (a withheld caller) has no customer.
    """

    __tablename__ = "activities"
    __table_args__ = (
        Index("ix_activities_customer_time", "customer_id", "occurred_at"),
        Index("ix_activities_rep_time", "rep_id", "occurred_at"),
        Index("ix_activities_time", "occurred_at"),
        # Finds the touches of a plan, for its outcome on the plan board.
        Index("ix_activities_plan_id", "plan_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    external_key: Mapped[str] = mapped_column(String(120), unique=True)
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE")
    )
    rep_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("plans.id"))
    # call, sms, mms, email, chat, meeting, note
    channel: Mapped[str] = mapped_column(String(16))
    # inbound, outbound
    direction: Mapped[str] = mapped_column(String(8))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    summary: Mapped[str] = mapped_column(Text, default="")
    automatic: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    customer: Mapped[Customer | None] = relationship()
    rep: Mapped[User | None] = relationship()
    call: Mapped[Call | None] = relationship(back_populates="activity")
    message: Mapped[Message | None] = relationship(back_populates="activity")
    email: Mapped[Email | None] = relationship(back_populates="activity")


class Call(Base):
    """A phone call (its parent leg); state follows the highest SequenceNumber.

    A call whose child legs arrived before any event of its own is a
    placeholder: `last_sequence` is -1 and its status comes from the legs.
    """

    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(
        ForeignKey("activities.id", ondelete="CASCADE"), unique=True
    )
    call_sid: Mapped[str] = mapped_column(String(64), unique=True)
    parent_call_sid: Mapped[str | None] = mapped_column(String(64), index=True)
    twilio_direction: Mapped[str] = mapped_column(String(16))
    from_party: Mapped[str] = mapped_column(String(320))
    to_party: Mapped[str] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(16))
    last_sequence: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Talk time in seconds, None until the call ends. A call with child legs
    # takes its answer time and talk time from them (capture/calls.py).
    talk_seconds: Mapped[int | None] = mapped_column(Integer)
    # The parent leg's own answer time and CallDuration, kept apart because a
    # child leg that arrives later replaces them in the two columns above.
    own_answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    own_talk_seconds: Mapped[int | None] = mapped_column(Integer)
    # Child legs (`<Dial>` or REST-bridged) stored in `call_legs`.
    leg_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # An inbound call that no rep answered; set by inbound routing.
    missed: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )

    activity: Mapped[Activity] = relationship(back_populates="call")
    legs: Mapped[list[CallLeg]] = relationship(
        back_populates="call", order_by="CallLeg.id", cascade="all, delete-orphan"
    )


class CallLeg(Base):
    """A child leg of a call: the `ParentCallSid` of its status callbacks.

    Its own state follows its own SequenceNumber, like a call's.
    """

    __tablename__ = "call_legs"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(
        ForeignKey("calls.id", ondelete="CASCADE"), index=True
    )
    call_sid: Mapped[str] = mapped_column(String(64), unique=True)
    twilio_direction: Mapped[str] = mapped_column(String(16))
    from_party: Mapped[str] = mapped_column(String(320))
    to_party: Mapped[str] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(16))
    last_sequence: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    talk_seconds: Mapped[int | None] = mapped_column(Integer)

    call: Mapped[Call] = relationship(back_populates="legs")


class CallEvent(Base):
    """One status callback, kept once per (CallSid, SequenceNumber)."""

    __tablename__ = "call_events"
    __table_args__ = (UniqueConstraint("call_sid", "sequence_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    call_sid: Mapped[str] = mapped_column(String(64))
    sequence_number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    call_duration: Mapped[int | None] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Message(Base):
    """An SMS or MMS; its status only moves forward."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(
        ForeignKey("activities.id", ondelete="CASCADE"), unique=True
    )
    message_sid: Mapped[str] = mapped_column(String(64), unique=True)
    from_party: Mapped[str] = mapped_column(String(320))
    to_party: Mapped[str] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(24))
    body: Mapped[str] = mapped_column(Text, default="")
    num_segments: Mapped[int | None] = mapped_column(Integer)
    num_media: Mapped[int] = mapped_column(Integer, default=0)
    messaging_service_sid: Mapped[str | None] = mapped_column(String(64))

    activity: Mapped[Activity] = relationship(back_populates="message")
    media: Mapped[list[MessageMedia]] = relationship(
        order_by="MessageMedia.position", back_populates="message"
    )


class MessageMedia(Base):
    """One media file of an MMS (`MediaUrl{N}`), fetched by a worker job.

    `status` is `pending` until the file is saved, then `stored`; a download
    that fails for good leaves `failed` with the error.
    """

    __tablename__ = "message_media"
    __table_args__ = (UniqueConstraint("message_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE")
    )
    # N of MediaUrl{N}, from 0.
    position: Mapped[int] = mapped_column(Integer)
    media_url: Mapped[str] = mapped_column(Text)
    # MediaContentType{N} as the webhook declared it.
    content_type: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    file_path: Mapped[str | None] = mapped_column(Text)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    message: Mapped[Message] = relationship(back_populates="media")


class Email(Base):
    """An email, stored once per `message_key`, whichever way it arrived.

    `message_key` is the SHA-256 of the Message-ID, or of the content when a
    message has none. `thread_key` is the `message_key` of the thread's first
    email. The addresses of a forward from a rep are the original message's,
    with the rep in `forwarded_by`. Bodies are kept as sent, and HTML is
    sanitised when it is displayed.
    """

    __tablename__ = "emails"

    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(
        ForeignKey("activities.id", ondelete="CASCADE"), unique=True
    )
    message_key: Mapped[str] = mapped_column(String(64), unique=True)
    message_id: Mapped[str] = mapped_column(Text, default="")
    thread_key: Mapped[str] = mapped_column(String(64), index=True)
    # The subject without reply and forward prefixes, lower case, for threading.
    subject_key: Mapped[str] = mapped_column(String(200), index=True)
    subject: Mapped[str] = mapped_column(Text, default="")
    from_address: Mapped[str] = mapped_column(String(320))
    from_name: Mapped[str] = mapped_column(String(300), default="")
    # Comma-separated addresses, lower case.
    to_addresses: Mapped[str] = mapped_column(Text, default="")
    cc_addresses: Mapped[str] = mapped_column(Text, default="")
    text_body: Mapped[str] = mapped_column(Text, default="")
    html_body: Mapped[str] = mapped_column(Text, default="")
    # The text of `html_body` when the email has no text body, else empty;
    # search indexes it with the subject and `text_body`.
    html_text: Mapped[str] = mapped_column(Text, default="")
    # Why the email counts as automatic (auto-submitted, autoreply, bounce,
    # out-of-office, bulk); None for mail a person wrote.
    automatic_reason: Mapped[str | None] = mapped_column(String(32))
    # The rep who forwarded the email to the capture address, if one did.
    forwarded_by: Mapped[str | None] = mapped_column(String(320))
    # smtp, sendgrid, mailgun, postmark or mime.
    source: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    activity: Mapped[Activity] = relationship(back_populates="email")
    attachments: Mapped[list[EmailAttachment]] = relationship(
        back_populates="email",
        cascade="all, delete-orphan",
        order_by="EmailAttachment.position",
    )


class EmailAttachment(Base):
    """A file attached to an email, stored under the data folder by SHA-256."""

    __tablename__ = "email_attachments"
    __table_args__ = (UniqueConstraint("email_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email_id: Mapped[int] = mapped_column(
        ForeignKey("emails.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str] = mapped_column(String(300))
    content_type: Mapped[str] = mapped_column(String(200))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    # Relative to data_dir.
    file_path: Mapped[str] = mapped_column(Text)

    email: Mapped[Email] = relationship(back_populates="attachments")


class MessageEvent(Base):
    __tablename__ = "message_events"
    __table_args__ = (UniqueConstraint("message_sid", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    message_sid: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(24))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Recording(Base):
    """A call recording; `call_sid` is the parent leg that Twilio reports."""

    __tablename__ = "recordings"

    id: Mapped[int] = mapped_column(primary_key=True)
    recording_sid: Mapped[str] = mapped_column(String(64), unique=True)
    call_sid: Mapped[str] = mapped_column(String(64), index=True)
    # in-progress, completed, absent, failed (Twilio's), then stored locally.
    status: Mapped[str] = mapped_column(String(16))
    media_url: Mapped[str] = mapped_column(Text, default="")
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    channels: Mapped[int] = mapped_column(Integer, default=1)
    source: Mapped[str] = mapped_column(String(32), default="")
    file_path: Mapped[str | None] = mapped_column(Text)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RecordingEvent(Base):
    __tablename__ = "recording_events"
    __table_args__ = (UniqueConstraint("recording_sid", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    recording_sid: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Transcript(Base):
    __tablename__ = "transcripts"

    id: Mapped[int] = mapped_column(primary_key=True)
    recording_id: Mapped[int] = mapped_column(
        ForeignKey("recordings.id", ondelete="CASCADE"), unique=True
    )
    engine: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(16), default="")
    duration_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    text: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    segments: Mapped[list[TranscriptSegment]] = relationship(
        order_by="TranscriptSegment.start_ms", cascade="all, delete-orphan"
    )


class TranscriptSegment(Base):
    __tablename__ = "transcript_segments"

    id: Mapped[int] = mapped_column(primary_key=True)
    transcript_id: Mapped[int] = mapped_column(
        ForeignKey("transcripts.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[int] = mapped_column(Integer)
    # rep or customer
    speaker: Mapped[str] = mapped_column(String(16))
    start_ms: Mapped[int] = mapped_column(Integer)
    end_ms: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    confidence: Mapped[float] = mapped_column(Float)


class Deal(Base):
    """An opportunity; won or lost when it closes."""

    __tablename__ = "deals"
    # Reports read the deals won or opened in a period. Each index contains
    # what the KPI page and the per-rep summary read of those deals.
    __table_args__ = (
        Index(
            "ix_deals_won_at",
            "won_at",
            "stage",
            "customer_id",
            "owner_id",
            "currency",
            "signed_minor",
        ),
        Index(
            "ix_deals_created_at",
            "created_at",
            "owner_id",
            "currency",
            "expected_minor",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    title: Mapped[str] = mapped_column(String(300), default="")
    # open, won, lost
    stage: Mapped[str] = mapped_column(String(16), default="open")
    currency: Mapped[str] = mapped_column(String(3))
    expected_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    signed_minor: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    won_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lost_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lost_reason: Mapped[str] = mapped_column(Text, default="")


class Payment(Base):
    __tablename__ = "payments"
    # The per-rep summary sums the payments received in a period per owner.
    __table_args__ = (
        Index(
            "ix_payments_received_at",
            "received_at",
            "deal_id",
            "currency",
            "amount_minor",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    deal_id: Mapped[int] = mapped_column(
        ForeignKey("deals.id", ondelete="CASCADE"), index=True
    )
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Job(Base):
    """A queued unit of slow work (download, transcription).

    A worker claims a job by setting `lease_until`; a job whose lease ran out
    is claimed again. `dedupe_key` keeps a webhook retry from queueing the
    same work twice.
    """

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_run_after", "status", "run_after"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    # queued, running, done, dead
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=8)
    run_after: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    locked_by: Mapped[str | None] = mapped_column(String(200))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CustomerChange(Base):
    """One change of a customer's value calibration or custom field, kept as history."""

    __tablename__ = "customer_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    # A calibration field name, or "field:<key>" for a custom field.
    field: Mapped[str] = mapped_column(String(80))
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Milestone(Base):
    """A moment in a customer's story that a rep marks on the stream."""

    __tablename__ = "milestones"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    title: Mapped[str] = mapped_column(String(200))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CustomField(Base):
    """A customer field that a manager defines for the company's industry."""

    __tablename__ = "custom_fields"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Stable name in the API and exports; the label is what people read.
    key: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(200))
    # text, number, choice or date
    kind: Mapped[str] = mapped_column(String(16))
    # The allowed values of a choice field, as a JSON array of strings.
    choices: Mapped[str] = mapped_column(Text, default="[]")
    required: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CustomFieldValue(Base):
    """A customer's value of a custom field, typed for search and sorting."""

    __tablename__ = "custom_field_values"
    __table_args__ = (
        UniqueConstraint("customer_id", "field_id"),
        Index("ix_custom_field_values_field_text", "field_id", "text_value"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    field_id: Mapped[int] = mapped_column(
        ForeignKey("custom_fields.id", ondelete="CASCADE")
    )
    # Every value as text (what search matches); numbers and dates also typed.
    text_value: Mapped[str] = mapped_column(Text)
    number_value: Mapped[Decimal | None] = mapped_column(Numeric(24, 6))
    date_value: Mapped[date | None] = mapped_column(Date)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RuntimeSetting(Base):
    """A setting an admin changed from the settings page; it overrides the file."""

    __tablename__ = "runtime_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The value as JSON, parsed by the setting's own rules when read.
    value: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# Ledger rows of requests that stored nothing.
PROBLEM_ROWS = "outcome IN ('forbidden', 'invalid', 'failed')"


class WebhookRequest(Base):
    """One request received on a webhook path, kept for operations.

    Only requests that failed to store (and forbidden ones, truncated) keep
    their body and headers, which is what a replay needs.
    """

    __tablename__ = "webhook_requests"
    # Every index costs the webhook path an update per row, so rows of stored
    # events are indexed by time only. An index on random SIDs took about
    # 45 µs per row in SQLite (WAL, 60,000 rows, bench-style batches of 50),
    # five times the rest of the row. The partial indexes cover the rare
    # rows ops look for: problems and replays.
    __table_args__ = (
        Index("ix_webhook_requests_received", "received_at"),
        Index(
            "ix_webhook_requests_problem_sid",
            "sid",
            sqlite_where=text(PROBLEM_ROWS),
            postgresql_where=text(PROBLEM_ROWS),
        ),
        Index(
            "ix_webhook_requests_problems",
            "outcome",
            "id",
            sqlite_where=text(PROBLEM_ROWS),
            postgresql_where=text(PROBLEM_ROWS),
        ),
        Index(
            "ix_webhook_requests_replay_of",
            "replay_of",
            sqlite_where=text("replay_of IS NOT NULL"),
            postgresql_where=text("replay_of IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    path: Mapped[str] = mapped_column(String(200))
    # The raw query string, as received.
    query: Mapped[str] = mapped_column(Text, default="")
    # valid, invalid, missing, or unchecked for a replay or an unsigned path.
    signature: Mapped[str] = mapped_column(String(16))
    # The outcome names of the metrics endpoint: created, updated, stale,
    # duplicate, accepted, forbidden, invalid, failed.
    outcome: Mapped[str] = mapped_column(String(16))
    status_code: Mapped[int] = mapped_column(Integer)
    sid: Mapped[str | None] = mapped_column(String(64))
    # No foreign key: its check would cost every webhook a lookup (a row
    # lock on PostgreSQL), and a ledger row may outlive its touch.
    activity_id: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    # utf-8 or base64: how `body` encodes the bytes received.
    body_encoding: Mapped[str | None] = mapped_column(String(8))
    body: Mapped[str | None] = mapped_column(Text)
    # A JSON object of the headers a replay needs; signatures only as a hash.
    headers: Mapped[str | None] = mapped_column(Text)
    replay_of: Mapped[int | None] = mapped_column(
        ForeignKey("webhook_requests.id", ondelete="SET NULL")
    )


class Tracker(Base):
    """A list of phrases that a manager counts in call transcripts."""

    __tablename__ = "trackers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # The phrases as a JSON array of strings, matched case-insensitively.
    phrases: Mapped[str] = mapped_column(Text, default="[]")
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CallComment(Base):
    """A comment pinned to a moment of a call, or a reply to one.

    A reply keeps the moment of its parent comment.
    """

    __tablename__ = "call_comments"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(
        ForeignKey("calls.id", ondelete="CASCADE"), index=True
    )
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("call_comments.id", ondelete="CASCADE")
    )
    author_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    # Milliseconds from the start of the recording.
    at_ms: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    # The next-step plan that the comment created or changed, if any.
    plan_id: Mapped[int | None] = mapped_column(
        ForeignKey("plans.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    author: Mapped[User | None] = relationship()


class CommentMention(Base):
    """A user named with @ in a call comment."""

    __tablename__ = "comment_mentions"
    __table_args__ = (UniqueConstraint("comment_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    comment_id: Mapped[int] = mapped_column(
        ForeignKey("call_comments.id", ondelete="CASCADE")
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )


class CallReview(Base):
    """A manager's score (1 to 5) and note for a call; one per reviewer."""

    __tablename__ = "call_reviews"
    __table_args__ = (UniqueConstraint("call_id", "reviewer_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    score: Mapped[int] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(Text, default="")
    reviewed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TouchDay(Base):
    """Touches of one rep on one day, kept up to date as touches arrive.

    `day` is a calendar day in the organisation's time zone. Reports read
    these rows instead of scanning the touches; `capture.rollups` rewrites
    the rows of every (rep, day) that a write changed.
    """

    __tablename__ = "touch_days"
    # Reports read one period of days for every rep.
    __table_args__ = (Index("ix_touch_days_day", "day"),)

    rep_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    direction: Mapped[str] = mapped_column(String(8), primary_key=True)
    touches: Mapped[int] = mapped_column(Integer)
    # Calls with talk time above zero, and their summed talk time in seconds.
    answered: Mapped[int] = mapped_column(Integer)
    talk_seconds: Mapped[int] = mapped_column(BigInteger)


class TouchMonth(Base):
    """Touches of one rep in one calendar month, in the per-rep summary's terms.

    `month` is the first day of a calendar month in the organisation's time
    zone. Each row contains the month's touches split as the summary shows
    them (see `capture.rollups.MONTH_COLUMNS`), so a month of the summary
    reads one row per rep. `capture.rollups` adds every change to both
    tables.
    """

    __tablename__ = "touch_months"
    __table_args__ = (Index("ix_touch_months_month", "month"),)

    rep_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    # Every touch. A touch not counted in one of the six columns after it is
    # an other touch.
    touches: Mapped[int] = mapped_column(Integer)
    calls_made: Mapped[int] = mapped_column(Integer)
    calls_received: Mapped[int] = mapped_column(Integer)
    sms_sent: Mapped[int] = mapped_column(Integer)
    sms_received: Mapped[int] = mapped_column(Integer)
    emails_sent: Mapped[int] = mapped_column(Integer)
    emails_received: Mapped[int] = mapped_column(Integer)
    answered: Mapped[int] = mapped_column(Integer)
    talk_seconds: Mapped[int] = mapped_column(BigInteger)


class CustomerFirst(Base):
    """A customer's first touch and first won deal, kept for the KPI page.

    `capture.rollups` recomputes the row of every customer whose touches or
    won deals a transaction changed. `touches_to_win` counts the touches
    (automatic email excluded) up to and including the first win's moment.
    `cycle_days` is the calendar days from the first touch to the first win
    in the organisation's time zone, set only when `touches_to_win` is above
    zero. Two deals won at the same first moment count as the lower id.
    `second_won_at` is the earliest win later than the first one: a customer
    first won in a period repeats in it when `second_won_at` is in it too.
    """

    __tablename__ = "customer_firsts"
    # The KPI page reads one period of first wins. The index contains every
    # column it reads, so that read never visits the table.
    __table_args__ = (
        Index(
            "ix_customer_firsts_won",
            "first_won_at",
            "created_at",
            "cycle_days",
            "touches_to_win",
            "currency",
            "signed_minor",
            "second_won_at",
        ),
    )

    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    # The customer's own creation time, copied for the conversion rate.
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_touch_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_won_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_deal_id: Mapped[int | None] = mapped_column(Integer)
    currency: Mapped[str | None] = mapped_column(String(3))
    signed_minor: Mapped[int | None] = mapped_column(BigInteger)
    touches_to_win: Mapped[int | None] = mapped_column(Integer)
    cycle_days: Mapped[int | None] = mapped_column(Integer)
    second_won_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ExportSchedule(Base):
    """An export that runs by itself daily or weekly, to a folder or by email."""

    __tablename__ = "export_schedules"
    __table_args__ = (Index("ix_export_schedules_next_run", "next_run_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # activities, calls, summary or kpis; csv or xlsx
    report: Mapped[str] = mapped_column(String(16))
    format: Mapped[str] = mapped_column(String(8))
    # daily or weekly
    frequency: Mapped[str] = mapped_column(String(8))
    # folder: a folder path under the export folder; email: an address.
    destination: Mapped[str] = mapped_column(String(8))
    target: Mapped[str] = mapped_column(String(320))
    team_id: Mapped[int | None] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE")
    )
    # Narrows activities and calls to one rep's touches.
    rep_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE")
    )
    # Local time of day (HH:MM, organisation time zone) and, when weekly,
    # the day of the week (0 is Monday).
    run_time: Mapped[str] = mapped_column(String(5), default="01:00")
    weekday: Mapped[int] = mapped_column(Integer, default=0)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    # The export sees what this user may see.
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    next_run_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
