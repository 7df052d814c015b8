"""Auto-alias end to end (R-ING-7 with R-EVT-1): a profile sets $CleverTap_user_id, the SDK-style
ingestion makes it an alias, CleverTap events carrying that id land on the user, and the user
qualifies for a behavioural cohort on those events."""

from __future__ import annotations

from datetime import timedelta

from cohortsync.partners.clevertap.outreach import clevertap_event
from tests.partner_events.conftest import Partners


def test_clevertap_events_land_on_the_aliased_user_and_drive_a_cohort(partners: Partners) -> None:
    project = partners.project
    # A brand-new user sets the CleverTap id on their profile through /engage, as the SDKs do.
    engage = partners.server.client().post(
        "/engage",
        json=[
            {
                "$token": project.token,
                "$distinct_id": "zoe",
                "$set": {"$email": "zoe@example.com", "$CleverTap_user_id": "CT-ZOE-1"},
            }
        ],
    )
    assert engage.status_code == 200 and engage.json() == 1, engage.text
    now = partners.server.clock.now()
    caller = partners.caller("clevertap")
    for hours in (30, 20, 10):
        reply = caller.send(
            clevertap_event("Notification Clicked", "CT-ZOE-1", now - timedelta(hours=hours))
        )
        assert reply.status_code == 200, reply.text
    stored = partners.events(event="Notification Clicked")
    assert {e["properties"]["distinct_id"] for e in stored} == {
        "zoe"
    }  # canonical, through the alias
    assert {e["properties"]["$distinct_id_before_identity"] for e in stored} == {"CT-ZOE-1"}

    cohorts = f"/api/v1/projects/{project.id}/cohorts"
    definition = {
        "event": "Notification Clicked",
        "count": {"op": ">=", "value": 3},
        "within": {"last": 2, "unit": "day"},
        "where": [{"property": "$source", "op": "equals", "value": "clevertap"}],
    }
    made = partners.api.post(
        cohorts, json={"name": "Clicked 3 CleverTap pushes", "definition": definition}
    )
    assert made.status_code == 201, made.text
    members = partners.api.get(f"{cohorts}/{made.json()['id']}/members").json()
    assert [m["distinct_id"] for m in members["members"]] == ["zoe"]
    assert members["count"] == 1
