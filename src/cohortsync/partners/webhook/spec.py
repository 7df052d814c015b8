"""The webhook's spec: its credentials and settings (from which its Connect dialog and checks
are generated), and where each of its parts lives."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, SecretStr

from cohortsync.partners.fields import (
    ExportProperties,
    Form,
    PartnerCredentials,
    PartnerSettings,
    http_url,
)
from cohortsync.partners.spec import Contract, Emulator, PartnerSpec
from cohortsync.partners.webhook.destination import CAPABILITIES, WebhookDestination
from cohortsync.partners.webhook.emulator import WebhookSandbox, create_app

BASIC_AUTH_HINT = "Optional: HTTP Basic auth of your endpoint."


class WebhookCredentials(PartnerCredentials):
    """HTTP Basic auth of the endpoint, where it has one."""

    username: Annotated[SecretStr | None, Form("Username", BASIC_AUTH_HINT)] = None
    password: Annotated[SecretStr | None, Form("Password", BASIC_AUTH_HINT)] = None


class WebhookSettings(PartnerSettings):
    """Where the members go, and the columns sent; lists are named after the cohort."""

    list_name_template: str = "{cohort_name}"
    url: Annotated[
        str,
        Form("Webhook URL", "Where the members of each cohort are sent.", leading=True),
        BeforeValidator(http_url),
    ]
    export_properties: ExportProperties = None


SPEC = PartnerSpec(
    type="webhook",
    title="Webhook",
    credentials=WebhookCredentials,
    settings=WebhookSettings,
    capabilities=CAPABILITIES,
    build=WebhookDestination,
    emulator=Emulator(WebhookSandbox, create_app, path="/cohorts", url_setting="url"),
    contract=Contract("bad credentials", rejects_members=False),
)
