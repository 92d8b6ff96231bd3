"""Activate: routing stored events to destinations, each with its own cursor, retries and dead
letters.

* :mod:`~mainstem.destinations.spec` — the ``destinations:`` part of ``mainstem.yaml``.
* :mod:`~mainstem.destinations.fql` — Segment's Filter Query Language (a subset).
* :mod:`~mainstem.destinations.routing` — pure decisions: source, type, consent, integrations,
  filters; every decision carries its reason.
* :mod:`~mainstem.destinations.retry` — which failures are retried and how long to wait.
* :mod:`~mainstem.destinations.state` — cursors, attempts and dead letters (``delivery.db``).
* :mod:`~mainstem.destinations.transports` — the HTTP edge: webhook, Segment-compatible, Slack
  and vendor integrations.
* :mod:`~mainstem.destinations.integrations` — vendor mappings (Mixpanel, Amplitude, Google
  Analytics 4, HubSpot): pure functions from messages to the vendor's requests.
* :mod:`~mainstem.destinations.courier` — one thread per destination over the event store.
"""
