import segment.analytics as analytics

from app.clock import NOW


def anonymous_purchase(anonymous_id: str, order_id: str) -> None:
    analytics.track(
        event="Order Completed", anonymous_id=anonymous_id, properties={"order_id": order_id},
        timestamp=NOW,
    )
    analytics.track(None, "Coupon Applied", {"revenue": 10}, anonymous_id=anonymous_id, timestamp=NOW)


def known_purchase(user_id: str, order_id: str) -> None:
    # near misses: a server call with a user id is identified; not a conversion
    analytics.track(user_id, "Order Completed", {"order_id": order_id}, timestamp=NOW)
    analytics.track(None, "Cart Viewed", {"items": 2}, anonymous_id="a1", timestamp=NOW)
