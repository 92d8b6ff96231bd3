export function browse(): void {
  analytics.track("product_viewed");
  analytics.track("cart_viewed");
  analytics.track("checkout_started");
  analytics.track("Coupon Applied");
  // near miss: one lower-case word fits snake_case too
  analytics.track("search");
}
