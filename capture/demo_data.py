"""The demo company: reps, Twilio numbers and customers.

`touchline demo` loads these rows and `touchline simulate` calls and texts
these numbers by default, so a simulation against a demo server lands on
known reps and customers.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class DemoRep:
    email: str
    name: str
    phone: str
    team: str
    client_identity: str | None = None


@dataclass(frozen=True)
class DemoCustomer:
    name: str
    phone: str
    email: str
    owner_email: str


ORGANISATION_NUMBER = "+14155550100"
# Every demo user logs in with this password when the demo is loaded by
# `touchline demo` or `touchline serve --demo`; never use it elsewhere.
DEMO_PASSWORD = "demo-password"

# Users who are not reps: (email, name, role, team).
STAFF = (
    ("mia@demo.touchline.test", "Mia Manager", "manager", "West"),
    ("omar@demo.touchline.test", "Omar Ops", "ops", None),
    ("ada@demo.touchline.test", "Ada Admin", "admin", None),
)

REPS = (
    DemoRep("ana@demo.touchline.test", "Ana Ruiz", "+14155550111", "West"),
    DemoRep("ben@demo.touchline.test", "Ben Okafor", "+14155550112", "West"),
    DemoRep(
        "chen@demo.touchline.test",
        "Chen Wei",
        "+14155550113",
        "East",
        client_identity="chen",
    ),
)

CUSTOMERS = (
    DemoCustomer(
        "Harbor Freight Co", "+14155550201", "ops@harbor.example", REPS[0].email
    ),
    DemoCustomer("Lumen Dental", "+14155550202", "desk@lumen.example", REPS[0].email),
    DemoCustomer(
        "Northwind Bakery", "+14155550203", "orders@northwind.example", REPS[1].email
    ),
    DemoCustomer("Quarry Labs", "+14155550204", "hello@quarry.example", REPS[1].email),
    DemoCustomer(
        "Riverside Clinic", "+14155550205", "admin@riverside.example", REPS[2].email
    ),
    DemoCustomer(
        "Summit Outfitters", "+14155550206", "buy@summit.example", REPS[2].email
    ),
)
