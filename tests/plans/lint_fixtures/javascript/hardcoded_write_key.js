import { AnalyticsBrowser } from "@segment/analytics-next";

export const browser = AnalyticsBrowser.load({ writeKey: "5fGh8sKq2LmN9pQr" });
analytics.load("9xYz7WvU6tSr5QpO");
const SEGMENT_WRITE_KEY = "k3Jh5Gf7Ds9Aq1Wz";

// near misses: from the environment, a template placeholder, a short test value
export const other = AnalyticsBrowser.load({ writeKey: process.env.SEGMENT_WRITE_KEY });
analytics.load("${SEGMENT_WRITE_KEY}");
const writeKey = "test";
