"""Call and message plans: who calls or texts whom, outcomes and delivery order."""

import random
import secrets
import struct
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from capture.demo_data import CUSTOMERS
from telephony.simulate.options import WITHHELD_NUMBER, SimulationOptions
from telephony.speech import Conversation, plan_conversation

UNANSWERED_FRACTION = 0.3
OUT_OF_ORDER_FRACTION = 0.25
REPEATED_FRACTION = 0.25
MESSAGING_SERVICE_FRACTION = 1 / 3

INBOUND_SMS_BODIES = (
    "Thanks for the call 👍 Send the contract over when it's ready.",
    "请把新的报价单发给我们，谢谢。",
    "Can we move the demo to Thursday at 3pm?",
    "Got the invoice, finance will pay it this week.",
    "Is the renewal price locked for 12 months?",
    "Running late, call you back in 10 min",
)

MMS_BODIES = (
    "Photo of the loading dock for Thursday's delivery 📦",
    "这是我们的新名片，请查收。",
)


@dataclass
class CallPlan:
    caller_kind: str  # customer, unknown or withheld
    direction: str  # inbound or outbound
    rep_email: str
    rep_phone: str
    customer_phone: str
    call_sid: str  # the sid the server stores: the child leg for inbound calls
    parent_call_sid: str | None
    final_status: str  # completed, no-answer or busy
    ring_seconds: int
    started_at: datetime
    delivery_order: tuple[int, ...]  # event indices as sent, a repeat is a retry
    recording_status: str | None  # completed, absent or None
    recording_sid: str | None
    conversation: Conversation | None
    talk_seconds: int = 0

    @property
    def answered(self) -> bool:
        return self.final_status == "completed"

    @property
    def recording_call_sid(self) -> str:
        return self.parent_call_sid or self.call_sid


@dataclass(frozen=True)
class MediaFile:
    """A file attached to a simulated MMS, served by the media server."""

    media_sid: str
    content_type: str
    body: bytes


@dataclass(frozen=True)
class MessagePlan:
    direction: str  # inbound or outbound
    message_sid: str
    rep_email: str
    customer_phone: str
    body: str | None  # None for outbound, because status callbacks carry no body
    messaging_service_sid: str | None
    delivery_order: tuple[int, ...]  # indices into OUTBOUND_SMS_STATUSES
    media: tuple[MediaFile, ...] = ()  # MMS attachments of an inbound message


OUTBOUND_SMS_STATUSES = ("queued", "sent", "delivered")


def customer_owners(options: SimulationOptions) -> dict[str, tuple[str, str]]:
    """Map each customer phone to its owning rep's (email, phone).

    A customer known to the demo data goes to its `owner_email` when that rep is
    in `options.reps`. Any other customer goes to the reps in turn.
    """
    rep_by_email = dict(options.reps)
    demo_owner = {customer.phone: customer.owner_email for customer in CUSTOMERS}
    owners = {}
    for index, phone in enumerate(options.customers):
        email = demo_owner.get(phone)
        if email not in rep_by_email:
            email = options.reps[index % len(options.reps)][0]
        owners[phone] = (email, rep_by_email[email])
    return owners


def plan_calls(options: SimulationOptions, rng: random.Random) -> list[CallPlan]:
    """Plan every call: caller, rep, outcome, delivery order and recording.

    About 30% go unanswered. About a quarter, and at least one, arrive with two
    events swapped, and as many repeat one event. Talk seconds of calls with a
    completed recording stay 0 until the audio is synthesised.
    """
    count = options.calls
    kinds = ["withheld"] * options.withheld_callers + ["unknown"] * (
        options.unknown_callers
    )
    kinds += ["customer"] * (count - len(kinds))
    rng.shuffle(kinds)
    unanswered = _sample(rng, count, round(count * UNANSWERED_FRACTION))
    shuffled = _sample(rng, count, _at_least_one(count, OUT_OF_ORDER_FRACTION))
    repeated = _sample(rng, count, _at_least_one(count, REPEATED_FRACTION))
    owners = customer_owners(options)

    plans = []
    for index, kind in enumerate(kinds):
        plan = _plan_call(options, rng, owners, kind, index not in unanswered)
        plan.delivery_order = _delivery_order(
            rng, 4 if plan.answered else 3, index in shuffled, index in repeated
        )
        plans.append(plan)
    _assign_recordings(options, rng, plans)
    return plans


def _plan_call(
    options: SimulationOptions,
    rng: random.Random,
    owners: dict[str, tuple[str, str]],
    kind: str,
    answered: bool,
) -> CallPlan:
    if kind == "customer":
        customer_phone = rng.choice(options.customers)
        rep_email, rep_phone = owners[customer_phone]
        direction = rng.choice(("inbound", "outbound"))
    else:
        # Strangers only ever call in; the company number forwards to any rep.
        customer_phone = (
            WITHHELD_NUMBER if kind == "withheld" else _unknown_number(rng, options)
        )
        rep_email, rep_phone = rng.choice(options.reps)
        direction = "inbound"

    final_status = "completed" if answered else rng.choice(("no-answer", "busy"))
    ring_seconds = rng.randint(3, 12) if answered else rng.randint(2, 30)
    age_s = rng.uniform(600, options.history_hours * 3600)
    inbound = direction == "inbound"
    return CallPlan(
        caller_kind=kind,
        direction=direction,
        rep_email=rep_email,
        rep_phone=rep_phone,
        customer_phone=customer_phone,
        call_sid=_new_sid("CA"),
        parent_call_sid=_new_sid("CA") if inbound else None,
        final_status=final_status,
        ring_seconds=ring_seconds,
        started_at=datetime.now(UTC) - timedelta(seconds=age_s),
        delivery_order=(),
        recording_status=None,
        recording_sid=None,
        conversation=None,
    )


def _assign_recordings(
    options: SimulationOptions, rng: random.Random, plans: list[CallPlan]
) -> None:
    answered = [plan for plan in plans if plan.answered]
    absent_count = len(answered) // options.absent_every if options.absent_every else 0
    absent = _sample(rng, len(answered), absent_count)
    for index, plan in enumerate(answered):
        plan.recording_sid = _new_sid("RE")
        if index in absent:
            plan.recording_status = "absent"
            plan.talk_seconds = rng.randint(4, 40)
        else:
            plan.recording_status = "completed"
            plan.conversation = plan_conversation(rng)


def plan_messages(options: SimulationOptions, rng: random.Random) -> list[MessagePlan]:
    """Plan inbound and outbound messages, half each (inbound gets the odd one).

    The first two inbound bodies are the emoji and the Chinese message.
    """
    count = options.sms
    inbound_count = (count + 1) // 2
    outbound_count = count - inbound_count
    directions = ["inbound"] * inbound_count + ["outbound"] * outbound_count
    rng.shuffle(directions)
    bodies = list(INBOUND_SMS_BODIES[:2])
    bodies += [rng.choice(INBOUND_SMS_BODIES) for _ in range(inbound_count)]
    orders = _outbound_sms_orders(rng, outbound_count)
    owners = customer_owners(options)
    service_sid = "MG" + rng.randbytes(16).hex()

    plans = []
    for direction in directions:
        customer_phone = rng.choice(options.customers)
        use_service = rng.random() < MESSAGING_SERVICE_FRACTION
        inbound = direction == "inbound"
        plans.append(
            MessagePlan(
                direction=direction,
                message_sid=_new_sid("SM"),
                rep_email=owners[customer_phone][0],
                customer_phone=customer_phone,
                body=bodies.pop(0) if inbound else None,
                messaging_service_sid=service_sid if use_service else None,
                delivery_order=() if inbound else orders.pop(),
            )
        )
    return plans


def plan_mms(options: SimulationOptions) -> list[MessagePlan]:
    """Plan inbound MMS: each has a PNG picture, every second one a vCard too.

    The plans take nothing from the random generator, so adding MMS leaves
    the calls and SMS of a seed as they were.
    """
    owners = customer_owners(options)
    plans = []
    for index in range(options.mms):
        customer_phone = options.customers[index % len(options.customers)]
        media = [MediaFile(_new_sid("ME"), "image/png", solid_png(index))]
        if index % 2 == 1:
            card = f"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Contact {index}\r\nEND:VCARD\r\n"
            media.append(MediaFile(_new_sid("ME"), "text/vcard", card.encode()))
        plans.append(
            MessagePlan(
                direction="inbound",
                message_sid=_new_sid("MM"),
                rep_email=owners[customer_phone][0],
                customer_phone=customer_phone,
                body=MMS_BODIES[index % len(MMS_BODIES)],
                messaging_service_sid=None,
                delivery_order=(),
                media=tuple(media),
            )
        )
    return plans


def solid_png(seed: int, size: int = 8) -> bytes:
    """Return a PNG image of one colour, `size` pixels square."""
    colour = bytes(((seed * 70) % 256, (seed * 130 + 90) % 256, 200))
    rows = b"".join(b"\x00" + colour * size for _ in range(size))
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return PNG_SIGNATURE + b"".join(
        _png_chunk(kind, data)
        for kind, data in (
            (b"IHDR", header),
            (b"IDAT", zlib.compress(rows)),
            (b"IEND", b""),
        )
    )


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    checksum = zlib.crc32(kind + data)
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", checksum)


def _outbound_sms_orders(rng: random.Random, count: int) -> list[tuple[int, ...]]:
    shuffled = _sample(rng, count, _at_least_one(count, OUT_OF_ORDER_FRACTION))
    repeated = _sample(rng, count, _at_least_one(count, REPEATED_FRACTION))
    statuses = len(OUTBOUND_SMS_STATUSES)
    return [
        _delivery_order(rng, statuses, index in shuffled, index in repeated)
        for index in range(count)
    ]


def _delivery_order(
    rng: random.Random, count: int, shuffle: bool, repeat: bool
) -> tuple[int, ...]:
    """Return event indices in sending order, with one pair swapped and one
    event sent twice when asked."""
    order = list(range(count))
    if shuffle:
        position = rng.randrange(count - 1)
        order[position], order[position + 1] = order[position + 1], order[position]
    if repeat:
        position = rng.randrange(count)
        order.insert(position + 1, order[position])
    return tuple(order)


def _sample(rng: random.Random, population: int, count: int) -> set[int]:
    return set(rng.sample(range(population), min(count, population)))


def _at_least_one(population: int, fraction: float) -> int:
    return max(1, round(population * fraction)) if population else 0


def _unknown_number(rng: random.Random, options: SimulationOptions) -> str:
    known = {options.company_number, *options.customers}
    known.update(phone for _, phone in options.reps)
    while True:
        # 555-0100..0199 is reserved for fiction in every North American area code.
        area = rng.choice(("212", "312", "646", "718"))
        number = f"+1{area}55501{rng.randrange(100):02d}"
        if number not in known:
            return number


def _new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)
