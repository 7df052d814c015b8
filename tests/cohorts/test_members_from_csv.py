"""The CSV of a static cohort, read the same for the API and the web UI."""

from __future__ import annotations

import pytest

from cohortsync.domain.errors import BatchError
from cohortsync.services.cohorts import members_from_csv


def test_ids_win_over_emails_per_row_and_headers_ignore_case() -> None:
    text = " Distinct_ID ,$Email,note\nana,ana@x.io,a\n,ben@x.io,b\n,,c\n cy ,,d\n"
    assert members_from_csv(text) == (["ana", "cy"], ["ben@x.io"])


def test_a_csv_of_emails_only() -> None:
    assert members_from_csv("email\nana@x.io\n\ncy@x.io\n") == ([], ["ana@x.io", "cy@x.io"])


def test_a_csv_without_either_column_says_which_it_needs() -> None:
    with pytest.raises(BatchError) as raised:
        members_from_csv("user\nana\n")
    assert "needs a 'distinct_id' or an 'email' column" in raised.value.message
