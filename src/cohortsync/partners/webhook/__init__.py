"""Webhook: cohort members posted to an endpoint of the customer's own, and a receiver emulator."""

from cohortsync.partners.webhook.spec import SPEC

__all__ = ["SPEC"]
