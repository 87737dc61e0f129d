"""`touchline simulate`: act as Twilio against a running Touchline server.

The simulator sends signed webhooks shaped like Twilio's and serves the call
recordings from its own media server, as Twilio would:

- `POST {url}/twilio/voice/status`: call status callbacks. An inbound call is the
  child leg of a `<Dial>` from the company number: `Direction=outbound-dial`,
  `ParentCallSid` set, `From` the customer and `To` the rep's phone. An outbound
  call is `Direction=outbound-api` with `From` the rep's phone and `To` the
  customer.
- `POST {url}/twilio/voice/inbound`, then `/twilio/voice/inbound/next?stage=N`:
  the TwiML requests of an inbound call, before its status callbacks. An
  unanswered call follows each stage until the TwiML rings nobody more.
- `POST {url}/twilio/voice/bridge?to=<customer>`: the TwiML request of an
  outbound call, as Twilio makes it when the rep answers a click-to-call.
- `POST {url}/twilio/voice/recording`: recording status callbacks, `CallSid` is the
  parent leg for inbound calls and the call itself for outbound calls.
- `POST {url}/twilio/sms`: inbound messages from customers to the company number.
- `POST {url}/twilio/sms/status?rep=<email>`: outbound message status callbacks.
  The query string names the sending rep and is part of the signed URL.

With a rep's API token it also plays click-to-calls (click_to_call.py): it
serves a stand-in for Twilio's Calls API on 127.0.0.1 (twilio_api.py), asks
the service for a call through `POST {url}/api/v1/calls`, checks the REST
request the service sent to the stand-in, sends the bridge request and the
callbacks of the call it created, and checks the customer's stream.

The seed fixes the scenario: who calls whom, outcomes, spoken sentences and
delivery order. Sids and idempotency tokens are new on every run, so repeated
runs against one server add new activity.
"""

from telephony.simulate.cli import add_arguments, loopback_port, main_from_args
from telephony.simulate.options import (
    DEFAULT_ACCOUNT_SID,
    WITHHELD_NUMBER,
    SimulationOptions,
)
from telephony.simulate.params import (
    RECORDING_STATUS_PATH,
    SMS_PATH,
    SMS_STATUS_PATH,
    VOICE_STATUS_PATH,
    count_sms_segments,
)
from telephony.simulate.plan import customer_owners
from telephony.simulate.report import SimulationReport, format_summary
from telephony.simulate.run import run_simulation

__all__ = [
    "DEFAULT_ACCOUNT_SID",
    "RECORDING_STATUS_PATH",
    "SMS_PATH",
    "SMS_STATUS_PATH",
    "VOICE_STATUS_PATH",
    "WITHHELD_NUMBER",
    "SimulationOptions",
    "SimulationReport",
    "add_arguments",
    "count_sms_segments",
    "customer_owners",
    "format_summary",
    "loopback_port",
    "main_from_args",
    "run_simulation",
]
