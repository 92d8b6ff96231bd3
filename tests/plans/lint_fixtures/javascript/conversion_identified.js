// near miss: the same flow identifies the user first
export function buy(user, order) {
  analytics.identify(user.id, { plan: user.plan });
  analytics.track("Order Completed", { order_id: order.id, revenue: order.total });
}
