"""A partner list's name from the integration's template: literal text with ``{cohort_name}``
and ``{cohort_id}`` (``{{`` and ``}}`` for braces), read here and never by ``str.format`` (whose
fields reach attributes, ``{cohort_name.__class__}``, and whose specs pad without bound)."""

from __future__ import annotations

import re

PLACEHOLDERS = ("cohort_name", "cohort_id")
MAX_TEMPLATE = 200
# The longest list name kept (a sync's list_name column); no partner documents a lower limit.
MAX_NAME = 255
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


class TemplateError(ValueError):
    """A template that is not literal text with the known placeholders; says what is wrong."""


def _pieces(template: str, strict: bool) -> list[tuple[bool, str]]:
    """``(is_placeholder, text)`` in order; ``strict`` refuses what is not known, else keeps
    it as literal text (a template stored before the rule still names its list)."""
    pieces: list[tuple[bool, str]] = []
    position = 0
    for match in _TOKEN.finditer(template):
        pieces.append((False, template[position : match.start()]))
        position = match.end()
        token, name = match.group(0), match.group(1)
        if token in ("{{", "}}"):
            pieces.append((False, token[0]))
        elif name in PLACEHOLDERS:
            pieces.append((True, name))
        elif strict:
            shown = token if len(token) <= 40 else token[:37] + "…"
            raise TemplateError(
                f"may use only {{cohort_name}} and {{cohort_id}} ({{{{ and }}}} for braces), "
                f"not {shown}"
            )
        else:
            pieces.append((False, token))
    pieces.append((False, template[position:]))
    return pieces


def check_template(template: str) -> str:
    """``template`` when it is non-empty, at most :data:`MAX_TEMPLATE` characters, and uses
    only the placeholders; else :class:`TemplateError`."""
    if not template.strip():
        raise TemplateError("must be a non-empty string")
    if len(template) > MAX_TEMPLATE:
        raise TemplateError(f"must be at most {MAX_TEMPLATE} characters")
    _pieces(template, strict=True)
    return template


def render(template: str, cohort_name: str, cohort_id: int, limit: int = MAX_NAME) -> str:
    """The list name ``template`` gives the cohort, cut to ``limit`` characters."""
    values = {"cohort_name": cohort_name, "cohort_id": str(cohort_id)}
    name = "".join(values[text] if known else text for known, text in _pieces(template, False))
    return name[:limit]
