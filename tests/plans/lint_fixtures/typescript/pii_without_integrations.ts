interface Form {
  email: string;
  ssn: string;
}

export function verify(userId: string, form: Form): void {
  analytics.identify(userId, { ssn: form.ssn });
  // near misses: destinations chosen; a flag about an email is not an email
  analytics.identify(userId, { email: form.email }, { integrations: { All: false } });
  analytics.track("Email Verified", { emailVerified: true });
}
