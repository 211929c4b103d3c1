// cafgw dashboard piece (data protection): recalls, corrections and erasure notices
// with the outcome each recipient's signed receipt proved. Self-contained: place
// <table><tbody id="recalls" data-authority="332"></tbody></table> on a page and
// load this script; it uses the dashboard's signed-in key (sessionStorage) and
// renders with textContent only.
"use strict";
(function () {
  const KEY = "cafgw.apiKey";

  function cell(text) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "" : String(text);
    return td;
  }

  async function refresh(body) {
    const key = sessionStorage.getItem(KEY);
    if (!key) return;
    const authority = body.dataset.authority;
    const query = authority ? "?authority=" + encodeURIComponent(authority) : "";
    const answer = await fetch("/v1/recalls" + query, {
      headers: { Authorization: "Bearer " + key },
    });
    if (!answer.ok) return;
    const rows = await answer.json();
    body.replaceChildren(
      ...rows.map((r) => {
        const tr = document.createElement("tr");
        tr.append(
          cell(r.kind),
          cell(r.original_id),
          cell(r.recipient),
          cell(r.reason),
          cell(r.requested_at),
          cell(r.summary)
        );
        return tr;
      })
    );
  }

  document.addEventListener("DOMContentLoaded", () => {
    const body = document.getElementById("recalls");
    if (!body) return;
    refresh(body);
    setInterval(() => refresh(body), 10000);
  });
})();
