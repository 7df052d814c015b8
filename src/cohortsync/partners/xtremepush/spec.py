"""Xtremepush's spec: its credentials and settings (from which its Connect dialog and checks are
generated), and where each of its parts lives."""

from __future__ import annotations

from typing import Annotated

from pydantic import SecretStr

from cohortsync.partners.fields import Form, PartnerCredentials, PartnerSettings
from cohortsync.partners.spec import Contract, Emulator, PartnerSpec
from cohortsync.partners.xtremepush.destination import CAPABILITIES, XtremepushDestination
from cohortsync.partners.xtremepush.emulator import XtremepushSandbox, create_app
from cohortsync.partners.xtremepush.events import XtremepushFormat
from cohortsync.partners.xtremepush.outreach import OUTREACH

HOSTS = {"eu": "https://external-api.xtremepush.com", "us": "https://api.us.xtremepush.com"}


class XtremepushCredentials(PartnerCredentials):
    """The app token of the External API."""

    app_token: Annotated[
        SecretStr, Form("App token", "Settings → Integrations → External API in Xtremepush.")
    ]


class XtremepushSettings(PartnerSettings):
    """The data center of the app; lists are named after the cohort."""

    region: Annotated[str, Form("Region", choices=HOSTS)] = "eu"
    list_name_template: str = "{cohort_name}"


SPEC = PartnerSpec(
    type="xtremepush",
    title="Xtremepush",
    credentials=XtremepushCredentials,
    settings=XtremepushSettings,
    capabilities=CAPABILITIES,
    build=XtremepushDestination,
    events=XtremepushFormat(),
    outreach=OUTREACH,
    emulator=Emulator(XtremepushSandbox, create_app),
    contract=Contract("Authentication failed"),
)
