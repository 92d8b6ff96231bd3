export function logout() {
  session.clear();
}

const menu = {
  onSignOut: () => {
    analytics.track("Signed Out");
  },
};

// near misses: logout paths that reset, and a function that is not a logout
export function logOut() {
  analytics.track("Logged Out");
  analytics.reset();
}
export const signOut = async () => {
  await window.analytics.reset();
};
export function logoutButtonLabel() {
  return "Log out";
}
