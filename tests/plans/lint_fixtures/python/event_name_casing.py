import segment.analytics as analytics

from app.clock import NOW


def browse(user_id: str) -> None:
    analytics.track(user_id, "Product Viewed", timestamp=NOW)
    analytics.track(user_id, "Cart Viewed", timestamp=NOW)
    analytics.track(user_id, "Checkout Started", timestamp=NOW)
    analytics.track(user_id, "signup_started", timestamp=NOW)
    # near miss: one capitalised word is Title Case too
    analytics.track(user_id, "Signup", timestamp=NOW)
