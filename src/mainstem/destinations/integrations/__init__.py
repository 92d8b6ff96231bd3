"""Integrations with vendor APIs: each module maps Segment messages to one vendor's requests
(pure) and declares its settings; delivery itself is the same for every destination.

* :mod:`~mainstem.destinations.integrations.integration` — what an integration declares.
* :mod:`~mainstem.destinations.integrations.message` — reading Segment messages for mappings.
* :mod:`~mainstem.destinations.integrations.mixpanel`, ``amplitude``, ``ga4``, ``hubspot``.
"""

from __future__ import annotations

from mainstem.destinations.integrations import amplitude, ga4, hubspot, mixpanel
from mainstem.destinations.integrations.integration import Integration

INTEGRATIONS: dict[str, Integration] = {
    item.type: item
    for item in (
        mixpanel.INTEGRATION,
        amplitude.INTEGRATION,
        ga4.INTEGRATION,
        hubspot.INTEGRATION,
    )
}
"""By ``type:``."""
