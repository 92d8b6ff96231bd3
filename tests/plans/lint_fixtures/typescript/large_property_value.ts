import type { Request } from "express";

export function save(cart: Cart, req: Request): void {
  analytics.track("Cart Updated", { cart: JSON.stringify(cart) as string });
  analytics.track("Page Saved", { text: document.body.innerText });
  analytics.track("Form Submitted", { form: req.body });
  // near misses: a size, an id, one field
  analytics.track("Cart Viewed", { items: cart.items.length, cartId: cart.id });
  analytics.track("Search Performed", { query: String(req.body.q) });
}
