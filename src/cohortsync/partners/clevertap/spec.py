"""CleverTap's spec: its credentials and settings (from which its Connect dialog and checks are
generated), and where each of its parts lives."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, SecretStr

from cohortsync.partners.clevertap.destination import CAPABILITIES, CleverTapDestination
from cohortsync.partners.clevertap.emulator import CleverTapSandbox, create_app
from cohortsync.partners.clevertap.events import CleverTapFormat
from cohortsync.partners.clevertap.outreach import OUTREACH
from cohortsync.partners.fields import (
    ExportProperties,
    Form,
    PartnerCredentials,
    PartnerSettings,
    email_address,
    plain_text,
)
from cohortsync.partners.spec import Contract, Emulator, PartnerSpec

REGIONS = {
    "eu1": "https://api.clevertap.com",
    "in1": "https://in1.api.clevertap.com",
    "sg1": "https://sg1.api.clevertap.com",
    "us1": "https://us1.api.clevertap.com",
    "aps3": "https://aps3.api.clevertap.com",
    "mec1": "https://mec1.api.clevertap.com",
}


class CleverTapCredentials(PartnerCredentials):
    """The project's id and passcode."""

    account_id: Annotated[SecretStr, Form("Project ID", "Settings → Project in CleverTap.")]
    passcode: Annotated[SecretStr, Form("Passcode", "Settings → Passcode in CleverTap.")]


class CleverTapSettings(PartnerSettings):
    """The data center, the columns sent, and how the segments name their creator."""

    region: Annotated[str, Form("Data center", choices=REGIONS)] = "eu1"
    export_properties: ExportProperties = None
    connector_name: Annotated[
        str | None,
        Form("Connector name", "How this connection is named in CleverTap.", leading=True),
        BeforeValidator(plain_text),
    ] = None
    segment_email: Annotated[
        str | None,
        Form(
            "Segment owner's email",
            "Optional: the CleverTap user named as the creator of each cohort's segment.",
        ),
        BeforeValidator(email_address),
    ] = None


SPEC = PartnerSpec(
    type="clevertap",
    title="CleverTap",
    credentials=CleverTapCredentials,
    settings=CleverTapSettings,
    capabilities=CAPABILITIES,
    build=CleverTapDestination,
    events=CleverTapFormat(),
    outreach=OUTREACH,
    emulator=Emulator(CleverTapSandbox, create_app),
    contract=Contract("Account ID is not valid"),
)
