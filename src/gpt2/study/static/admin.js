"use strict";
// The admin token comes from the link's #fragment, which the browser never sends to the server.
const token = decodeURIComponent(location.hash.slice(1));

async function refresh() {
  const message = document.getElementById("message");
  let response;
  try {
    response = await fetch("/api/progress", {headers: {"Authorization": "Bearer " + token}, cache: "no-store"});
  } catch (e) {
    message.textContent = "The server does not answer; retrying."; message.hidden = false;
    return;
  }
  const body = await response.json();
  if (!response.ok) {
    message.textContent = body.error ? body.error.message : "error " + response.status;
    message.hidden = false;
    return;
  }
  message.hidden = true;
  document.getElementById("title").textContent = body.title + (body.simulated ? " (SIMULATED raters)" : "");
  const done = body.raters.filter(r => r.answered === r.assigned).length;
  document.getElementById("summary").textContent =
    `${body.answered} of ${body.assigned} answers; ${done} of ${body.raters.length} raters finished.`;
  const rows = body.raters.map(r => {
    const tr = document.createElement("tr");
    const last = r.last_answer ? new Date(r.last_answer * 1000).toLocaleString() : "-";
    for (const cell of [r.rater + (r.simulated ? " (simulated)" : ""), r.arm, `${r.answered} / ${r.assigned}`, last]) {
      const td = document.createElement("td");
      td.textContent = cell;
      tr.appendChild(td);
    }
    return tr;
  });
  document.querySelector("#raters tbody").replaceChildren(...rows);
}

refresh();
setInterval(refresh, 5000);
