export function LogoutButton(): JSX.Element {
  return <button onClick={() => api.logout()}>Log out</button>;
}

export class Session {
  async signOut(): Promise<void> {
    analytics.track("Signed Out");
    await api.logout();
  }

  // near misses: a logout path that resets, and a method that is not a logout
  async handleLogout(): Promise<void> {
    await api.logout();
    analytics.reset();
  }

  logoutUrl(): string {
    return "/logout";
  }
}
