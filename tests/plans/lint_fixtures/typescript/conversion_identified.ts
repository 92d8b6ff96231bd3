import { Analytics } from "@segment/analytics-node";

const analytics = new Analytics({ writeKey: process.env.SEGMENT_WRITE_KEY ?? "" });

// near miss: a server call with a userId is attributed
export function buy(userId: string, orderId: string, at: Date): void {
  analytics.track({ userId, event: "Order Completed", properties: { orderId }, timestamp: at });
}
