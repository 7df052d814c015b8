"""Blocked runs (R-SYN-8): what a run may not do to a partner list without an admin's confirm."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SafetyRules:
    """When a run waits for a confirm instead of sending."""

    removal_share: float = 0.5  # block when a run would remove more than this share of the list
    min_removals: int = 10  # ... and at least this many members (tiny lists churn freely)

    def block_reason(
        self, *, held: int, members: int, removes: int, strangers: int = 0
    ) -> str | None:
        """Why a planned run must wait for a confirm, or None when it may go ahead.

        ``held`` is what the list holds as far as we know (acknowledged), ``members`` the
        cohort's size now, ``removes`` the members the cohort lost, and ``strangers`` the members
        a read-back found on the partner's list that this sync never put there.
        """
        on_list = held + strangers
        if strangers >= self.min_removals and strangers > self.removal_share * on_list:
            return (
                f"reading the list back found {strangers:,} of its {on_list:,} members "
                f"({strangers / on_list:.0%}) that this sync did not put there (added by hand on "
                "the partner, or by an earlier export); confirm to take them off"
            )
        if held == 0:
            return None
        if members == 0:
            return (
                f"the cohort came back empty while the list holds {held:,} members; "
                f"confirm to remove them all"
            )
        if removes >= self.min_removals and removes > self.removal_share * held:
            return (
                f"the run would remove {removes:,} of the {held:,} members on the list "
                f"({removes / held:.0%}), more than the {self.removal_share:.0%} allowed "
                "without a confirm"
            )
        return None

    @staticmethod
    def evaluation_failed(held: int, error: str) -> str | None:
        """A failed evaluation blocks when there is a list to protect (nothing is removed)."""
        if held == 0:
            return None
        return (
            f"the cohort could not be evaluated ({error}); nothing was removed from the "
            f"{held:,} members on the list. Confirm to evaluate it again and proceed"
        )
