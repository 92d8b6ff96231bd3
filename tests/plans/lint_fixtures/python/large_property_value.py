import json

import segment.analytics as analytics

from app.clock import NOW


def save(user_id: str, request: Request, cart: Cart) -> None:
    analytics.track(user_id, "Cart Updated", {"cart": json.dumps(cart)}, timestamp=NOW)
    analytics.track(user_id, "Form Submitted", {"form": request.POST}, timestamp=NOW)
    analytics.track(user_id, "Profile Saved", vars(cart), timestamp=NOW)
    # near misses: a size, an id, one field of a parsed body
    analytics.track(
        user_id, "Cart Viewed", {"items": len(cart.items), "cart_id": cart.id}, timestamp=NOW
    )
    analytics.track(
        user_id, "Search Performed", {"query": json.loads(request.body)["q"]}, timestamp=NOW
    )
