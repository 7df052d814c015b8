"""Iterable: lists of users, system webhook events, and an emulator of both."""

from cohortsync.partners.iterable.spec import SPEC

__all__ = ["SPEC"]
