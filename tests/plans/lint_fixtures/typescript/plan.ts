export function checkout(order: Order, base: Partial<OrderCompleted>): void {
  analytics.track("Order Complete", { order_id: "o1", total: 5 });
  analytics.track("Order Completed", { total: 5 } as OrderCompleted);
  analytics.track("Order Completed", { order_id: 1, total: "5" });
  analytics.track("Order Completed", { order_id: "o1", total: 5, colour: "red" });
  // near misses: all planned; spread; integer as number; null allowed; non-literal values
  analytics.track("Order Completed", { order_id: "o1", total: 5.5 });
  analytics.track("Order Completed", { ...base, total: 5 });
  analytics.track("Order Completed", { order_id: order.id, total: 5, coupon: null });
  analytics.track("Product Viewed", { sku: `s${order.id}` });
}

// the user is identified in this file, so the conversions above are attributed
analytics.identify("u1");
