import segment.analytics as analytics

from app.clock import NOW


# near miss: the server libraries have no reset(); the check is for analytics.js only
def logout(user_id: str) -> None:
    analytics.track(user_id, "Signed Out", timestamp=NOW)


def sign_out_everywhere(user_id: str) -> None:
    analytics.track(user_id, "Sessions Revoked", timestamp=NOW)
