import segment.analytics as analytics

from app.clock import NOW


def sign_up(user_id: str, email: str, phone: str) -> None:
    analytics.identify(user_id, {"plan": "pro", "email": email}, timestamp=NOW)
    analytics.track(user_id, "Account Created", {"phone_number": phone}, timestamp=NOW)
    # near misses: destinations chosen; a boolean about an email is not an email
    analytics.identify(
        user_id, {"email": email}, integrations={"All": False, "Mainstem Warehouse": True},
        timestamp=NOW,
    )
    analytics.track(user_id, "Email Verified", {"email_verified": True}, timestamp=NOW)
