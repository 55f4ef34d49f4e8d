// Live progress on the jobs page: poll the proposal's jobs while any is queued or running.
// (A static file, no inline script: the CSP forbids them.)
(() => {
  const table = document.querySelector("table.jobs[data-proposal]");
  if (!table) return;
  const url = `/api/proposals/${encodeURIComponent(table.dataset.proposal)}/jobs`;
  const active = () => table.querySelector('tr[data-state="queued"], tr[data-state="running"]');

  function update(row, job) {
    const set = (field, text) => {
      const el = row.querySelector(`[data-field="${field}"]`);
      if (el) el.textContent = text;
    };
    row.dataset.state = job.state;
    set("state", job.state);
    row.querySelector('[data-field="state"]').className = `state job-${job.state}`;
    row.querySelector('[data-field="progress"]').value = job.progress;
    set("percent", `${Math.round(job.progress * 100)} %`);
    set("message", job.message);
    const outputs = row.querySelector('[data-field="outputs"]');
    if (outputs && job.outputs.length && !outputs.children.length) {
      for (const out of job.outputs) {
        const link = document.createElement("a");
        link.href = `/proposals/${encodeURIComponent(job.proposal)}/viewer?file=${encodeURIComponent(out.path)}`;
        link.textContent = out.path;
        outputs.appendChild(link);
      }
    }
    if (job.state !== "queued" && job.state !== "running") {
      const form = row.querySelector("form");
      if (form) form.remove();
    }
  }

  async function poll() {
    if (!active()) return;
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" } });
      if (response.ok) {
        for (const job of await response.json()) {
          const row = table.querySelector(`tr[data-job-id="${job.id}"]`);
          if (row) update(row, job);
        }
      }
    } catch {
      // network hiccup: try again at the next tick
    }
    setTimeout(poll, 1000);
  }
  setTimeout(poll, 500);
})();
