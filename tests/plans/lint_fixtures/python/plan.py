import segment.analytics as analytics

from app.clock import NOW


def checkout(user_id: str, order: Order, base: dict[str, object]) -> None:
    analytics.track(user_id, "Order Complete", {"order_id": "o1", "total": 5}, timestamp=NOW)
    analytics.track(user_id, "Order Completed", {"total": 5}, timestamp=NOW)
    analytics.track(user_id, "Order Completed", {"order_id": 1, "total": "5"}, timestamp=NOW)
    analytics.track(
        user_id, "Order Completed", {"order_id": "o1", "total": 5, "colour": "red"}, timestamp=NOW
    )
    # near misses: all planned; spread; integer as number; null allowed; non-literal values
    analytics.track(user_id, "Order Completed", {"order_id": "o1", "total": 5.5}, timestamp=NOW)
    analytics.track(user_id, "Order Completed", {**base, "total": 5}, timestamp=NOW)
    analytics.track(
        user_id, "Order Completed", {"order_id": order.id, "total": 5, "coupon": None},
        timestamp=NOW,
    )
    analytics.track(user_id, "Product Viewed", {"sku": f"s{order.id}"}, timestamp=NOW)
