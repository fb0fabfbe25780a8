// The console's audit page: registers on window.llmmux.pages (see pages.py and console.js).
"use strict";
(() => {
  const { h, api, fmt, $, fail } = window.llmmux;

  // -- audit log --

  function audit() {
    const form = $("#audit-filter");
    let oldest = null;
    const change = (changes) => Object.entries(changes).map(([field, [was, now]]) =>
      `${field}: ${JSON.stringify(was)} → ${JSON.stringify(now)}`).join("; ") || "–";
    const load = async (more) => {
      const query = new URLSearchParams({ limit: "50" });
      for (const [k, v] of new FormData(form)) if (v) query.set(k, v);
      if (more && oldest != null) query.set("before", oldest);
      try {
        const data = await api(`/admin/audit?${query}`);
        const rows = data.data.map((r) => h("tr", { "data-action": r.action },
          h("td", {}, fmt.datetime(r.ts)), h("td", {}, r.actor), h("td", {}, h("code", {}, r.action)),
          h("td", { class: "muted" }, r.target || "–"), h("td", { class: "changes" }, change(r.changes))));
        if (more) $("#audit tbody").append(...rows);
        else $("#audit tbody").replaceChildren(...(rows.length ? rows : [h("tr", {}, h("td", { colspan: 5, class: "muted" }, "Nothing recorded."))]));
        oldest = data.next_before;
        $("#audit-more").hidden = data.data.length < 50;
      } catch (error) {
        fail($("#audit tbody"), error);
      }
    };
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      load(false);
    });
    $("#audit-more").addEventListener("click", () => load(true));
    load(false);
  }

  window.llmmux.pages.audit = audit;
})();
