"""The console's HTML: one layout, and each page's frame (headings, filters, empty tables, chart slots).

The frames are static; `console.js` fills them from the admin API. Nothing that varies
per request is written here except the base path and the session's CSRF token, both
escaped, so no page can carry data from the ledger or a client into the HTML.

Adding a page is one row in `PAGES` (its navigation label and frame) and, for its script,
one file `assets/<name>.js` that registers the function filling the frame:

    llmmux.pages.teams = () => { llmmux.api("/admin/teams").then(...) };

The layout loads that file on the page's own screen (after console.js, whose helpers it
uses through `window.llmmux`), and the navigation lists the page in `PAGES`'s order.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from importlib import resources

from .team_pages import FRAMES as TEAM_FRAMES
from .team_pages import TITLES


@dataclass(frozen=True, slots=True)
class Page:
    label: str  # in the navigation and the heading
    frame: str  # the static HTML the page's script fills
    detail: bool = False  # also serves <page>/<id> (one item), with the id in body[data-id]


_FRAMES: dict[str, str] = {
    "overview": """
<section class="tiles" id="tiles"></section>
<section class="toolbar"><label>Window <select id="window">
  <option value="15m">15 minutes</option><option value="1h" selected>1 hour</option>
  <option value="6h">6 hours</option><option value="24h">24 hours</option></select></label>
  <span class="muted" id="updated"></span></section>
<section class="charts">
  <figure><figcaption>Requests/s</figcaption><svg id="chart-rps" class="chart"></svg></figure>
  <figure><figcaption>Error rate</figcaption><svg id="chart-errors" class="chart"></svg></figure>
  <figure><figcaption>Latency p50 / p95 (ms)</figcaption><svg id="chart-latency" class="chart"></svg></figure>
  <figure><figcaption>Time to first token p50 (ms)</figcaption><svg id="chart-ttft" class="chart"></svg></figure>
  <figure><figcaption>Tokens</figcaption><svg id="chart-tokens" class="chart"></svg></figure>
  <figure><figcaption>llmmux overhead (ms, mean)</figcaption><svg id="chart-overhead" class="chart"></svg></figure>
</section>
<h2>Providers that need attention</h2>
<table id="unhealthy"><thead><tr><th>Provider</th><th>State</th><th>Why</th><th>Retry in</th></tr></thead>
<tbody></tbody></table>""",
    "requests": """
<form id="search" class="toolbar">
  <input name="q" placeholder="words in prompts and replies" size="28">
  <input name="model" placeholder="model" size="12"><input name="provider" placeholder="provider" size="12">
  <input name="key" placeholder="key id" size="12"><input name="status" placeholder="status" size="5">
  <input name="error_kind" placeholder="error kind" size="12">
  <select name="since"><option value="">any time</option><option value="15m">15 min</option>
    <option value="1h">1 hour</option><option value="24h">24 hours</option><option value="7d">7 days</option></select>
  <button type="submit">Search</button>
  <label class="live"><input type="checkbox" id="live" checked> live tail</label>
  <span id="tail-state" class="muted"></span> <span id="body-log" class="muted"></span>
</form>
<table id="requests" class="rows"><thead><tr><th>Time</th><th>Model</th><th>Provider</th><th>Status</th>
<th>Latency</th><th>Tokens</th><th>Cost</th><th>Key</th><th>Via</th></tr></thead><tbody></tbody></table>
<p><button id="more" hidden>Older</button></p>""",
    "request": """
<section id="detail"><p class="muted">Loading…</p></section>""",
    "providers": """
<table id="providers" class="rows"><thead><tr><th>Provider</th><th>State</th><th>Why / last error</th>
<th>Latency</th><th>TTFT</th><th>In flight</th><th>Errors</th><th>Timer</th><th>Probe</th><th></th></tr></thead>
<tbody></tbody></table>
<div id="skipped"></div>""",
    "routes": """
<section class="try">
<h2>Try it</h2>
<form id="try" class="toolbar"><select name="model" id="try-model"></select>
<input name="prompt" id="try-prompt" placeholder="a prompt" size="50" required>
<input name="max_tokens" type="number" value="128" min="1" max="4096">
<button type="submit">Send</button></form>
<div id="try-result"></div>
</section>
<h2>Routes</h2>
<table id="routes" class="rows"><thead><tr><th>Public name</th><th>Matched by</th><th>Candidates</th>
<th>Order now</th></tr></thead><tbody></tbody></table>""",
    "usage": """
<form id="usage-form" class="toolbar">
<label>Since <select name="since"><option value="24h">24 hours</option><option value="7d" selected>7 days</option>
<option value="30d">30 days</option></select></label>
<label>By <select name="by"><option value="model">model</option><option value="provider">provider</option>
<option value="key">key</option><option value="day">day</option><option value="upstream">upstream</option></select></label>
<button type="submit">Show</button> <a id="csv" class="button" href="#" download="usage.csv">CSV</a></form>
<figure><figcaption>Spend (USD)</figcaption><svg id="chart-usage" class="chart wide"></svg></figure>
<table id="usage" class="rows"><thead><tr><th>Group</th><th>Requests</th><th>Errors</th><th>Prompt</th>
<th>Completion</th><th>Cost (USD)</th><th>p50 ms</th><th>p95 ms</th></tr></thead><tbody></tbody></table>""",
    "keys": """
<details class="create"><summary>Create a key</summary>
<form id="create-key" class="grid">
<label>Name <input name="name" required></label>
<label>Budget (USD) <input name="budget" type="number" step="0.01" min="0"></label>
<label>Period <select name="budget_period"><option>monthly</option><option>weekly</option><option>daily</option>
<option>total</option></select></label>
<label>Requests/min <input name="rpm" type="number" min="1"></label>
<label>Tokens/min <input name="tpm" type="number" min="1"></label>
<label>Models (comma separated globs) <input name="models"></label>
<label>Expires (e.g. 30d) <input name="expires"></label>
<button type="submit">Create</button></form></details>
<div id="new-secret"></div>
<table id="keys" class="rows"><thead><tr><th>Name</th><th>Id</th><th>Key</th><th>State</th><th>Spend / budget</th>
<th>Limits</th><th>Models</th><th>Expires</th><th></th></tr></thead><tbody></tbody></table>""",
    "local": """
<table id="local" class="rows"><thead><tr><th>Model</th><th>Provider</th><th>Kind</th><th>State</th>
<th>Memory</th><th>In flight</th><th>Queued</th><th>Expires</th><th></th></tr></thead><tbody></tbody></table>""",
    "config": """
<section class="toolbar"><button id="validate">Validate files</button>
<button id="reload">Reload</button> <span id="config-status" class="muted"></span></section>
<div id="problems"></div>
<pre id="config" class="code"></pre>""",
}


PAGES: dict[str, Page] = {
    "overview": Page("Overview", _FRAMES["overview"]),
    "requests": Page("Requests", _FRAMES["requests"], detail=True),
    "providers": Page("Providers", _FRAMES["providers"]),
    "routes": Page("Models & routes", _FRAMES["routes"]),
    "usage": Page("Usage & spend", _FRAMES["usage"]),
    "keys": Page("Keys", _FRAMES["keys"]),
    "teams": Page(TITLES["teams"], TEAM_FRAMES["teams"]),
    "local": Page("Local models", _FRAMES["local"]),
    "config": Page("Config", _FRAMES["config"]),
    "audit": Page(TITLES["audit"], TEAM_FRAMES["audit"]),
}
ASSETS = resources.files(__package__).joinpath("assets")


def page_script(page: str) -> str | None:
    """The asset holding a page's own script, when it has one (`assets/<page>.js`)."""
    name = f"{page}.js"
    return name if page in PAGES and ASSETS.joinpath(name).is_file() else None


def _layout(base: str, title: str, body: str, *, csrf: str = "", page: str = "", detail: str = "") -> bytes:
    b = escape(base)
    nav = ""
    if page:
        links = "".join(
            f'<a href="{b}/{"" if key == "overview" else key}"{" class=active" if key == page else ""}>{escape(entry.label)}</a>'
            for key, entry in PAGES.items()
        )
        nav = (
            f'<header><a class="brand" href="{b}/">llmmux</a><nav>{links}</nav>'
            f'<form method="post" action="{b}/logout" class="logout"><input type="hidden" name="csrf" value="{escape(csrf)}">'
            '<button type="submit">Log out</button></form></header>'
        )
    script = ""
    if page:
        own = page_script(page)
        script = f'<script src="{b}/assets/console.js" defer></script>'
        script += f'<script src="{b}/assets/{escape(own)}" defer></script>' if own else ""

    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · llmmux</title>"
        f'<meta name="csrf-token" content="{escape(csrf)}"><meta name="ui-base" content="{b}">'
        f'<link rel="icon" href="data:,"><link rel="stylesheet" href="{b}/assets/console.css">{script}</head>'
        f'<body data-page="{escape(page)}" data-id="{escape(detail)}">{nav}<main>{body}</main></body></html>'
    ).encode()


def render(base: str, page: str, csrf: str, detail: str = "") -> bytes:
    if page == "requests" and detail:
        title, frame = "Request", _FRAMES["request"]
    else:
        title, frame = PAGES[page].label, PAGES[page].frame
    return _layout(base, title, f"<h1>{escape(title)}</h1>{frame}", csrf=csrf, page=page, detail=detail)


def login_page(base: str, token: str, error: str, *, enabled: bool) -> bytes:
    b = escape(base)
    if not enabled:
        body = (
            '<section class="login"><h1>llmmux console</h1><p>The console needs an administrator: set '
            "<code>server.master_key</code> in the config and log in with it.</p></section>"
        )
        return _layout(base, "Log in", body)
    notice = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    body = (
        f'<section class="login"><h1>llmmux console</h1>{notice}'
        f'<form method="post" action="{b}/login"><input type="hidden" name="csrf" value="{escape(token)}">'
        '<label>Master key or admin key <input type="password" name="key" autocomplete="current-password" '
        'autofocus required></label><button type="submit">Log in</button></form></section>'
    )
    return _layout(base, "Log in", body)


def message_page(base: str, title: str, text: str) -> bytes:
    return _layout(base, title, f"<h1>{escape(title)}</h1><p>{escape(text)}</p>")
