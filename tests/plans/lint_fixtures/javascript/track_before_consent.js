export async function boot(user) {
  analytics.page();
  const allowed = await consentManager.hasConsent("analytics");
  if (!allowed) return;
  analytics.track("App Booted");
}

// near miss: tracking inside the consent branch, and a consent property on the event
export function later(user) {
  if (hasConsent(user)) {
    analytics.track("Feature Used", { consentGiven: true });
  }
}
