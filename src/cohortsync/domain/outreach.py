"""Which events do not make a user count toward MTU (R-MTU-1): an exemption names an event and
the ``$source`` it must carry (or any source). Each partner declares its outreach events in its
own folder (``cohortsync.partners.<name>.outreach``); Mixpanel's identity-management events are
exempt from any source.

The exemptions only *seed* the ``mtu_exemptions`` table; the report reads the table, which an
operator may edit (``cohortsync mtu exemptions``).
"""

from __future__ import annotations

from typing import NamedTuple

ANY_SOURCE = "*"  # an exemption that applies whatever the event's $source


class Exemption(NamedTuple):
    """An event name that is not qualifying for MTU when it carries ``source`` as $source."""

    source: str
    event: str
