// The console's teams page: registers on window.llmmux.pages (see pages.py and console.js).
"use strict";
(() => {
  const { h, api, fmt, $, fail, keyFields } = window.llmmux;

  // -- teams (and the keys in each) --

  function teamFields(form) {
    const body = keyFields(form);
    if ("alert_at" in body) body.alert_at = Number(body.alert_at);
    return body;
  }

  function teams() {
    const status = $("#team-status");
    const load = async () => {
      try {
        const [data, keyList] = await Promise.all([api("/admin/teams"), api("/admin/keys")]);
        const members = {};
        for (const k of keyList.data) if (k.team_id && k.state === "active") (members[k.team_id] ||= []).push(k.name);
        $("#teams tbody").replaceChildren(...(data.data.length ? data.data.map((t) => {
          const edit = h("form", { class: "grid edit", hidden: true },
            h("label", {}, "Budget ", h("input", { name: "budget", type: "number", step: "any", value: t.budget_usd ?? "" })),
            h("label", {}, "Period ", h("select", { name: "budget_period" },
              ...["monthly", "weekly", "daily", "total"].map((p) => h("option", { selected: p === t.budget_period }, p)))),
            h("label", {}, "Alert at ", h("input", { name: "alert_at", type: "number", step: "0.05", value: t.alert_at ?? "" })),
            h("label", {}, "Requests/min ", h("input", { name: "rpm", type: "number", value: t.rpm ?? "" })),
            h("label", {}, "Tokens/min ", h("input", { name: "tpm", type: "number", value: t.tpm ?? "" })),
            h("label", {}, "Models ", h("input", { name: "models", value: t.models.join(", ") })),
            h("button", { type: "submit" }, "Save"));
          edit.addEventListener("submit", async (e) => {
            e.preventDefault();
            const body = teamFields(edit);
            for (const field of ["budget", "rpm", "tpm", "alert_at"]) if (!(field in body)) body[field] = null;
            if (!("models" in body)) body.models = [];
            try {
              await api(`/admin/teams/${encodeURIComponent(t.id)}`, { method: "PATCH", body });
              load();
            } catch (error) {
              fail(status, error);
            }
          });
          const remove = async () => {
            if (!confirm(`Delete team ${t.name}? Its keys leave it and keep their own limits; its records stay.`)) return;
            try {
              await api(`/admin/teams/${encodeURIComponent(t.id)}`, { method: "DELETE" });
            } catch (error) {
              fail(status, error);
            }
            load();
          };
          const alertAt = t.budget_usd == null ? "" : ` · alert at ${t.alert_at == null ? "the default" : fmt.pct(t.alert_at)}`;
          return h("tr", { "data-team": t.name },
            h("td", {}, h("strong", {}, t.name)), h("td", { class: "muted" }, t.id),
            h("td", {}, t.budget_usd == null ? "no budget" : `${fmt.usd(t.spend_usd || 0)} of ${fmt.usd(t.budget_usd)} ${t.budget_period}${alertAt}`),
            h("td", {}, `${t.rpm ?? "∞"} rpm, ${t.tpm ?? "∞"} tpm`),
            h("td", {}, t.models.length ? t.models.join(", ") : "all"),
            h("td", { class: "members" }, (members[t.id] || []).join(", ") || "none"),
            h("td", { class: "actions" }, h("button", { onclick: () => (edit.hidden = !edit.hidden) }, "Edit"),
              h("button", { class: "danger", onclick: remove }, "Delete"), edit),
          );
        }) : [h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No teams yet."))]));
      } catch (error) {
        fail(status, error);
      }
    };
    $("#create-team").addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        const created = await api("/admin/teams", { method: "POST", body: teamFields(e.target) });
        e.target.reset();
        status.replaceChildren(h("p", { class: "muted" }, `Team ${created.name} created: add keys to it with "team" on the Keys page or llmmux keys update KEY --team ${created.name}.`));
        load();
      } catch (error) {
        fail(status, error);
      }
    });
    load();
  }

  window.llmmux.pages.teams = teams;
})();
