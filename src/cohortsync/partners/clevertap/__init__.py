"""CleverTap: segments from custom lists, event records and webhook campaigns, and an emulator."""

from cohortsync.partners.clevertap.spec import SPEC

__all__ = ["SPEC"]
