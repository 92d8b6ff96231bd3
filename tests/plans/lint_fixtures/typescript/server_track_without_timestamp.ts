import { Analytics } from "@segment/analytics-node";

const analytics = new Analytics({ writeKey: process.env.SEGMENT_WRITE_KEY! });

export function ship(userId: string, id: string, deliveredAt: Date): void {
  analytics.track({ userId, event: "Order Shipped", properties: { id } });
  // near miss: an explicit timestamp
  analytics.track({ userId, event: "Order Delivered", properties: { id }, timestamp: deliveredAt });
  // near miss: the spread parameters may carry the timestamp
  analytics.track({ ...base(userId), event: "Order Returned", properties: { id } });
}
