// cafgw message browser: search /v1/dashboard/messages, open one message's history
// and audit entries (/v1/dashboard/messages/{id}), replay or dismiss from there.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  let c = null; // window.cafgw, once loaded
  let pick = null;
  let lastQuery = null;
  let shown = [];

  function query(offset) {
    const form = new FormData($("search-form"));
    const params = new URLSearchParams();
    for (const [k, v] of form.entries()) {
      const text = String(v).trim();
      if (!text || k === "receipts") continue;
      // Dates are whole days in UTC: "to" includes the day it names.
      if (k === "from") params.set(k, text + "T00:00:00Z");
      else if (k === "to") params.set(k, new Date(Date.parse(text + "T00:00:00Z") + 86400000).toISOString());
      else params.set(k, text);
    }
    if (form.get("receipts")) params.set("receipts", "true");
    if (offset) params.set("offset", String(offset));
    return params;
  }

  function resultRow(m) {
    const tr = c.el("tr");
    tr.dataset.messageId = m.message_id;
    tr.append(pick.cell(m), c.idCell(m), c.el("td", m.authority), c.el("td", m.direction.slice(0, 3)),
      c.el("td", m.message_type), c.el("td", m.counterparty), c.statusCell(m.status),
      c.reasonCell(m), c.el("td", c.when(m.updated_at)), c.actions(m, rerun));
    return tr;
  }

  async function run(offset) {
    $("search-error").textContent = "";
    const params = query(offset);
    lastQuery = params;
    const res = await c.api("/v1/dashboard/messages?" + params.toString());
    if (!res.ok) {
      const problem = await res.json().catch(() => ({}));
      $("search-error").textContent = "Search refused: " + c.detailOf(problem, res.status);
      return;
    }
    const found = await res.json();
    shown = offset ? shown.concat(found.lines) : found.lines;
    if (!offset) pick.reset();
    $("results").replaceChildren(...shown.map(resultRow));
    $("results-empty").hidden = shown.length > 0;
    $("results-empty").textContent = "No message matches.";
    $("results-count").textContent = "(" + shown.length + (found.more ? "+" : "") + ")";
    $("results-more").hidden = !found.more;
    $("results-more").onclick = () => run(shown.length);
  }

  function rerun() {
    if (lastQuery) run(0);
  }

  function field(dl, label, value) {
    dl.append(c.el("dt", label), c.el("dd", value === null || value === undefined ? "-" : value));
  }

  async function openDetail(messageId) {
    const res = await c.api("/v1/dashboard/messages/" + encodeURIComponent(messageId));
    if (!res.ok) {
      const problem = await res.json().catch(() => ({}));
      c.flash("Cannot open " + messageId + ": " + c.detailOf(problem, res.status), true);
      return;
    }
    const d = await res.json();
    $("detail-id").textContent = d.message_id;
    const parts = d.copies.map((copy) => {
      const m = copy.line;
      const box = c.el("section", undefined, "copy");
      box.dataset.authority = m.authority;
      box.appendChild(c.el("h3", (m.direction === "OUTBOUND" ? "Sent by " : "Received by ") + m.authority
        + (m.direction === "OUTBOUND" ? " to " : " from ") + m.counterparty + ": " + m.message_type));
      const dl = c.el("dl", undefined, "fields");
      field(dl, "status", m.status + (m.need ? " (needs a human: " + m.need + ")" : ""));
      field(dl, "legal basis", copy.legal_basis);
      field(dl, "created", c.when(copy.created_at));
      field(dl, "attempts", m.attempts);
      field(dl, "digest", copy.digest);
      box.appendChild(dl);
      const table = c.el("table", undefined, "history");
      const head = c.el("tr");
      head.append(c.el("th", "At"), c.el("th", "Status"), c.el("th", "Reason"));
      const thead = c.el("thead"); thead.appendChild(head);
      const tbody = c.el("tbody");
      tbody.append(...copy.history.map((h) => {
        const tr = c.el("tr");
        tr.append(c.el("td", c.when(h.at)), c.statusCell(h.status), c.el("td", h.reason || "", "reason"));
        return tr;
      }));
      table.append(thead, tbody);
      box.appendChild(table);
      for (const text of copy.dismissals) box.appendChild(c.el("p", text, "dismissal"));
      const act = c.actions(m, () => { $("detail-dialog").close(); rerun(); });
      if (act.childNodes.length) { const p = c.el("p", undefined, "actions"); p.append(...act.childNodes); box.appendChild(p); }
      return box;
    });
    $("detail-body").replaceChildren(...parts);
    $("detail-audit").replaceChildren(...d.audit.map((a) => {
      const tr = c.el("tr");
      tr.append(c.el("td", a.seq), c.el("td", c.when(a.at)), c.el("td", a.action), c.el("td", a.actor),
        c.el("td", a.authority), c.el("td", a.counterparty || ""), c.el("td", a.legal_basis || ""),
        c.el("td", a.detail || ""));
      return tr;
    }));
    $("detail-audit-empty").hidden = d.audit.length > 0;
    if (!$("detail-dialog").open) $("detail-dialog").showModal();
  }

  function onView(view) {
    const admin = view.viewer.role === "admin";
    // Looking children up is for an authority's own staff, not the gateway's operators.
    $("child-field").hidden = admin;
    $("authority-field").hidden = !admin;
    pick.show(admin);
    const select = $("search-form").elements.namedItem("authority");
    const codes = view.authorities.map((a) => a.code);
    const have = [...select.options].slice(1).map((o) => o.value);
    if (have.join() !== codes.join()) {
      select.replaceChildren(select.options[0], ...view.authorities.map((a) => {
        const o = c.el("option", a.code + " " + a.name);
        o.value = a.code;
        return o;
      }));
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    c = window.cafgw;
    pick = c.selection("results");
    c.openDetail = openDetail;
    c.onView = onView;
    $("search-form").addEventListener("submit", (event) => { event.preventDefault(); run(0); });
    $("detail-close").addEventListener("click", () => $("detail-dialog").close());
  });
})();
