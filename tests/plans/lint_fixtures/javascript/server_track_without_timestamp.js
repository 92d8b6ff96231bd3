const { Analytics } = require("@segment/analytics-node");

const analytics = new Analytics({ writeKey: process.env.SEGMENT_WRITE_KEY });

export function ship(order) {
  analytics.track({ userId: order.userId, event: "Order Shipped", properties: { id: order.id } });
  // near miss: an explicit timestamp
  analytics.track({
    userId: order.userId,
    event: "Order Delivered",
    properties: { id: order.id },
    timestamp: order.deliveredAt,
  });
}
