export function browse() {
  analytics.track("productViewed");
  analytics.track("cartViewed");
  analytics.track("Checkout Started");
  analytics.track("checkoutStarted");
  // near miss: one lower-case word fits camelCase too
  analytics.track("search");
}
