export function save(cart, req) {
  analytics.track("Cart Updated", { cart: JSON.stringify(cart) });
  analytics.track("Page Saved", { html: document.documentElement.outerHTML });
  analytics.track("Form Submitted", req.body);
  // near misses: a size, an id, one field
  analytics.track("Cart Viewed", { items: cart.items.length, cartId: cart.id });
  analytics.track("Search Performed", { query: req.body.q });
}
