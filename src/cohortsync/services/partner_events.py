"""Partner events in (R-EVT-1, R-EVT-2): a webhook call authenticated against its integration's
secret, its events normalised by the partner's format and stored, attributed to their users."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy.engine import Engine

from cohortsync.clock import Clock, now_ms
from cohortsync.domain.errors import (
    AuthenticationError,
    BatchError,
    Conflict,
    NotFound,
    RecordError,
)
from cohortsync.domain.integrations import IntegrationStatus
from cohortsync.ingest.body import gunzip
from cohortsync.ingest.partner_events import (
    DEFAULT_REPLAY_WINDOW,
    PartnerEventStore,
    check_partner_event,
)
from cohortsync.ingest.partners.base import PartnerEvent, PartnerFormat, WebhookRequest
from cohortsync.ingest.partners.registry import partner_format
from cohortsync.ingest.results import FailedRecord
from cohortsync.keyring import Keyring
from cohortsync.services import webhook_secrets
from cohortsync.storage.database import read_transaction
from cohortsync.storage.integration_store import IntegrationStore
from cohortsync.ttl_cache import TtlCache


@dataclass
class WebhookResult:
    """What one webhook call stored, and what it could not."""

    source: str
    received: int = 0
    failed: list[FailedRecord] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The answer body."""
        body: dict[str, Any] = {"status": "ok", "source": self.source, "received": self.received}
        if self.failed:
            body["failed_records"] = [f.as_json() for f in self.failed]
        return body


HOOK_CACHE_SECONDS = 10.0


@dataclass(frozen=True)
class _Hook:
    """An integration as a webhook call needs it (cached briefly: partners call often)."""

    project_id: int
    type: str
    status: IntegrationStatus
    secrets: webhook_secrets.StoredSecrets | None


class PartnerEventService:
    """Receives partner webhook calls for every integration of the database."""

    def __init__(
        self,
        engine: Engine,
        keyring: Keyring,
        clock: Clock,
        *,
        max_body_bytes: int,
        replay_window: timedelta = DEFAULT_REPLAY_WINDOW,
    ) -> None:
        self._engine = engine
        self._keyring = keyring
        self._clock = clock
        self._store = PartnerEventStore(engine, replay_window)
        self._hooks: TtlCache[int, _Hook] = TtlCache(HOOK_CACHE_SECONDS)
        self.max_body_bytes = max_body_bytes

    def forget(self, integration_id: int) -> None:
        """Drop what is cached about an integration (it was disconnected or its secret rotated
        in this process; other processes see the change within HOOK_CACHE_SECONDS)."""
        self._hooks.discard(integration_id)

    def _hook(self, integration_id: int, fresh: bool) -> _Hook:
        cached = None if fresh else self._hooks.get(integration_id)
        if cached is not None:
            return cached
        with read_transaction(self._engine) as connection:
            found = IntegrationStore(connection).find(integration_id)
            if found is None:
                raise NotFound(f"no integration {integration_id}: check the webhook URL")
            secrets = webhook_secrets.load(connection, self._keyring, integration_id)
        hook = _Hook(found.project_id, found.type, found.status, secrets)
        self._hooks.put(integration_id, hook)
        return hook

    def receive(self, integration_id: int, headers: Mapping[str, str], raw: bytes) -> WebhookResult:
        """Authenticate, normalise and store one call. Bad credentials store nothing; a bad item
        is reported by position while the valid ones are stored."""
        now = self._clock.now()
        lowered = {name.lower(): value for name, value in headers.items()}
        request = WebhookRequest(lowered, raw)
        hook = self._hook(integration_id, fresh=False)
        try:
            form = self._authenticate(integration_id, hook, request, now)
        except AuthenticationError:  # perhaps the secret was rotated since it was cached
            hook = self._hook(integration_id, fresh=True)
            form = self._authenticate(integration_id, hook, request, now)
        result = WebhookResult(form.source)
        pairs: list[tuple[int, PartnerEvent]] = []
        for index, item in enumerate(form.events(self._decode(lowered, raw))):
            try:
                if isinstance(item, RecordError):
                    raise item
                check_partner_event(item)
            except RecordError as error:
                result.failed.append(FailedRecord(index, None, error.field, error.message))
            else:
                pairs.append((index, item))
        stored, failed = self._store.store(
            hook.project_id, integration_id, form.source, pairs, now_ms(self._clock)
        )
        result.received = stored
        result.failed = sorted([*result.failed, *failed], key=lambda f: f.index)
        return result

    def _authenticate(
        self, integration_id: int, hook: _Hook, request: WebhookRequest, now: datetime
    ) -> PartnerFormat:
        form = partner_format(hook.type)
        if hook.status == IntegrationStatus.DISCONNECTED:
            raise Conflict(f"integration {integration_id} is disconnected; its events are refused")
        if hook.secrets is None:
            raise AuthenticationError(f"integration {integration_id} has no webhook secret")
        form.authenticate(request, hook.secrets.valid(now), int(now.timestamp()))
        return form

    def _decode(self, headers: Mapping[str, str], raw: bytes) -> Any:
        if "gzip" in headers.get("content-encoding", "").lower():
            raw = gunzip(raw, self.max_body_bytes)
        if not raw.strip():
            raise BatchError("the body is empty: a partner event payload (JSON) is expected")
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            raise BatchError(f"the body is not valid JSON ({error})") from None
