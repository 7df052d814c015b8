"""Xtremepush: user lists, signed message events, and an emulator of both."""

from cohortsync.partners.xtremepush.spec import SPEC

__all__ = ["SPEC"]
