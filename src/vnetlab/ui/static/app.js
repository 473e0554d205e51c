// vnetlab's page: read-only, everything from /ui/api (the lab's verbs and engine answer).
const $ = (id) => document.getElementById(id);
let current = { trace: null, version: null, zoom: 1 };

async function json(url) {
  const r = await fetch(url);
  const body = await r.json();
  if (!r.ok) throw new Error(body.error ? `${body.error.code}: ${body.error.message}` : r.statusText);
  return body;
}

function traceQuery(t) {
  return t ? `?src=${encodeURIComponent(t.src)}&dst=${encodeURIComponent(t.dst)}&port=${t.port}&protocol=${t.protocol}` : "";
}

async function loadPicture() {
  const r = await fetch("/ui/api/graph.svg" + traceQuery(current.trace));
  if (!r.ok) { $("picture").textContent = await r.text(); return; }
  $("picture").innerHTML = await r.text();
  const svg = $("picture").querySelector("svg");  // fit the pane; zoom scales from there
  svg.setAttribute("width", "100%");
  svg.removeAttribute("height");
  $("picture").style.transform = `scale(${current.zoom})`;
  document.querySelectorAll('#picture g.node[id^="ref:"]').forEach((g) =>
    g.addEventListener("click", () => showResource(g.id.slice(4))));
}

async function showResource(ref) {
  const data = await json("/ui/api/resource?ref=" + encodeURIComponent(ref));
  $("details-title").textContent = `${data.type} ${data.name}`;
  $("details").textContent = JSON.stringify(data, null, 2);
  $("details-pane").hidden = false;
}

async function loadEndpoints() {
  const data = await json("/ui/api/endpoints");
  const chosen = $("src").value;
  $("src").innerHTML = data.endpoints.map((e) => `<option value="${e.name}">${e.name} (${e.kind} ${e.ip})</option>`).join("");
  if (chosen) $("src").value = chosen;
  $("destinations").innerHTML = data.endpoints.concat(data.internet)
    .map((e) => `<option value="${e.name}">${e.ip}</option>`).join("");
}

async function runTrace(t) {
  current.trace = t;
  $("verdict-pane").hidden = false;
  try {
    const data = await json("/ui/api/trace" + traceQuery(t));
    const seen = data.source_ip_seen ? `, source seen ${data.source_ip_seen}` : "";
    $("verdict").innerHTML = `${data.flow.source} &rarr; ${data.flow.destination} (${data.flow.destination_ip}) ` +
      `${data.flow.protocol}${data.flow.port ? "/" + data.flow.port : ""}: ` +
      `<span class="${data.verdict}">${data.verdict}</span> (${data.reason}: ${data.explanation})${seen}`;
    $("steps").innerHTML = data.texts.map((s) => `<li>${s.replace(/</g, "&lt;")}</li>`).join("");
  } catch (e) {
    $("verdict").textContent = e.message;
    $("steps").innerHTML = "";
  }
  await loadPicture();
}

async function loadMatrix() {
  const m = await json("/ui/api/matrix?ports=" + encodeURIComponent($("ports").value));
  const label = (c, i) => `#${i} ${c.members[0]}${c.members.length > 1 ? " +" + (c.members.length - 1) : ""}`;
  const cell = new Map(m.cells.map((c) => [`${c.source},${c.destination}`, c.verdicts]));
  let html = '<table class="heat"><tr><th>from \\ to</th>' + m.classes.map((c, j) => `<th>${label(c, j)}</th>`).join("") + "</tr>";
  m.classes.forEach((src, i) => {
    html += `<tr><th>${label(src, i)}</th>`;
    m.classes.forEach((dst, j) => {
      if (i === j && src.members.length < 2) { html += "<td></td>"; return; }
      const verdicts = cell.get(`${i},${j}`) || m.default;
      const target = i === j ? dst.members[1] : dst.members[0];
      html += "<td>" + Object.entries(verdicts).map(([p, v]) =>
        `<span class="${v}" title="${src.members[0]} → ${target} ${p}: ${v}" data-src="${src.members[0]}" data-dst="${target}" data-port="${p}">${p}</span>`).join("") + "</td>";
    });
    html += "</tr>";
  });
  $("matrix").innerHTML = html + "</table>";
  document.querySelectorAll("#matrix span[data-src]").forEach((s) => s.addEventListener("click", () => {
    const p = s.dataset.port;
    const t = { src: s.dataset.src, dst: s.dataset.dst, port: p === "icmp" ? "" : p.replace(/^udp\//, ""),
                protocol: p === "icmp" ? "Icmp" : p.startsWith("udp/") ? "Udp" : "Tcp" };
    $("src").value = t.src; $("dst").value = t.dst; $("port").value = t.port; $("protocol").value = t.protocol;
    runTrace(t);
  }));
}

async function refresh() {
  await loadEndpoints();
  await loadPicture();
  if (current.trace) await runTrace(current.trace);
  await loadMatrix();
}

async function follow() {  // the page follows changes made with the CLI, az or the SDK
  try {
    const v = await json("/ui/api/version");
    $("lab").textContent = v.lab;
    if (v.version !== current.version) {
      current.version = v.version;
      $("version").textContent = `version ${v.version}`;
      await refresh();
    }
  } catch (e) { $("version").textContent = "disconnected"; }
  setTimeout(follow, 1000);
}

$("trace-form").addEventListener("submit", (e) => {
  e.preventDefault();
  runTrace({ src: $("src").value, dst: $("dst").value, port: $("port").value, protocol: $("protocol").value });
});
$("clear").addEventListener("click", () => { current.trace = null; $("verdict-pane").hidden = true; loadPicture(); });
$("ports").addEventListener("change", loadMatrix);
$("zoom-in").addEventListener("click", () => { current.zoom *= 1.25; $("picture").style.transform = `scale(${current.zoom})`; });
$("zoom-out").addEventListener("click", () => { current.zoom /= 1.25; $("picture").style.transform = `scale(${current.zoom})`; });
follow();
