"""The TwiML requests of a simulated call: inbound routing and the click-to-call bridge.

An inbound call first asks `/twilio/voice/inbound` what to do, as Twilio
does when a call comes in. An unanswered call then follows each `<Dial
action>` stage with the plan's `DialCallStatus` until the TwiML rings
nobody more (voicemail). An answered one reports `completed` once. An
outbound call asks `/twilio/voice/bridge` for the `<Dial>` that connects
the customer, as Twilio does when the rep answers a click-to-call.
telephony/simulate/click_to_call.py plays a whole click-to-call, from the
service's REST request to Twilio's API on.
"""

from __future__ import annotations

import urllib.parse
import uuid
import xml.etree.ElementTree as ElementTree
from typing import TYPE_CHECKING

from telephony.simulate.options import SimulationOptions
from telephony.simulate.plan import CallPlan

if TYPE_CHECKING:
    from telephony.simulate.run import _Run

INBOUND_PATH = "/twilio/voice/inbound"
NEXT_PATH = "/twilio/voice/inbound/next"
BRIDGE_PATH = "/twilio/voice/bridge"
# Stages followed at most for one call, should a server never stop dialling.
MAX_STAGES = 10


def routing_params(
    options: SimulationOptions, plan: CallPlan, call_sid: str, **extra: str
) -> dict[str, str]:
    """Return the parameters of a TwiML request on the call's parent leg."""
    inbound = plan.direction == "inbound"
    caller = plan.customer_phone if inbound else options.company_number
    called = options.company_number if inbound else plan.rep_phone
    return {
        "AccountSid": options.account_sid,
        "ApiVersion": "2010-04-01",
        "CallSid": call_sid,
        "CallStatus": "ringing" if inbound else "in-progress",
        "Direction": "inbound" if inbound else "outbound-api",
        "From": caller,
        "To": called,
        "Caller": caller,
        "Called": called,
        **extra,
    }


async def route_call(run: _Run, plan: CallPlan) -> list[str]:
    """Send the call's TwiML requests; return what each answer did, in order."""
    if plan.direction == "inbound":
        return await _route_inbound(run, plan)
    return await _bridge(run, plan)


async def _route_inbound(run: _Run, plan: CallPlan) -> list[str]:
    assert plan.parent_call_sid is not None
    sid = plan.parent_call_sid
    params = routing_params(run.options, plan, sid)
    accepted, body = await run.sender.exchange(
        INBOUND_PATH, params, str(uuid.uuid4()), sid, "inbound"
    )
    steps = [describe_twiml(body) if accepted else "failed"]
    dial_status = "completed" if plan.answered else plan.final_status
    stage = 1
    while accepted and steps[-1].startswith("dial") and stage <= MAX_STAGES:
        params = routing_params(
            run.options,
            plan,
            sid,
            CallStatus="in-progress",
            DialCallStatus=dial_status,
        )
        accepted, body = await run.sender.exchange(
            f"{NEXT_PATH}?stage={stage}", params, str(uuid.uuid4()), sid, dial_status
        )
        steps.append(describe_twiml(body) if accepted else "failed")
        if plan.answered:
            break
        stage += 1
    return steps


async def _bridge(run: _Run, plan: CallPlan) -> list[str]:
    query = urllib.parse.urlencode({"to": plan.customer_phone})
    params = routing_params(run.options, plan, plan.call_sid)
    accepted, body = await run.sender.exchange(
        f"{BRIDGE_PATH}?{query}", params, str(uuid.uuid4()), plan.call_sid, "bridge"
    )
    return [describe_twiml(body) if accepted else "failed"]


def describe_twiml(body: str) -> str:
    """Summarise a TwiML answer: `dial` and whom, `voicemail`, `hangup` or `empty`."""
    try:
        document = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        return "invalid TwiML"
    dial = document.find("Dial")
    if dial is not None:
        parties = [(noun.text or "").strip() for noun in dial]
        return " ".join(["dial", *parties])
    if document.find("Record") is not None:
        return "voicemail"
    if document.find("Hangup") is not None:
        return "hangup"
    return "empty"
