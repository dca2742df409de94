// My API tokens: create (shown once), list, revoke.
import { el, getJSON, send, when, withLogin } from "./api.js";

async function draw() {
  const tokens = await getJSON("/api/tokens");
  const rows = tokens.map((t) => el("tr", {},
    el("td", {}, t.name), el("td", {}, when(t.created_at)),
    el("td", {}, t.revoked_at ? `revoked ${when(t.revoked_at)}` : "active"),
    el("td", {}, t.revoked_at ? "" : (() => {
      const b = el("button", { type: "button", "aria-label": `revoke ${t.name}` }, "Revoke");
      b.onclick = async () => { await send("DELETE", `/api/tokens/${t.id}`); draw(); };
      return b;
    })())));
  document.getElementById("token-rows").replaceChildren(...rows);
}

withLogin(async () => {
  const page = document.getElementById("page");
  page.hidden = false;
  const nameInput = el("input", { id: "token-name", required: "", size: 30, placeholder: "laptop" });
  const form = el("form", { id: "token-form" }, el("label", { for: "token-name" }, "New token name "),
    nameInput, " ", el("button", {}, "Create"));
  const shown = el("div", { id: "new-token" });
  page.replaceChildren(el("h1", {}, "My API tokens"),
    el("p", { class: "hint" }, "Scripts and the CLI use a token as NEUROREG_TOKEN. A new token is shown once; only its hash is stored."),
    form, shown,
    el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "name"), el("th", {}, "created"),
      el("th", {}, "state"), el("th", {}, ""))), el("tbody", { id: "token-rows" })));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const res = await send("POST", "/api/tokens", { name: nameInput.value });
    if (!res.ok) { shown.replaceChildren(el("p", { class: "error" }, JSON.stringify(res.body.detail))); return; }
    shown.replaceChildren(el("p", {}, `Token “${res.body.name}” — copy it now, it will not be shown again:`),
      el("p", { class: "secret", id: "new-token-value" }, res.body.token));
    nameInput.value = "";
    draw();
  });
  await draw();
});
