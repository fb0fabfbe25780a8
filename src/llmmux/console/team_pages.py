"""The console's teams and audit-log pages: their frames, which `console.js` fills from the admin API.

Kept apart from `pages.py` (the layout and the other pages); `pages.py` adds these to its tables.
"""

from __future__ import annotations

TITLES: dict[str, str] = {"teams": "Teams", "audit": "Audit log"}

_PERIODS = "<option>monthly</option><option>weekly</option><option>daily</option><option>total</option>"

FRAMES: dict[str, str] = {
    "teams": f"""
<details class="create"><summary>Create a team</summary>
<form id="create-team" class="grid">
<label>Name <input name="name" required></label>
<label>Budget (USD) <input name="budget" type="number" step="any" min="0"></label>
<label>Period <select name="budget_period">{_PERIODS}</select></label>
<label>Alert at (fraction, e.g. 0.8) <input name="alert_at" type="number" step="0.05" min="0.05" max="1"></label>
<label>Requests/min <input name="rpm" type="number" min="1"></label>
<label>Tokens/min <input name="tpm" type="number" min="1"></label>
<label>Models (comma separated globs) <input name="models"></label>
<button type="submit">Create</button></form></details>
<div id="team-status"></div>
<table id="teams" class="rows"><thead><tr><th>Name</th><th>Id</th><th>Spend / budget</th><th>Limits</th>
<th>Models</th><th>Keys</th><th></th></tr></thead><tbody></tbody></table>""",
    "audit": """
<form id="audit-filter" class="toolbar">
  <select name="action"><option value="">every action</option><option value="key">keys</option>
    <option value="team">teams</option><option value="config">config reloads</option>
    <option value="provider">providers</option><option value="model">local models</option>
    <option value="cache">cache</option></select>
  <input name="actor" placeholder="who (e.g. master key)" size="18">
  <input name="target" placeholder="target id or name" size="18">
  <select name="since"><option value="">any time</option><option value="1h">1 hour</option>
    <option value="24h">24 hours</option><option value="7d">7 days</option><option value="30d">30 days</option></select>
  <button type="submit">Filter</button>
</form>
<table id="audit" class="rows"><thead><tr><th>When</th><th>Who</th><th>Action</th><th>Target</th>
<th>What changed</th></tr></thead><tbody></tbody></table>
<p><button id="audit-more" hidden>Older</button></p>""",
}
