"""List names come from a template of ``{cohort_name}`` and ``{cohort_id}`` only (issue 15,
finding 12): nothing else is accepted, names are bounded, and rendering never uses
``str.format``."""

from __future__ import annotations

import pytest

from cohortsync.destinations import registry
from cohortsync.domain.errors import BatchError
from cohortsync.partners.list_names import MAX_NAME, MAX_TEMPLATE, render

REFUSED = [
    "{cohort_name.__class__}",
    "{cohort_name.__class__.__mro__}",
    "{cohort_name[0]}",
    "{0}",
    "{}",
    "{cohort_name:>20000000}",
    "{cohort_id:,}",
    "{cohort_name!r}",
    "{owner}",
    "open { brace",
    "close } brace",
]


@pytest.mark.parametrize("template", REFUSED)
@pytest.mark.parametrize("partner", ["iterable", "clevertap", "xtremepush", "webhook"])
def test_a_template_with_anything_but_the_two_placeholders_is_refused(
    partner: str, template: str
) -> None:
    spec = registry.partner(partner)
    settings = {"list_name_template": template}
    if partner == "webhook":
        settings["url"] = "https://hooks.example"
    with pytest.raises(BatchError) as refused:
        registry.check_settings(spec, settings, allow_custom_endpoints=False)
    assert refused.value.message.startswith("settings.list_name_template may use only")


def test_a_template_is_bounded() -> None:
    spec = registry.partner("iterable")
    longest = "x" * MAX_TEMPLATE
    assert registry.check_settings(spec, {"list_name_template": longest}, False)
    with pytest.raises(BatchError, match=r"settings\.list_name_template must be at most 200"):
        registry.check_settings(spec, {"list_name_template": longest + "x"}, False)


def test_names_are_rendered_from_the_placeholders_and_literal_braces() -> None:
    settings = {"list_name_template": "{{team}} {cohort_name} #{cohort_id}"}
    assert registry.list_name(settings, "Pro {users}", 7) == "{team} Pro {users} #7"
    assert registry.list_name({}, "Pro", 7) == "mixpanel_Pro_7"


def test_a_long_cohort_name_gives_a_name_within_the_limit() -> None:
    name = registry.list_name({"list_name_template": "{cohort_name}-{cohort_id}"}, "n" * 400, 3)
    assert len(name) == MAX_NAME == 255


def test_a_template_stored_before_the_rule_renders_its_fields_as_text() -> None:
    assert render("{cohort_name.__class__} {0} {cohort_name:>99}", "Pro", 1) == (
        "{cohort_name.__class__} {0} {cohort_name:>99}"
    )
