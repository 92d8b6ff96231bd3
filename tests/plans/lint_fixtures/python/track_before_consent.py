import segment.analytics as analytics

from app.clock import NOW
from app.privacy import has_consent


def on_request(user: User, consent: Consent) -> None:
    analytics.track(user.id, "Page Requested", timestamp=NOW)
    if not consent.analytics:
        return
    analytics.track(user.id, "Feature Used", timestamp=NOW)


def after_check(user: User) -> None:
    # near miss: inside the consent branch
    if has_consent(user, "analytics"):
        analytics.track(user.id, "Feature Used", {"consent_given": True}, timestamp=NOW)
