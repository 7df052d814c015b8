"""Which integration types send events back, and the format of each (as each partner's spec in
``cohortsync.partners.registry`` declares it)."""

from __future__ import annotations

from collections.abc import Mapping

from cohortsync.domain.errors import NotFound
from cohortsync.ingest.partners.base import PartnerFormat
from cohortsync.partners.registry import Parts

FORMATS: Mapping[str, PartnerFormat] = Parts(lambda spec: spec.events)


def sends_events(integration_type: str) -> bool:
    """Whether integrations of this type have a webhook for partner events."""
    return integration_type in FORMATS


def generates_key(integration_type: str) -> bool:
    """Whether this partner makes its signing key itself (an admin pastes it in)."""
    found = FORMATS.get(integration_type)
    return found is not None and found.generates_key


def partner_format(integration_type: str) -> PartnerFormat:
    """The format of this integration type's events, or NotFound."""
    found = FORMATS.get(integration_type)
    if found is None:
        raise NotFound(f"{integration_type} integrations do not send events back")
    return found
