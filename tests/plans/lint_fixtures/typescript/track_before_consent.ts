export async function boot(consent: ConsentState): Promise<void> {
  analytics.track("App Booted");
  analytics.page();
  if (!consent.analytics) {
    return;
  }
  analytics.track("Home Viewed");
}

// near miss: tracking after the consent check resolves
export async function later(): Promise<void> {
  await waitForConsent();
  analytics.track("Feature Used");
}
