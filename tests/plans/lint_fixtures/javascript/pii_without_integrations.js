export function signUp(user, form) {
  analytics.identify(user.id, { plan: "pro", email: form.email });
  analytics.track("Account Created", { phoneNumber: form.phone, homeAddress: form.address });
  // near misses: destinations chosen; a flag about an email is not an email
  analytics.identify(user.id, { email: form.email }, { integrations: { All: false, Warehouse: true } });
  analytics.track("Email Verified", { emailVerified: true });
}
