export function signUp(user, form) {
  analytics.identify(user.id, { plan: "pro", email: form.email });
  analytics.track("Account Created", { phoneNumber: form.phone, homeAddress: form.address });
  // near misses: destinations chosen; a flag about an email is not an email
  analytics.identify(user.id, { email: form.email }, { integrations: { All: false, Warehouse: true } });
  analytics.track("Email Verified", { emailVerified: true });
  // near miss: the options object is built elsewhere and may name the destinations
  analytics.identify(user.id, { email: form.email }, piiOptions);
  // a callback is not options: a true positive, suppressed on its line
  analytics.track("Phone Added", { phone: form.phone }, () => log("sent")); // mainstem: ignore[pii-without-integrations]
}
