import segment.analytics as analytics


def ship(user_id: str, order: Order) -> None:
    analytics.track(user_id, "Order Shipped", {"order_id": order.id})
    # near misses: a timestamp by keyword and by position (after context)
    analytics.track(user_id, "Order Delivered", {"order_id": order.id}, timestamp=order.delivered)
    analytics.track(user_id, "Order Refunded", {"order_id": order.id}, None, order.refunded_at)
    # near miss: the keyword arguments come from a mapping that may hold the timestamp
    analytics.track(user_id, "Order Returned", {"order_id": order.id}, **order.tracking_options)
