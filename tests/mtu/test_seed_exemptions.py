"""The MTU exemption lists (R-MTU-1) are the seed pages' lists word for word, in the code and in
the table a new database starts with."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from cohortsync.partners.registry import PARTNERS
from cohortsync.services import mtu
from tests.mtu.seed_pages import exempt_lists

OURS = {kind: spec.outreach.events for kind, spec in PARTNERS.items() if spec.outreach}


@pytest.mark.parametrize("partner", sorted(OURS))
def test_the_exemption_list_is_the_seed_pages_list_word_for_word(partner: str) -> None:
    for seed in exempt_lists(partner):
        assert seed.names() == OURS[partner], f"{seed.page} lists {partner}'s events otherwise"


def test_a_new_database_starts_with_the_seed_lists(engine: Engine) -> None:
    table = mtu.MtuReports(engine).exemptions()
    for partner in OURS:
        held = tuple(e.event for e in table if e.source == partner)
        (seed, *_) = exempt_lists(partner)
        assert sorted(held) == sorted(seed.names()), partner
