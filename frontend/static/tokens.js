// My API tokens: create (shown once; an admin may make it a worker token, which acts only
// as a worker over /api/worker), list with their scope, revoke. My webhooks: add (secret
// shown once), list with their latest deliveries, ping, delete. An admin's team and audit
// trail are on the users page (users.js); a refused action is said under its table.
import { el, getJSON, send, when, whoami, withLogin } from "./api.js";

// a refused request's reason, one line per field ("url: must be an http:// or https:// URL")
const reason = (res) => (Array.isArray(res.body?.detail)
  ? res.body.detail.map((e) => `${(e.loc || []).slice(1).join(".")}: ${e.msg}`).join("\n")
  : String(res.body?.detail ?? `HTTP ${res.status}`));

// an action's answer under its table: the refusal with its status, or nothing
function said(id, res) {
  document.getElementById(id).textContent = res.ok ? "" : `HTTP ${res.status} — ${reason(res)}`;
}

function deliveryText(d) {
  if (!d) return "no deliveries yet";
  const code = d.last_status_code ? ` (${d.last_status_code})` : "";
  const tries = `${d.attempts} attempt${d.attempts === 1 ? "" : "s"}`;
  if (d.status === "delivered") return `${d.event} delivered${code}, ${tries}, ${when(d.delivered_at)}`;
  const why = d.last_error ? ` — ${d.last_error}` : "";
  if (d.status === "failed") return `${d.event} failed after ${tries}${why}`;
  return `${d.event} pending, ${tries}${why}${d.next_attempt_at ? `; next ${when(d.next_attempt_at)}` : ""}`;
}

async function drawHooks() {
  const hooks = await getJSON("/api/webhooks");
  const recent = await Promise.all(hooks.map((h) => getJSON(`/api/webhooks/${h.id}/deliveries?limit=10`)));
  const rows = hooks.map((h, i) => {
    const test = el("button", { type: "button", "aria-label": `test webhook ${h.id}` }, "Test");
    test.onclick = async () => { said("hooks-error", await send("POST", `/api/webhooks/${h.id}/test`)); drawHooks(); };
    const del = el("button", { type: "button", "aria-label": `delete webhook ${h.id}` }, "Delete");
    del.onclick = async () => { said("hooks-error", await send("DELETE", `/api/webhooks/${h.id}`)); drawHooks(); };
    const log = el("details", {}, el("summary", {}, deliveryText(recent[i][0])),
      el("ul", { class: "deliveries" }, ...recent[i].map((d) => el("li", {},
        `${when(d.created_at)}: ${deliveryText(d)}`))));
    return el("tr", { "data-hook": h.id }, el("td", { class: "hook-url" }, h.url),
      el("td", {}, h.events.join(", ")), el("td", {}, when(h.created_at)),
      el("td", { class: "hook-last" }, recent[i].length ? log : deliveryText(null)),
      el("td", {}, test, " ", del));
  });
  document.getElementById("hook-rows").replaceChildren(...rows);
}

async function hookSection() {
  const openapi = await getJSON("/openapi.json");
  const events = openapi.components.schemas.WebhookCreate.properties.events.anyOf[0].items.enum;
  const url = el("input", { id: "hook-url", required: "", size: 44, placeholder: "https://lab.example/neuroreg-hook" });
  const boxes = events.map((e) => el("input", { type: "checkbox", value: e, checked: "", id: `hook-ev-${e}` }));
  const form = el("form", { id: "hook-form" },
    el("label", { for: "hook-url" }, "URL "), url, " ",
    el("fieldset", { class: "hook-events" }, el("legend", {}, "Events"),
      ...boxes.flatMap((b) => [b, el("label", { for: b.id }, b.value), " "])),
    el("button", {}, "Add webhook"));
  const shown = el("div", { id: "new-hook" });
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const res = await send("POST", "/api/webhooks",
      { url: url.value.trim(), events: boxes.filter((b) => b.checked).map((b) => b.value) });
    if (!res.ok) { shown.replaceChildren(el("p", { class: "error", id: "hook-error" }, reason(res))); return; }
    shown.replaceChildren(el("p", {}, `Webhook ${res.body.id} added. Its signing secret — copy it now, it will not be shown again:`),
      el("p", { class: "secret", id: "new-hook-secret" }, res.body.secret));
    url.value = "";
    drawHooks();
  });
  return [el("h2", {}, "My webhooks"),
    el("p", { class: "hint" }, "Each is sent a JSON POST when one of your runs (run.*) or studies (study.*) finishes, signed with its secret in X-Neuroreg-Signature (sha256=HMAC of the body); failed deliveries are retried with backoff. A URL must reach a public address (no loopback or private network, unless the admin allows it); a delivery shows the HTTP status your receiver answered, or that nothing answered in time."),
    form, shown,
    el("table", { id: "hook-table" }, el("thead", {}, el("tr", {}, el("th", {}, "URL"), el("th", {}, "events"),
      el("th", {}, "created"), el("th", {}, "latest delivery"), el("th", {}, ""))), el("tbody", { id: "hook-rows" })),
    el("p", { class: "error", id: "hooks-error", role: "alert" })];
}

async function draw() {
  const tokens = await getJSON("/api/tokens");
  const rows = tokens.map((t) => el("tr", { "data-token": t.id },
    el("td", {}, t.name), el("td", { class: "token-scope" }, t.scope), el("td", {}, when(t.created_at)),
    el("td", {}, t.revoked_at ? `revoked ${when(t.revoked_at)}` : "active"),
    el("td", {}, t.revoked_at ? "" : (() => {
      const b = el("button", { type: "button", "aria-label": `revoke ${t.name}` }, "Revoke");
      b.onclick = async () => { said("tokens-error", await send("DELETE", `/api/tokens/${t.id}`)); draw(); };
      return b;
    })())));
  document.getElementById("token-rows").replaceChildren(...rows);
}

withLogin(async () => {
  const page = document.getElementById("page");
  page.hidden = false;
  const nameInput = el("input", { id: "token-name", required: "", size: 30, placeholder: "laptop" });
  const admin = (await whoami()).role === "admin";
  // an admin's worker tokens: for a worker that reaches the service over its API only
  const workerBox = admin ? el("input", { type: "checkbox", id: "token-worker" }) : null;
  const form = el("form", { id: "token-form" }, el("label", { for: "token-name" }, "New token name "),
    nameInput, " ",
    ...(workerBox ? [workerBox, el("label", { for: "token-worker" }, "worker token (for a worker over the API)"), " "] : []),
    el("button", {}, "Create"));
  const shown = el("div", { id: "new-token" });
  page.replaceChildren(el("h1", {}, "My API tokens"),
    el("p", { class: "hint" }, "Scripts and the CLI use a token as NEUROREG_TOKEN. A new token is shown once; only its hash is stored."
      + (admin ? " A worker token acts only as a worker (NEUROREG_WORKER_TOKEN, with NEUROREG_API_URL and the broker; no database), never as you." : "")),
    form, shown,
    el("table", { id: "token-table" }, el("thead", {}, el("tr", {}, el("th", {}, "name"), el("th", {}, "scope"),
      el("th", {}, "created"), el("th", {}, "state"), el("th", {}, ""))), el("tbody", { id: "token-rows" })),
    el("p", { class: "error", id: "tokens-error", role: "alert" }),
    ...await hookSection(),
    ...(admin ? [el("p", { class: "hint", id: "users-link" }, "The team's users and tokens, and the audit trail: ",
      el("a", { href: "/users" }, "Users"), ".")] : []));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const scope = workerBox?.checked ? "worker" : "member";
    const res = await send("POST", "/api/tokens", { name: nameInput.value, scope });
    if (!res.ok) { shown.replaceChildren(el("p", { class: "error" }, `HTTP ${res.status} — ${reason(res)}`)); return; }
    const worker = res.body.scope === "worker";
    shown.replaceChildren(el("p", {}, `${worker ? "Worker token" : "Token"} “${res.body.name}” — copy it now, it will not be shown again:`),
      el("p", { class: "secret", id: "new-token-value" }, res.body.token),
      ...(worker ? [el("p", { class: "hint" }, "A worker on another machine needs no database, only the broker (NEUROREG_BROKER_URL) and:"),
        el("p", { class: "secret", id: "new-token-use" },
          `NEUROREG_API_URL=${location.origin} NEUROREG_WORKER_TOKEN=${res.body.token} neuroreg worker`)] : []));
    nameInput.value = "";
    if (workerBox) workerBox.checked = false;
    draw();
  });
  await Promise.all([draw(), drawHooks()]);
});
