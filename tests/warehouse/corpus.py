"""A fixed corpus of Segment payloads (shapes from the reference's §2 and §6) for the golden
tests; sent as one batch with sentAt = receivedAt = 2024-05-01T10:00:00.000Z."""

from __future__ import annotations

from typing import Any

LIBRARY = {"name": "analytics.js", "version": "next-1.84.1"}
PAGE_CONTEXT = {
    "library": LIBRARY,
    "page": {"path": "/pricing", "url": "https://example.com/pricing", "title": "Pricing"},
    "userAgent": "Mozilla/5.0",
    "campaign": {"name": "spring", "source": "news"},
}

CORPUS: list[dict[str, Any]] = [
    {
        "type": "page",
        "messageId": "p-1",
        "anonymousId": "anon-1",
        "name": "Pricing",
        "category": "Docs",
        "properties": {
            "name": "Pricing",
            "path": "/pricing",
            "url": "https://example.com/pricing",
            "keywords": ["plans", "cost"],
        },
        "context": PAGE_CONTEXT,
        "timestamp": "2024-05-01T09:59:58.000Z",
    },
    {
        "type": "identify",
        "messageId": "i-1",
        "anonymousId": "anon-1",
        "userId": "user-1",
        "traits": {
            "email": "ada@example.com",
            "firstName": "Ada",
            "age": 36,
            "premium": True,
            "createdAt": "2023-01-02T03:04:05Z",
            "address": {"city": "London", "postalCode": "N1"},
            "id": "crm-7",
        },
        "context": {"library": LIBRARY, "ip": "203.0.113.7"},
    },
    {
        "type": "track",
        "messageId": "t-1",
        "userId": "user-1",
        "event": "Order Completed",
        "properties": {
            "order_id": "o-1",
            "total": 27.5,
            "revenue": 25,
            "currency": "USD",
            "products": [{"product_id": "sku-1", "price": 12.5}],
            "shipping": {"method": "express", "cost": 2.5},
            "user_id": "spoofed",
            "order": 1,
        },
        "context": {"library": LIBRARY},
        "timestamp": "2024-05-01T09:59:59.500Z",
    },
    {
        "type": "track",
        "messageId": "t-2",
        "userId": "user-1",
        "event": "order_completed",
        "properties": {"order_id": "o-2", "total": 10, "revenue": 9},
        "context": {"library": LIBRARY},
        "timestamp": "2024-05-01T09:59:59.750Z",
    },
    {
        "type": "track",
        "messageId": "t-3",
        "anonymousId": "anon-2",
        "event": "101 Signed Up",
        "properties": {},
    },
    {
        "type": "screen",
        "messageId": "s-1",
        "userId": "user-1",
        "name": "Home",
        "properties": {"variation": "blue"},
        "context": {"library": {"name": "analytics-ios", "version": "4.1"}, "os": {"name": "iOS"}},
    },
    {
        "type": "group",
        "messageId": "g-1",
        "userId": "user-1",
        "groupId": "acme",
        "traits": {"name": "Acme", "employees": 120, "plan": "pro"},
    },
    {
        "type": "identify",
        "messageId": "i-2",
        "userId": "user-1",
        "traits": {"firstName": "Augusta", "premium": False},
    },
    {"type": "identify", "messageId": "i-3", "anonymousId": "anon-9", "traits": {"email": None}},
    {"type": "alias", "messageId": "a-1", "previousId": "anon-1", "userId": "user-1"},
]

CORPUS_LOAD = {
    "stream": "events",
    "first_seq": 1,
    "last_seq": 10,
    "events": 10,
    "row_count": 15,
    "status": "ok",
    "discards": 0,
    "schema_changes": 11,
}
"""The one load of :data:`CORPUS` sent as one batch into an empty warehouse, as
``mainstem warehouse history`` and ``/api/v1/warehouse/loads`` show it."""
