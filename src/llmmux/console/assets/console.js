// llmmux console: fills the server-rendered pages from the admin API.
// No framework and no build step: DOM helpers, fetch, EventSource and SVG drawn by hand.
// Every value from the API reaches the page as text (textContent), never as markup.
"use strict";
(() => {
  const meta = (name) => (document.querySelector(`meta[name="${name}"]`) || {}).content || "";
  const base = meta("ui-base");
  const csrf = meta("csrf-token");
  const page = document.body.dataset.page;
  const detailId = document.body.dataset.id;
  const $ = (sel) => document.querySelector(sel);
  const SVG = "http://www.w3.org/2000/svg";

  // -- helpers --

  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "class") el.className = v;
      else el.setAttribute(k, v === true ? "" : v);
    }
    for (const kid of kids.flat()) {
      if (kid == null || kid === false) continue;
      el.append(kid instanceof Node ? kid : String(kid));
    }
    return el;
  }

  async function api(path, options = {}) {
    const headers = { accept: "application/json" };
    const init = { method: options.method || "GET", headers, credentials: "same-origin" };
    if (options.body !== undefined) {
      headers["content-type"] = "application/json";
      init.body = JSON.stringify(options.body);
    }
    if (init.method !== "GET") headers["x-csrf-token"] = csrf;
    const response = await fetch(path, init);
    if (response.status === 401) {
      location.href = `${base}/login`;
      throw new Error("the session ended");
    }
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error((data.error && data.error.message) || response.statusText);
      error.status = response.status;
      throw error;
    }
    return data;
  }

  const fmt = {
    time: (ts) => (ts ? new Date(ts * 1000).toLocaleTimeString() : "–"),
    datetime: (ts) => (ts ? new Date(ts * 1000).toLocaleString() : "–"),
    ms: (v) => (v == null ? "–" : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${Math.round(v)} ms`),
    usd: (v) => (v == null ? "–" : v === 0 ? "$0" : v < 0.01 ? `$${v.toFixed(5)}` : `$${v.toFixed(2)}`),
    int: (v) => (v == null ? "–" : Number(v).toLocaleString()),
    pct: (v) => (v == null ? "–" : `${(v * 100).toFixed(1)}%`),
    secs: (v) => (v == null ? "–" : v >= 3600 ? `${Math.round(v / 3600)} h` : v >= 60 ? `${Math.round(v / 60)} min` : `${Math.round(v)} s`),
    bytes: (v) => (v == null ? "–" : v >= 1 << 30 ? `${(v / (1 << 30)).toFixed(1)} GB` : v >= 1 << 20 ? `${(v / (1 << 20)).toFixed(0)} MB` : v >= 1 << 10 ? `${(v / (1 << 10)).toFixed(0)} KB` : `${v} B`),
  };

  function statusBadge(status) {
    const kind = status >= 500 ? "bad" : status >= 400 ? "warn" : "ok";
    return h("span", { class: `badge ${kind}` }, status);
  }

  function stateBadge(state) {
    const kind = { active: "ok", degraded: "warn", drained: "off" }[state] || "bad";
    return h("span", { class: `badge ${kind}` }, state);
  }

  function fail(target, error) {
    target.replaceChildren(h("p", { class: "error", role: "alert" }, error.message || String(error)));
  }

  function every(seconds, fn) {
    fn();
    return setInterval(() => {
      if (!document.hidden) fn();
    }, seconds * 1000);
  }

  function pretty(text) {
    if (text == null) return "(not logged)";
    try {
      return JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      return text;
    }
  }

  // -- charts: polylines in an SVG with a fixed viewBox, scaled to the largest value --

  function chart(svg, points, series) {
    const width = 600, height = 150, pad = 28;
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.replaceChildren();
    const max = Math.max(1e-9, ...series.flatMap((s) => points.map((p) => p[s.key] || 0)));
    const x = (i) => pad + (i * (width - pad - 4)) / Math.max(1, points.length - 1);
    const y = (v) => height - 16 - ((v || 0) / max) * (height - 30);
    const line = (x1, y1, x2, y2, cls) => {
      const el = document.createElementNS(SVG, "line");
      Object.entries({ x1, y1, x2, y2, class: cls }).forEach(([k, v]) => el.setAttribute(k, v));
      svg.append(el);
    };
    const text = (tx, ty, content, cls) => {
      const el = document.createElementNS(SVG, "text");
      el.setAttribute("x", tx);
      el.setAttribute("y", ty);
      el.setAttribute("class", cls);
      el.textContent = content;
      svg.append(el);
    };
    line(pad, height - 16, width, height - 16, "axis");
    line(pad, 10, width, 10, "grid");
    const top = max <= 1e-9 ? 0 : max;
    text(2, 14, series[0].format ? series[0].format(top) : +top.toPrecision(3), "label");
    text(2, height - 18, "0", "label");
    if (points.length) {
      text(pad, height - 2, fmt.time(points[0].t), "label");
      text(width - 60, height - 2, fmt.time(points[points.length - 1].t), "label");
    }
    for (const s of series) {
      const path = document.createElementNS(SVG, "polyline");
      path.setAttribute("points", points.map((p, i) => `${x(i).toFixed(1)},${y(p[s.key]).toFixed(1)}`).join(" "));
      path.setAttribute("class", `series ${s.cls || ""}`);
      const title = document.createElementNS(SVG, "title");
      title.textContent = s.label;
      path.append(title);
      svg.append(path);
    }
  }

  function bars(svg, rows, key, labelKey) {
    const width = 900, height = 160, pad = 30;
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.replaceChildren();
    const max = Math.max(1e-9, ...rows.map((r) => r[key] || 0));
    const slot = (width - pad) / Math.max(1, rows.length);
    rows.forEach((r, i) => {
      const barHeight = ((r[key] || 0) / max) * (height - 40);
      const rect = document.createElementNS(SVG, "rect");
      Object.entries({ x: pad + i * slot + 2, y: height - 20 - barHeight, width: Math.max(1, slot - 4), height: barHeight, class: "bar" })
        .forEach(([k, v]) => rect.setAttribute(k, v));
      const title = document.createElementNS(SVG, "title");
      title.textContent = `${r[labelKey] || "(none)"}: ${fmt.usd(r[key])}`;
      rect.append(title);
      svg.append(rect);
      if (rows.length <= 16) {
        const label = document.createElementNS(SVG, "text");
        label.setAttribute("x", pad + i * slot + 2);
        label.setAttribute("y", height - 6);
        label.setAttribute("class", "label");
        label.textContent = String(r[labelKey] || "(none)").slice(0, 18);
        svg.append(label);
      }
    });
  }

  // -- overview --

  function overview() {
    const select = $("#window");
    const load = async () => {
      try {
        const [stats, health] = await Promise.all([
          api(`/admin/stats?window=${select.value}&points=60`),
          api("/admin/providers"),
        ]);
        const series = stats.series;
        const recent = series.slice(-5);
        const sum = (rows, k) => rows.reduce((a, p) => a + (p[k] || 0), 0);
        const last = (k) => [...series].reverse().find((p) => p[k] != null)?.[k];
        const windowRequests = sum(series, "requests");
        const tiles = [
          ["Requests/s (recent)", (sum(recent, "requests") / (recent.length * stats.step_s || 1)).toFixed(2)],
          ["Error rate (window)", fmt.pct(windowRequests ? sum(series, "errors") / windowRequests : 0)],
          ["p95 latency", fmt.ms(last("p95_ms"))],
          ["TTFT p50", fmt.ms(last("ttft_p50_ms"))],
          ["llmmux overhead", last("overhead_ms") == null ? "–" : `${last("overhead_ms").toFixed(2)} ms`],
          ["Requests today", fmt.int(stats.today.requests)],
          ["Tokens today", fmt.int(stats.today.tokens)],
          ["Spend today", fmt.usd(stats.today.cost_usd)],
          ["Gateway", health.status],
        ];
        $("#tiles").replaceChildren(...tiles.map(([label, value]) => h("div", { class: "tile" }, h("span", {}, label), h("strong", {}, value))));
        chart($("#chart-rps"), series, [{ key: "rps", label: "requests/s" }]);
        chart($("#chart-errors"), series, [{ key: "error_rate", label: "error rate", cls: "bad", format: fmt.pct }]);
        chart($("#chart-latency"), series, [{ key: "p50_ms", label: "p50" }, { key: "p95_ms", label: "p95", cls: "alt" }]);
        chart($("#chart-ttft"), series, [{ key: "ttft_p50_ms", label: "TTFT p50" }]);
        chart($("#chart-tokens"), series, [{ key: "tokens", label: "tokens" }]);
        chart($("#chart-overhead"), series, [{ key: "overhead_ms", label: "overhead ms" }]);
        const unhealthy = health.providers.filter((p) => p.state !== "active");
        $("#unhealthy tbody").replaceChildren(
          ...(unhealthy.length
            ? unhealthy.map((p) => h("tr", {}, h("td", {}, p.name), h("td", {}, stateBadge(p.state)), h("td", {}, p.reason || p.last_error || ""), h("td", {}, fmt.secs(p.retry_in_s))))
            : [h("tr", {}, h("td", { colspan: 4, class: "muted" }, "Every provider is active."))]),
        );
        $("#updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
      } catch (error) {
        fail($("#tiles"), error);
      }
    };
    select.addEventListener("change", load);
    every(5, load);
  }

  // -- requests: the log, the search and the live tail --

  function requestRow(r) {
    const tokens = r.total_tokens != null ? r.total_tokens : (r.prompt_tokens || 0) + (r.completion_tokens || 0);
    return h(
      "tr",
      { class: "link", "data-request-id": r.request_id, "data-instance": r.instance, title: r.instance ? `served by ${r.instance}` : null, onclick: () => (location.href = `${base}/requests/${encodeURIComponent(r.request_id)}`) },
      h("td", {}, fmt.time(r.ts)),
      h("td", {}, r.public_model || "–"),
      h("td", {}, r.provider ? `${r.provider}${r.model ? " / " + r.model : ""}` : "–"),
      h("td", {}, statusBadge(r.status), r.error_kind ? h("span", { class: "muted" }, ` ${r.error_kind}`) : null),
      h("td", {}, fmt.ms(r.latency_ms)),
      h("td", {}, fmt.int(tokens)),
      h("td", {}, fmt.usd(r.cost_usd)),
      h("td", {}, r.key_id || "–"),
      h("td", {}, r.client_api || ""),
    );
  }

  function requests() {
    const form = $("#search");
    const body = $("#requests tbody");
    const more = $("#more");
    let before = null;
    let source = null;
    const params = () => {
      const q = new URLSearchParams();
      for (const [k, v] of new FormData(form)) if (v) q.set(k, v);
      return q;
    };
    const search = async (append) => {
      const q = params();
      q.set("limit", "50");
      if (append && before) q.set("before", before);
      try {
        const result = await api(`/admin/requests?${q}`);
        const rows = result.data.map(requestRow);
        if (append) body.append(...rows);
        else body.replaceChildren(...(rows.length ? rows : [h("tr", { class: "empty" }, h("td", { colspan: 9, class: "muted" }, "No requests match."))]));
        before = result.next_before;
        more.hidden = !before;
      } catch (error) {
        fail($("#tail-state"), error);
      }
    };
    const matches = (event) => {
      const q = params();
      if (q.get("q")) return false; // words in bodies: only the server can tell
      for (const [field, key] of [["model", "public_model"], ["provider", "provider"], ["key", "key_id"], ["status", "status"], ["error_kind", "error_kind"]]) {
        if (q.get(field) && String(event[key]) !== q.get(field)) return false;
      }
      return true;
    };
    const tail = () => {
      if (source) source.close();
      source = null;
      if (!$("#live").checked) {
        $("#tail-state").textContent = "tail paused";
        return;
      }
      source = new EventSource("/admin/requests/stream");
      source.onopen = () => ($("#tail-state").textContent = "live");
      source.onerror = () => ($("#tail-state").textContent = "reconnecting…");
      source.addEventListener("request", (message) => {
        const event = JSON.parse(message.data);
        if (!matches(event)) return;
        body.querySelector("tr.empty")?.remove();
        const row = requestRow(event);
        row.classList.add("fresh");
        body.prepend(row);
        while (body.children.length > 500) body.lastChild.remove();
      });
    };
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      search(false);
    });
    more.addEventListener("click", () => search(true));
    api("/admin/stats?window=15m&points=1").then((stats) => {
      const log = stats.body_log;
      $("#body-log").textContent = !log ? "· body logging off" : log.dropped ? `· ${fmt.int(log.dropped)} bodies dropped (the store fell behind)` : "· bodies logged";
    }).catch(() => {});
    $("#live").addEventListener("change", tail);
    search(false);
    tail();
  }

  async function requestDetail() {
    const target = $("#detail");
    let row = null;
    for (let tries = 0; tries < 10 && !row; tries++) {
      try {
        row = await api(`/admin/requests/${encodeURIComponent(detailId)}`);
      } catch (error) {
        if (error.status !== 404 || tries === 9) return fail(target, error);
        await new Promise((r) => setTimeout(r, 500)); // the ledger writes in batches
      }
    }
    const facts = [
      ["Request id", row.request_id], ["Time", fmt.datetime(row.ts)], ["Model", row.public_model],
      ["Answered by", row.provider ? `${row.provider} / ${row.model}` : "nobody"], ["Status", row.status],
      ["Error", row.error_kind || "–"], ["Client API", row.client_api], ["Key", row.key_id || "–"],
      ["Stream", row.stream ? "yes" : "no"], ["Latency", fmt.ms(row.latency_ms)], ["Upstream", fmt.ms(row.upstream_ms)],
      ["Time to first token", fmt.ms(row.ttft_ms)], ["Overhead", fmt.ms(row.latency_ms - row.upstream_ms)],
      ["Prompt tokens", fmt.int(row.prompt_tokens)], ["Completion tokens", fmt.int(row.completion_tokens)],
      ["Cached tokens", fmt.int(row.cached_tokens)], ["Estimated", row.estimated ? "yes" : "no"], ["Cost", fmt.usd(row.cost_usd)],
    ];
    const attempts = [
      ...row.failed_attempts.map((a) => ({ ...a, ok: false })),
      ...(row.provider ? [{ provider: row.provider, model: row.model, ok: row.status < 400, elapsed_ms: row.upstream_ms, error: row.status < 400 ? "answered" : row.error_kind }] : []),
    ];
    const longest = Math.max(1, ...attempts.map((a) => a.elapsed_ms || 0));
    const timeline = h("ol", { class: "timeline", id: "attempts" }, ...attempts.map((a, i) => h(
      "li", { class: a.ok ? "ok" : "bad" },
      h("span", { class: "who" }, `${i + 1}. ${a.provider} / ${a.model}`),
      h("span", { class: "barwrap" }, h("span", { class: "bar", style: null, "data-w": Math.max(2, (100 * (a.elapsed_ms || 0)) / longest).toFixed(0) })),
      h("span", {}, `${fmt.ms(a.elapsed_ms)} · ${a.error}${a.status ? " " + a.status : ""}`),
      a.message ? h("div", { class: "muted" }, a.message) : null,
    )));
    const bodies = row.bodies;
    const headers = bodies ? Object.entries(bodies.headers) : [];
    target.replaceChildren(
      h("dl", { class: "facts" }, ...facts.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v == null ? "–" : v)])),
      h("h2", {}, "Attempts"),
      attempts.length ? timeline : h("p", { class: "muted" }, "No upstream was tried (refused before routing)."),
      h("h2", {}, "Headers"),
      bodies ? h("table", { class: "rows", id: "headers" }, h("tbody", {}, ...headers.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, v)))))
        : h("p", { class: "muted" }, row.body_logging ? "Not logged for this model." : "Body logging is off (logging.bodies)."),
      h("h2", {}, "Request body"),
      h("pre", { class: "code", id: "request-body" }, bodies ? pretty(bodies.request) : "(not logged)"),
      h("h2", {}, "Response body"),
      h("pre", { class: "code", id: "response-body" }, bodies ? pretty(bodies.response) : "(not logged)"),
    );
    // Widths set from script: the page's CSP allows no inline style attributes in the markup.
    target.querySelectorAll(".bar[data-w]").forEach((bar) => (bar.style.width = `${bar.dataset.w}%`));
  }

  // -- providers --

  function providers() {
    const load = async () => {
      try {
        const data = await api("/admin/providers");
        $("#providers tbody").replaceChildren(...data.providers.map((p) => {
          const act = (action) => async () => {
            try {
              await api(`/admin/providers/${encodeURIComponent(p.name)}/${action}`, { method: "POST" });
            } catch (error) {
              alert(error.message);
            }
            load();
          };
          const probe = p.last_probe;
          return h("tr", { "data-provider": p.name },
            h("td", {}, h("strong", {}, p.name), h("div", { class: "muted" }, p.type || "", " ", p.base_url || "")),
            h("td", {}, stateBadge(p.state), p.routable ? null : h("div", { class: "muted" }, "not routable")),
            h("td", { class: "why" }, p.reason || "", p.last_error ? h("div", { class: "error" }, p.last_error) : null),
            h("td", {}, fmt.ms(p.latency_ms)),
            h("td", {}, fmt.ms(p.ttft_ms)),
            h("td", {}, fmt.int(p.in_flight)),
            h("td", {}, p.error_rate == null ? "–" : fmt.pct(p.error_rate), h("div", { class: "muted" }, `${p.consecutive_failures} in a row`)),
            h("td", {}, p.state === "drained" ? "until put back" : p.retry_in_s == null ? `for ${fmt.secs(p.since_s)}` : `retry in ${fmt.secs(p.retry_in_s)}`),
            h("td", {}, probe ? `${probe.ok ? "ok" : "failed"} ${fmt.ms(probe.latency_ms)}, ${fmt.secs(probe.age_s)} ago` : "–"),
            h("td", { class: "actions" },
              h("button", { onclick: act("probe") }, "Probe now"),
              p.state === "drained"
                ? h("button", { onclick: act("restore"), class: "primary" }, "Put back")
                : h("button", { onclick: act("drain"), class: "danger" }, "Take out"),
            ),
          );
        }));
        $("#skipped").replaceChildren(...data.skipped.map((s) => h("p", { class: "muted" }, `${s.name} is not routed: ${s.reason}`)));
      } catch (error) {
        fail($("#skipped"), error);
      }
    };
    every(5, load);
  }

  // -- routes and try it --

  // The explanation keeps every candidate in order and lists, as its health step, those skipped now.
  function liveOrder(explanation) {
    const health = explanation.steps.find((s) => s.step === "health");
    const skipped = new Set(health ? health.dropped.map((d) => d.candidate) : []);
    const live = explanation.order.map((o) => o.candidate).filter((c) => !skipped.has(c));
    return (live.join(" → ") || "(none routable)") + (skipped.size ? ` (skipping ${[...skipped].join(", ")})` : "");
  }

  function routes() {
    const load = async () => {
      const data = await api("/admin/routes");
      const select = $("#try-model");
      if (!select.options.length) select.replaceChildren(...data.data.map((r) => h("option", {}, r.model)));
      $("#routes tbody").replaceChildren(...data.data.map((r) => h("tr", {},
        h("td", {}, h("strong", {}, r.model)),
        h("td", {}, r.source),
        h("td", {}, h("ol", {}, ...r.candidates.map((c) => h("li", {}, c.candidate, c.tier ? h("span", { class: "muted" }, ` tier ${c.tier}`) : null)))),
        h("td", {}, h("details", {}, h("summary", {}, liveOrder(r.explanation)),
          h("ul", {}, ...r.explanation.route.map((line) => h("li", {}, line)),
            ...r.explanation.steps.map((s) => h("li", {}, `${s.step}: ${s.detail}`, ...s.dropped.map((d) => h("div", { class: "muted" }, `dropped ${d.candidate}: ${d.why}`)))))),
        ),
      )));
    };
    $("#try").addEventListener("submit", async (e) => {
      e.preventDefault();
      const form = new FormData(e.target);
      const out = $("#try-result");
      out.replaceChildren(h("p", { class: "muted" }, "Sending…"));
      try {
        const r = await api("/admin/try", { method: "POST", body: { model: form.get("model"), prompt: form.get("prompt"), max_tokens: Number(form.get("max_tokens")) } });
        out.replaceChildren(
          r.error ? h("p", { class: "error" }, `${r.error.status} ${r.error.code}: ${r.error.message}`) : h("blockquote", { id: "try-reply" }, r.reply),
          h("dl", { class: "facts" },
            ...[["Answered by", r.provider ? `${r.provider} / ${r.upstream_model}` : "nobody"], ["Latency", fmt.ms(r.latency_ms)],
              ["Upstream", fmt.ms(r.upstream_ms)], ["Tokens", `${fmt.int(r.prompt_tokens)} in, ${fmt.int(r.completion_tokens)} out`],
              ["Cost", fmt.usd(r.cost_usd)], ["Failed attempts", (r.failed_attempts || []).map((a) => `${a.provider}: ${a.error}`).join("; ") || "none"]]
              .flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
          h("p", {}, h("a", { href: `${base}/requests/${encodeURIComponent(r.request_id)}` }, "Open this request")),
        );
      } catch (error) {
        fail(out, error);
      }
    });
    load().catch((error) => fail($("#try-result"), error));
  }

  // -- usage --

  function usage() {
    const form = $("#usage-form");
    const load = async () => {
      const q = new URLSearchParams(new FormData(form));
      $("#csv").href = `/admin/usage?${q}&format=csv`;
      try {
        const data = await api(`/admin/usage?${q}`);
        const rows = data.rows.map((r) => ({ ...r, label: r.name ? `${r.name} (${r.group || "–"})` : r.group || "(none)" }));
        bars($("#chart-usage"), rows, "cost_usd", "label");
        const total = { ...data.totals, label: "Total" };
        $("#usage tbody").replaceChildren(...[...rows, total].map((r) => h("tr", { class: r === total ? "total" : null },
          h("td", {}, r.label), h("td", {}, fmt.int(r.requests)), h("td", {}, fmt.int(r.errors)),
          h("td", {}, fmt.int(r.prompt_tokens)), h("td", {}, fmt.int(r.completion_tokens)), h("td", {}, fmt.usd(r.cost_usd)),
          h("td", {}, fmt.ms(r.p50_latency_ms)), h("td", {}, fmt.ms(r.p95_latency_ms)))));
      } catch (error) {
        fail($("#usage tbody"), error);
      }
    };
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      load();
    });
    load();
  }

  // -- keys --

  function keyFields(form) {
    const body = {};
    for (const [k, v] of new FormData(form)) {
      if (v === "") continue;
      if (["budget", "rpm", "tpm"].includes(k)) body[k] = Number(v);
      else if (k === "models") body.models = v.split(",").map((m) => m.trim()).filter(Boolean);
      else body[k] = v;
    }
    return body;
  }

  function keys() {
    const load = async () => {
      try {
        const data = await api("/admin/keys");
        $("#keys tbody").replaceChildren(...data.data.map((k) => {
          const edit = h("form", { class: "grid edit", hidden: true },
            h("label", {}, "Budget ", h("input", { name: "budget", type: "number", step: "0.01", value: k.budget_usd ?? "" })),
            h("label", {}, "Requests/min ", h("input", { name: "rpm", type: "number", value: k.rpm ?? "" })),
            h("label", {}, "Tokens/min ", h("input", { name: "tpm", type: "number", value: k.tpm ?? "" })),
            h("label", {}, "Models ", h("input", { name: "models", value: k.models.join(", ") })),
            h("label", {}, "Expires ", h("input", { name: "expires", placeholder: "30d" })),
            h("button", { type: "submit" }, "Save"));
          edit.addEventListener("submit", async (e) => {
            e.preventDefault();
            const body = keyFields(edit);
            for (const field of ["budget", "rpm", "tpm"]) if (!(field in body)) body[field] = null;
            if (!("models" in body)) body.models = [];
            try {
              await api(`/admin/keys/${encodeURIComponent(k.id)}`, { method: "PATCH", body });
              load();
            } catch (error) {
              alert(error.message);
            }
          });
          const revoke = async () => {
            if (!confirm(`Revoke key ${k.name}? Clients using it are refused from now on.`)) return;
            try {
              await api(`/admin/keys/${encodeURIComponent(k.id)}`, { method: "DELETE" });
            } catch (error) {
              alert(error.message);
            }
            load();
          };
          return h("tr", { "data-key": k.name },
            h("td", {}, h("strong", {}, k.name)), h("td", { class: "muted" }, k.id), h("td", {}, k.key_hint),
            h("td", {}, stateBadge(k.state === "active" ? "active" : k.state)),
            h("td", {}, k.budget_usd == null ? "no budget" : `${fmt.usd(k.spend_usd || 0)} of ${fmt.usd(k.budget_usd)} ${k.budget_period}`),
            h("td", {}, `${k.rpm ?? "∞"} rpm, ${k.tpm ?? "∞"} tpm`),
            h("td", {}, k.models.length ? k.models.join(", ") : "all"),
            h("td", {}, k.expires_at || "never"),
            h("td", { class: "actions" },
              k.state === "active" ? h("button", { onclick: () => (edit.hidden = !edit.hidden) }, "Edit") : null,
              k.state === "active" ? h("button", { class: "danger", onclick: revoke }, "Revoke") : null, edit),
          );
        }));
      } catch (error) {
        fail($("#new-secret"), error);
      }
    };
    $("#create-key").addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        const created = await api("/admin/keys", { method: "POST", body: keyFields(e.target) });
        e.target.reset();
        $("#new-secret").replaceChildren(h("div", { class: "secret" },
          h("p", {}, `Key ${created.name} created. Copy its secret now: it is not shown again.`),
          h("code", { id: "secret" }, created.key),
          h("button", { onclick: (ev) => { navigator.clipboard?.writeText(created.key); ev.target.textContent = "Copied"; } }, "Copy"),
          h("button", { onclick: () => $("#new-secret").replaceChildren() }, "Done")));
        load();
      } catch (error) {
        fail($("#new-secret"), error);
      }
    });
    load();
  }

  // -- local models --

  function local() {
    const load = async () => {
      try {
        const data = await api("/admin/models");
        const act = (row, action) => async () => {
          try {
            await api(`/admin/models/${encodeURIComponent(row.model)}/${action}`, { method: "POST", body: { provider: row.provider } });
          } catch (error) {
            alert(error.message);
          }
          load();
        };
        $("#local tbody").replaceChildren(...(data.data.length ? data.data.map((m) => h("tr", { "data-model": m.model, "data-provider": m.provider },
          h("td", {}, h("strong", {}, m.model)), h("td", {}, m.provider), h("td", {}, m.kind), h("td", {}, stateBadge(m.state === "ready" ? "active" : m.state)),
          h("td", {}, fmt.bytes(m.memory)), h("td", {}, fmt.int(m.in_flight)), h("td", {}, fmt.int(m.queued)),
          h("td", {}, m.expires_at ? fmt.datetime(m.expires_at) : "–"),
          h("td", { class: "actions" }, h("button", { onclick: act(m, "load") }, "Load"), h("button", { onclick: act(m, "unload") }, "Unload")),
        )) : [h("tr", {}, h("td", { colspan: 9, class: "muted" }, "No local models are configured."))]));
      } catch (error) {
        fail($("#local tbody"), error);
      }
    };
    every(5, load);
  }

  // -- config --

  function config() {
    const problems = (result) => {
      $("#config-status").textContent = result.source ? `${result.ok ? "valid" : "invalid"}: ${result.source}` : result.note || "";
      $("#problems").replaceChildren(...result.problems.map((p) => h("p", { class: p.level === "error" ? "error" : "warn" }, `${p.level}: ${p.file}: ${p.path}: ${p.message}`)));
    };
    $("#validate").addEventListener("click", () => api("/admin/config/validate").then(problems).catch((e) => fail($("#problems"), e)));
    $("#reload").addEventListener("click", async () => {
      try {
        const result = await api("/admin/config/reload", { method: "POST" });
        problems(result);
        $("#config-status").textContent += result.reloaded ? " · reloaded" : " · not reloaded";
        load();
      } catch (error) {
        fail($("#problems"), error);
      }
    });
    const load = () => api("/admin/config").then((c) => ($("#config").textContent = JSON.stringify(c, null, 2))).catch((e) => fail($("#problems"), e));
    load();
  }

  // A page with a script of its own (assets/<page>.js, see pages.py) adds itself here.
  const pages = { overview, requests: detailId ? requestDetail : requests, providers, routes, usage, keys, local, config };
  window.llmmux = { pages, h, api, fmt, $, every, fail, keyFields, pretty, chart, bars, statusBadge, stateBadge, base, csrf, page, detailId };
  // Deferred scripts run in order, all before DOMContentLoaded: a page's own script has registered by then.
  document.addEventListener("DOMContentLoaded", () => {
    if (pages[page]) pages[page]();
  });
})();
