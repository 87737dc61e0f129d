"""Typed keys for everything stored on the aiohttp application."""

from __future__ import annotations

import asyncio

from aiohttp import web

from capture.access import Viewer
from capture.db import Database
from capture.email_intake import EmailIntake
from capture.models import User
from capture.settings import Settings
from capture.worker import Worker
from capture.writer import BatchWriter
from telephony.rest import TwilioCalls
from telephony.webhooks import TwilioWebhooks

SETTINGS = web.AppKey("settings", Settings)
DATABASE = web.AppKey("database", Database)
WRITER = web.AppKey("writer", BatchWriter)
WORKER = web.AppKey("worker", Worker)
WEBHOOKS = web.AppKey("webhooks", TwilioWebhooks)
TWILIO_CALLS = web.AppKey("twilio_calls", TwilioCalls)
EMAIL_INTAKE = web.AppKey("email_intake", EmailIntake)
SMTP_SERVER = web.AppKey("smtp_server", asyncio.Server)

# The logged-in user of a request and their access scope, set by the auth
# middleware.
USER = web.RequestKey("user", User)
VIEWER = web.RequestKey("viewer", Viewer)
