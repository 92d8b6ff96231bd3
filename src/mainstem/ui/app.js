// Mainstem's web UI: a thin view over the admin API (/api/v1/*), which needs the admin token.
// The token is kept in this browser's localStorage; nothing else is stored.
"use strict";

const state = { token: localStorage.getItem("mainstem.token") || "", timer: null };
const view = document.getElementById("view");

// The admin API takes the token as a Bearer token; the Profile API, like Segment's, as the
// HTTP Basic username.
async function api(path, scheme = "Bearer") {
  const credentials = scheme === "Basic" ? btoa(`${state.token}:`) : state.token;
  const response = await fetch(path, { headers: { Authorization: `${scheme} ${credentials}` } });
  if (response.status === 401) {
    localStorage.removeItem("mainstem.token");
    state.token = "";
    showLogin("That admin token was refused — paste the admin_token from mainstem.yaml.");
    throw new Error("unauthorized");
  }
  const body = await response.json();
  if (!response.ok) throw new Error(body.error ? body.error.message : response.statusText);
  return body;
}

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "onclick") node.addEventListener("click", value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
  return node;
}

function table(columns, rows, onSelect) {
  if (!rows.length) return el("p", { class: "empty" }, "Nothing yet.");
  const head = el("tr", {}, ...columns.map(([title]) => el("th", {}, title)));
  const body = rows.map((row) => {
    const cells = columns.map(([, get, numeric]) => el("td", numeric ? { class: "num" } : {}, get(row)));
    const attributes = onSelect ? { class: "clickable", onclick: () => onSelect(row) } : {};
    return el("tr", attributes, ...cells);
  });
  return el("table", {}, el("thead", {}, head), el("tbody", {}, ...body));
}

function showDetail(value) {
  document.getElementById("detail-json").textContent = JSON.stringify(value, null, 2);
  document.getElementById("detail").hidden = false;
}

// A profile by any of its identifiers (user_id:u1, email:a@b.co, anonymous_id:…, group_id:…) or
// its segment_id, through the Profile API: users first, then accounts.
async function lookUp(id) {
  for (const collection of ["users", "accounts"]) {
    const base = `/v1/spaces/ui/collections/${collection}/profiles/${encodeURIComponent(id)}`;
    try {
      const metadata = (await api(`${base}/metadata`, "Basic")).metadata;
      const [traits, ids, events] = await Promise.all([
        api(`${base}/traits?limit=200`, "Basic"),
        api(`${base}/external_ids?limit=100`, "Basic"),
        api(`${base}/events?limit=25`, "Basic"),
      ]);
      return { collection, metadata, traits: traits.traits, ids: ids.data, events: events.data };
    } catch (error) {
      if (error.message !== "Profile was not found.") throw error;
    }
  }
  throw new Error(`No profile has the identifier ${id} — try user_id:…, email:…, anonymous_id:… or a segment_id.`);
}

function profileSearch(id) {
  const input = el("input", { id: "profile-id", value: id, placeholder: "user_id:u1, email:a@b.co or a segment_id", required: "" });
  const form = el("form", { id: "profile-search", class: "inline" }, input, el("button", { type: "submit" }, "Look up"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = `#profiles/${encodeURIComponent(input.value.trim())}`;
  });
  return form;
}

const views = {
  async sources() {
    const { data } = await api("/api/v1/sources");
    return [
      el("h2", {}, "Sources"),
      el("p", { class: "muted" }, "Point a Segment SDK at this server with a write key below."),
      table(
        [
          ["Source", (s) => `${s.name} (${s.id})`],
          ["Write key", (s) => el("code", {}, s.write_key)],
          ["Enabled", (s) => (s.enabled ? "yes" : "no")],
          ["Stored", (s) => s.events_stored, true],
          ["Rejected", (s) => s.events_rejected, true],
          ["Blocked by plan", (s) => s.events_blocked, true],
        ],
        data,
      ),
    ];
  },
  async events() {
    const { data } = await api("/api/v1/events?limit=100");
    return [
      el("h2", {}, "Live events ", el("span", { class: "muted" }, "(newest first, refreshed every 2 s; click for the JSON)")),
      table(
        [
          ["Received", (e) => e.received_at],
          ["Source", (e) => e.source_id],
          ["Type", (e) => e.message.type],
          ["Event / name", (e) => e.message.event || e.message.name || ""],
          ["User", (e) => e.message.userId || e.message.anonymousId || ""],
          ["messageId", (e) => el("code", {}, e.message.messageId)],
        ],
        data,
        (e) => showDetail(e.message),
      ),
    ];
  },
  async rejections() {
    const { data } = await api("/api/v1/rejections?limit=100");
    return [
      el("h2", {}, "Rejections ", el("span", { class: "muted" }, "(what was refused, and why)")),
      table(
        [
          ["Received", (r) => r.received_at],
          ["Source", (r) => r.source_id],
          ["Code", (r) => el("code", {}, r.code)],
          ["Reason", (r) => r.reason],
        ],
        data,
        (r) => showDetail(r),
      ),
    ];
  },
  async violations() {
    const body = await api("/api/v1/violations?since=7d");
    const rows = body.data || [];
    return [
      el("h2", {}, "Tracking-plan violations ", el("span", { class: "muted" }, "(last 7 days; click for samples)")),
      table(
        [
          ["Source", (v) => v.source_id],
          ["Event", (v) => v.event],
          ["Field", (v) => el("code", {}, v.field)],
          ["Type", (v) => v.type],
          ["Count", (v) => v.count, true],
        ],
        rows,
        (v) => showDetail(v),
      ),
    ];
  },
  async profiles(id) {
    const parts = [
      el("h2", {}, "Profiles ", el("span", { class: "muted" }, "(the identity graph: traits, identifiers and events of one person or account)")),
      profileSearch(id),
    ];
    if (!id) return parts;
    let found;
    try {
      found = await lookUp(id);
    } catch (error) {
      if (error.message === "unauthorized") throw error;
      return [...parts, el("p", { class: "error" }, error.message)];
    }
    const traits = Object.entries(found.traits).map(([key, value]) => ({ key, value }));
    parts.push(
      el("p", {}, el("code", { id: "profile-segment-id" }, found.events.length ? found.events[0].related.users : id), ` · ${found.collection} · created ${found.metadata.created_at} · updated ${found.metadata.updated_at}`),
      el("h2", {}, "Traits"),
      table([["Trait", (t) => el("code", {}, t.key)], ["Value", (t) => JSON.stringify(t.value)]], traits),
      el("h2", {}, "Identifiers"),
      table(
        [
          ["Type", (i) => i.type],
          ["Value", (i) => el("code", {}, i.id)],
          ["Source", (i) => i.source_id],
          ["First seen", (i) => i.created_at],
        ],
        found.ids,
      ),
      el("h2", {}, "Latest events ", el("span", { class: "muted" }, "(click for the JSON)")),
      table(
        [
          ["Timestamp", (e) => e.timestamp],
          ["Type", (e) => e.type],
          ["Event / name", (e) => e.event || e.name || ""],
          ["Source", (e) => e.source_id],
        ],
        found.events,
        (e) => showDetail(e),
      ),
    );
    return parts;
  },
  async warehouse() {
    const [{ data: loads }, schema] = await Promise.all([
      api("/api/v1/warehouse/loads?limit=20"),
      api("/api/v1/warehouse/schema?changes=20"),
    ]);
    return [
      el("h2", {}, "Warehouse loads ", el("span", { class: "muted" }, "(newest first; click for the details)")),
      table(
        [
          ["Started", (l) => l.started_at],
          ["Stream", (l) => l.stream],
          ["Events", (l) => l.events, true],
          ["Rows", (l) => l.row_count, true],
          ["Duplicates", (l) => l.duplicates, true],
          ["Discards", (l) => l.discards, true],
          ["Schema changes", (l) => l.schema_changes, true],
          ["Status", (l) => l.status],
          ["Error", (l) => l.error || ""],
        ],
        loads,
        (l) => showDetail(l),
      ),
      el("h2", {}, "Tables ", el("span", { class: "muted" }, "(Segment's layout, a schema per source; click for the columns)")),
      table(
        [
          ["Table", (t) => el("code", {}, `${t.schema}.${t.table}`)],
          ["Columns", (t) => t.columns.length, true],
        ],
        schema.tables,
        (t) => showDetail(t.columns),
      ),
      el("h2", {}, "Schema changes ", el("span", { class: "muted" }, "(newest first)")),
      table(
        [
          ["When", (c) => c.changed_at],
          ["Table", (c) => el("code", {}, `${c.schema_name}.${c.table_name}`)],
          ["Change", (c) => c.change],
          ["Detail", (c) => c.detail || ""],
        ],
        schema.changes,
      ),
    ];
  },
  async destinations() {
    const { data } = await api("/api/v1/destinations");
    const parts = [
      el("h2", {}, "Destinations ", el("span", { class: "muted" }, "(click for the delivery log)")),
      table(
        [
          ["Destination", (d) => `${d.name || d.id} (${d.type})`],
          ["Enabled", (d) => (d.enabled ? "yes" : "no")],
          ["Delivered", (d) => d.delivered, true],
          ["Filtered", (d) => d.filtered, true],
          ["Dead letters", (d) => d.dead_letters, true],
          ["Lag", (d) => d.lag, true],
          ["Last error", (d) => d.last_error || ""],
        ],
        data,
        async (d) => showDetail((await api(`/api/v1/destinations/${encodeURIComponent(d.id)}/deliveries?limit=50`)).data),
      ),
    ];
    return parts;
  },
};

async function render() {
  const [name, argument] = (location.hash || "#sources").slice(1).split("/", 2);
  const show = views[name] ? name : "sources";
  for (const link of document.querySelectorAll("#tabs a")) {
    link.classList.toggle("active", link.dataset.view === show);
  }
  try {
    const parts = await views[show](decodeURIComponent(argument || ""));
    view.replaceChildren(...parts);
  } catch (error) {
    if (error.message !== "unauthorized") view.replaceChildren(el("p", { class: "error" }, error.message));
  }
  clearTimeout(state.timer);
  if (show === "events" && state.token) state.timer = setTimeout(render, 2000);
}

async function health() {
  const pill = document.getElementById("health");
  try {
    const report = await (await fetch("/health")).json();
    pill.textContent = report.status === "ok" ? `ok · lag ${report.log_lag}` : report.status;
    pill.className = `pill ${report.status === "ok" ? "ok" : "bad"}`;
  } catch {
    pill.textContent = "unreachable";
    pill.className = "pill bad";
  }
}

function showLogin(message = "") {
  document.getElementById("login").hidden = false;
  document.getElementById("login-error").textContent = message;
  view.replaceChildren();
}

document.getElementById("login").addEventListener("submit", (event) => {
  event.preventDefault();
  state.token = document.getElementById("token").value.trim();
  localStorage.setItem("mainstem.token", state.token);
  document.getElementById("login").hidden = true;
  render();
});
document.getElementById("close-detail").addEventListener("click", () => {
  document.getElementById("detail").hidden = true;
});
window.addEventListener("hashchange", render);
health();
setInterval(health, 5000);
if (state.token) render();
else showLogin();
