const EVENTS = { started: "Checkout Started" };

export function checkout(step) {
  analytics.track(`Checkout ${step}`, { step });
  analytics.track(EVENTS.started);
  window.analytics.track("Checkout " + step);
  // near misses: literal names, a template without substitutions
  analytics.track("Checkout Step Viewed", { step });
  analytics.track(`Checkout Step Completed`, { step });
  // not an analytics client
  mixpanel.track(step);
}
