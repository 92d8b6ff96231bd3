interface Order {
  id: string;
  total: number;
}

export function buy(order: Order): void {
  analytics.track("Subscription Started", { order_id: order.id });
  analytics.track("Gift Card Redeemed", { revenue: order.total });
  // near miss: not a conversion, no revenue
  analytics.track("Cart Viewed", { order_id: order.id });
}
