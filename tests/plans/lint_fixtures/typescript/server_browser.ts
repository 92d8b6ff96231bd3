import { AnalyticsBrowser } from "@segment/analytics-next";

const analytics = AnalyticsBrowser.load({ writeKey: import.meta.env.VITE_SEGMENT_WRITE_KEY });

// near miss: analytics.js in a browser stamps events itself
export function view(sku: string): void {
  analytics.track("Product Viewed", { sku });
}
