"""TwiML for inbound routing and the click-to-call bridge, built with VoiceResponse.

Every `<Dial>` records both parties in two channels from the answer and
sends the status of each dialled leg and of the recording to Touchline, so
the call, its legs and its recording arrive as the usual webhooks.
"""

from __future__ import annotations

from urllib.parse import urlencode

from twilio.twiml.voice_response import Dial, VoiceResponse

from capture.routing import Target
from capture.settings import Settings

STATUS_PATH = "/twilio/voice/status"
RECORDING_PATH = "/twilio/voice/recording"
NEXT_PATH = "/twilio/voice/inbound/next"
DONE_PATH = "/twilio/voice/inbound/done"
BRIDGE_PATH = "/twilio/voice/bridge"
LEG_EVENTS = "initiated ringing answered completed"
RECORDING_EVENTS = "in-progress completed absent"
# Maximum voicemail length, in seconds.
VOICEMAIL_SECONDS = 300


class Twiml:
    """Builds the TwiML documents of one service, with its public URLs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def url(self, path: str, **query: str | int) -> str:
        suffix = f"?{urlencode(query)}" if query else ""
        return f"{self.settings.public_url}{path}{suffix}"

    def ring(self, target: Target, next_stage: int, *, disclose: bool) -> str:
        """Ring one rep; the Dial's action asks for `next_stage` if they miss it."""
        response = self._start(disclose)
        dial = self._dial(response, action=self.url(NEXT_PATH, stage=next_stage))
        if target.number:
            dial.number(target.number, **self._leg_callbacks())
        if target.client:
            dial.client(target.client, **self._leg_callbacks())
        return str(response)

    def fallback(self, number: str, next_stage: int, *, disclose: bool) -> str:
        """Dial the configured fallback number, then `next_stage` if unanswered."""
        response = self._start(disclose)
        dial = self._dial(response, action=self.url(NEXT_PATH, stage=next_stage))
        dial.number(number, **self._leg_callbacks())
        return str(response)

    def voicemail(self, *, disclose: bool) -> str:
        """Record the caller's message; the recording arrives as a callback."""
        response = self._start(disclose)
        if self.settings.voicemail_prompt:
            response.say(self.settings.voicemail_prompt)
        response.record(
            action=self.url(DONE_PATH),
            method="POST",
            max_length=VOICEMAIL_SECONDS,
            play_beep=True,
            recording_status_callback=self.url(RECORDING_PATH),
            recording_status_callback_method="POST",
            recording_status_callback_event=RECORDING_EVENTS,
        )
        response.hangup()
        return str(response)

    def bridge(self, customer_number: str, caller_id: str) -> str:
        """Connect a click-to-call rep, who answered, to the customer.

        The REST request records the call, so this `<Dial>` does not record
        a second time.
        """
        response = self._start(disclose=True)
        dial = response.dial(caller_id=caller_id, timeout=self.settings.ring_seconds)
        dial.number(customer_number, **self._leg_callbacks())
        return str(response)

    def hangup(self) -> str:
        response = VoiceResponse()
        response.hangup()
        return str(response)

    def _start(self, disclose: bool) -> VoiceResponse:
        response = VoiceResponse()
        if disclose and self.settings.recording_disclosure:
            response.say(self.settings.recording_disclosure)
        return response

    def _dial(self, response: VoiceResponse, action: str) -> Dial:
        return response.dial(
            action=action,
            method="POST",
            timeout=self.settings.ring_seconds,
            answer_on_bridge=True,
            record="record-from-answer-dual",
            recording_status_callback=self.url(RECORDING_PATH),
            recording_status_callback_method="POST",
            recording_status_callback_event=RECORDING_EVENTS,
        )

    def _leg_callbacks(self) -> dict[str, str]:
        return {
            "status_callback": self.url(STATUS_PATH),
            "status_callback_method": "POST",
            "status_callback_event": LEG_EVENTS,
        }
