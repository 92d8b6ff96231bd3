export function buy(order) {
  analytics.track("Order Completed", { order_id: order.id });
  analytics.track("Plan Upgraded", { revenue: order.total });
  // near miss: not a conversion, no revenue
  analytics.track("Cart Viewed", { items: order.items.length });
}
