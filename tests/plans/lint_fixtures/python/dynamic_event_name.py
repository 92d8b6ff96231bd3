import segment.analytics as analytics

from app.clock import NOW


def checkout(user_id: str, step: str) -> None:
    analytics.track(user_id, f"Checkout {step}", {"step": step}, timestamp=NOW)
    analytics.track(user_id, "Checkout " + step, timestamp=NOW)
    # near misses: literal names, by position or keyword
    analytics.track(user_id, "Checkout Step Viewed", {"step": step}, timestamp=NOW)
    analytics.track(user_id=user_id, event="Checkout Started", timestamp=NOW)
    analytics.track(user_id, "Checkout " "Step Completed", timestamp=NOW)
    # not an analytics client
    metrics.track(user_id, step)
