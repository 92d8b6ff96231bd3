import { Analytics } from "@segment/analytics-node";

export const client = new Analytics({ writeKey: "5fGh8sKq2LmN9pQr", maxEventsInBatch: 20 });
const config: { writeKey: string } = { writeKey: "9xYz7WvU6tSr5QpO" };

// near misses: from the environment, an empty default
export const other = new Analytics({ writeKey: process.env.SEGMENT_WRITE_KEY! });
const fallback = { writeKey: process.env.WRITE_KEY ?? "" };
