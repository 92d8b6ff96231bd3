type Step = "shipping" | "payment";
const EVENTS = { started: "Checkout Started" } as const;

export function checkout(step: Step): void {
  analytics.track(`Checkout ${step}`, { step });
  analytics.track(EVENTS.started as string);
  // near misses: literal names, with type assertions around them
  analytics.track("Checkout Step Viewed" as const, { step });
  window.analytics?.track(`Checkout Step Completed`, { step } satisfies Record<string, Step>);
  // not an analytics client
  mixpanel.track(step);
}
