"""Every partner, registered in one line; the destinations, partner events, emulators, outreach
exemptions and Connect dialogs all read this registry.

A partner declared elsewhere (a test's fixture folder, a plugin) joins at run time with
``PARTNERS.register(spec)``, which returns the undo, or for a block with
``with PARTNERS.registered(spec): ...``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TypeVar

from cohortsync.domain.identity import IDENTITY_EVENTS
from cohortsync.domain.outreach import ANY_SOURCE, Exemption
from cohortsync.partners import clevertap, iterable, webhook, xtremepush
from cohortsync.partners.spec import PartnerSpec

Part = TypeVar("Part")


class PartnerRegistry(Mapping[str, PartnerSpec]):
    """Partner specs by type, in the order they were registered (the order on screen)."""

    def __init__(self) -> None:
        self._specs: dict[str, PartnerSpec] = {}

    def __getitem__(self, kind: str) -> PartnerSpec:
        return self._specs[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def register(self, spec: PartnerSpec) -> Callable[[], None]:
        """Add ``spec`` (its type must be new); returns the call that takes it out again."""
        if spec.type in self._specs:
            raise ValueError(f"a partner of type {spec.type!r} is already registered")
        self._specs[spec.type] = spec

        def undo() -> None:
            if self._specs.get(spec.type) is spec:
                del self._specs[spec.type]

        return undo

    @contextmanager
    def registered(self, spec: PartnerSpec) -> Iterator[PartnerSpec]:
        """``spec`` registered for the block, taken out after it."""
        undo = self.register(spec)
        try:
            yield spec
        finally:
            undo()


def registry_of(*specs: PartnerSpec) -> PartnerRegistry:
    """A registry of ``specs``, in this order."""
    registry = PartnerRegistry()
    for spec in specs:
        registry.register(spec)
    return registry


PARTNERS = registry_of(iterable.SPEC, clevertap.SPEC, xtremepush.SPEC, webhook.SPEC)


class Parts(Mapping[str, Part]):
    """One part (event format, emulator, …) of every registered partner that has it, by type;
    live, so a partner registered later shows."""

    def __init__(self, pick: Callable[[PartnerSpec], Part | None]) -> None:
        self._pick = pick

    def __getitem__(self, kind: str) -> Part:
        spec = PARTNERS.get(kind)
        part = None if spec is None else self._pick(spec)
        if part is None:
            raise KeyError(kind)
        return part

    def __iter__(self) -> Iterator[str]:
        return (kind for kind, spec in PARTNERS.items() if self._pick(spec) is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def seeded_exemptions() -> list[Exemption]:
    """The events that do not count toward MTU as the partners declare them today: Mixpanel's
    identity events from any source, then each partner's outreach events. (A new database is
    seeded by its migrations' own frozen rows.)"""
    return [
        *(Exemption(ANY_SOURCE, name) for name in sorted(IDENTITY_EVENTS)),
        *(
            Exemption(spec.type, name)
            for spec in PARTNERS.values()
            if spec.outreach is not None
            for name in spec.outreach.events
        ),
    ]
