"""Postbox: the smallest real partner, declared outside the registry (a test fixture): an HTTP
API of mailing lists, its connector and its emulator. ``test_new_partner.py`` registers it and
runs the conformance suite against it."""

from tests.destinations.fixture_partner.spec import SPEC

__all__ = ["SPEC"]
