// The run page's lineage (GET /api/runs/{id}/lineage): what the run was built from on the
// left, the run in the middle, what was built from it on the right, one column per step;
// a node per run (coloured by kind, hover: kind, name, status, owner; a click opens its
// page), an arrow per read (hover: the artifacts read) or per run of a study ("part of").
import { el, getJSON } from "./api.js";
import { plain, plot } from "./figures.js";
import { seriesColours, translucent } from "./palette.js";

// the kinds in the order a run is built (recording → similarity → train → evaluate →
// study), asked first so that each kind has one colour on every run's page
const kindColour = seriesColours();
["similarity", "train", "evaluate", "study", "external"].forEach(kindColour);

const FONT = '"Open Sans", verdana, arial, sans-serif';  // plotly's own
const INK = "#1d2330";
const FAILED = "#a11";
const ROW = 30;            // px between two runs of a column
const SIDE = 16;           // px beside the plot (the figure has no axes)
const RADIUS = 7;          // a node's marker, px (the run itself: FOCUS)
const FOCUS = 11;
const NAME = 28;           // characters of a run's name in its label
const EDGE_LABELS = 8;     // at most this many arrows are labelled in the figure (all hover)

const $ = (id) => document.getElementById(id);
const href = (r) => (r.kind === "study" ? `/studies/${r.id}` : `/runs/${r.id}`);
// the start and the end of a long name: runs of one sweep differ at the end ("… seed 2")
const short = (name) => (name.length > NAME
  ? `${name.slice(0, NAME - 14)}…${name.slice(-13)}` : name);
const reads = (e) => (e.relation === "reads"
  ? `reads ${e.artifacts.length ? e.artifacts.join(", ") : "its artifacts"}` : "part of");

let canvas = null;
function textWidth(text, size, bold = false) {
  canvas ??= document.createElement("canvas").getContext("2d");
  canvas.font = `${bold ? "bold " : ""}${size}px ${FONT}`;
  return canvas.measureText(text).width;
}

// Each run's column: its depth, then moved out until every arrow points right (a study's
// runs right of the study, the study right of the similarity run they all read): a run
// downstream goes right of what it comes from, one upstream left of what it feeds.
function columns(g) {
  const depth = new Map(g.runs.map((r) => [r.id, r.depth]));
  const col = new Map(depth);
  for (let pass = 0; pass <= g.runs.length; pass++) {
    let moved = false;
    for (const e of g.edges) {
      const s = col.get(e.source);
      const t = col.get(e.target);
      if (s === undefined || t === undefined || t > s) continue;
      if (depth.get(e.target) > 0) col.set(e.target, s + 1);
      else if (depth.get(e.source) < 0) col.set(e.source, t - 1);
      else continue;
      moved = true;
    }
    if (!moved) break;
  }
  return col;
}

// Each run's row in its column: centred on the run's row, then ordered by the mean row of
// its neighbours in the columns nearer the run (a few sweeps out from the middle), so
// that a train run sits beside its evaluation and arrows cross little.
function rows(g, col) {
  const byCol = new Map();
  const rank = { similarity: 0, study: 1, train: 2, evaluate: 3 };
  for (const r of [...g.runs].sort((a, b) => (rank[a.kind] ?? 9) - (rank[b.kind] ?? 9) || a.id - b.id)) {
    const c = col.get(r.id);
    if (!byCol.has(c)) byCol.set(c, []);
    byCol.get(c).push(r.id);
  }
  const near = new Map(g.runs.map((r) => [r.id, []]));
  for (const e of g.edges) {
    if (near.has(e.source) && near.has(e.target)) {
      near.get(e.source).push(e.target);
      near.get(e.target).push(e.source);
    }
  }
  const y = new Map();
  const place = (c) => byCol.get(c).forEach((id, i, ids) => y.set(id, (ids.length - 1) / 2 - i));
  [...byCol.keys()].forEach(place);
  const cols = [...byCol.keys()].sort((a, b) => Math.abs(a) - Math.abs(b));
  for (let sweep = 0; sweep < 4; sweep++) {
    for (const c of cols) {
      if (c === 0) continue;
      const inner = (id) => near.get(id).filter((n) => Math.abs(col.get(n)) < Math.abs(c));
      const mean = (id) => {
        const ns = inner(id);
        return ns.length ? ns.reduce((s, n) => s + y.get(n), 0) / ns.length : y.get(id);
      };
      const keyed = byCol.get(c).map((id, i) => [id, mean(id), i]);
      keyed.sort((a, b) => b[1] - a[1] || a[2] - b[2]);
      byCol.set(c, keyed.map(([id]) => id));
      place(c);
    }
  }
  return { y, tallest: Math.max(...[...byCol.values()].map((ids) => ids.length)) };
}

// a study's runs are named "<study>: <cell>": beside their study, the cell says which
function ownName(r, parent) {
  const name = r.name || r.kind;
  return parent && parent.name && name.startsWith(`${parent.name}: `)
    ? name.slice(parent.name.length + 2) : name;
}

function label(r, focus, parent) {
  const own = short(ownName(r, parent));
  const name = `#${r.id} ${plain(own)}`;
  const state = r.status === "succeeded" ? "" : ` <span style="color:${r.status === "failed" ? FAILED : "#5b6475"}">· ${r.status}</span>`;
  return { text: `${focus ? `<b>${name}</b>` : name}${state}`,
    px: textWidth(`#${r.id} ${own}${state ? ` · ${r.status}` : ""}`, 11, focus) };
}

// the figure's traces and layout for a width of `width` px
function figure(g, width) {
  const col = columns(g);
  const { y, tallest } = rows(g, col);
  const byId = new Map(g.runs.map((r) => [r.id, r]));
  // its study: the run it is "part of", else a study shown whose name starts its name
  const parentOf = new Map(g.edges.filter((e) => e.relation === "part of")
    .map((e) => [e.target, byId.get(e.source)]));
  const studies = g.runs.filter((r) => r.kind === "study" && r.name);
  const studyOf = (r) => parentOf.get(r.id)
    || studies.find((st) => st.id !== r.id && (r.name || "").startsWith(`${st.name}: `));
  const labels = new Map(g.runs.map((r) => [r.id, label(r, r.id === g.run_id, studyOf(r))]));
  const radius = (id) => (id === g.run_id ? FOCUS : RADIUS);
  const cs = [...col.values()];
  const [lo, hi] = [Math.min(...cs), Math.max(...cs)];
  // the x range: a marker's room left of the first column, the widest label of the last
  // right of it, the columns evenly over the rest; so many x units per px
  const plotWidth = Math.max(300, width - 2 * SIDE);
  const last = Math.max(...g.runs.filter((r) => col.get(r.id) === hi).map((r) => labels.get(r.id).px + radius(r.id) + 8));
  const unit = Math.max(1, hi - lo) / Math.max(150, plotWidth - last - 2 * FOCUS);
  const [left, right] = [2 * FOCUS * unit, last * unit];
  const half = (tallest - 1) / 2 + 0.7;

  // arrows: from the source's marker (under its label, which hides the stretch it covers)
  // to the target's marker
  const arrows = [];
  const hovers = { x: [], y: [], text: [], size: [] };
  const labelled = g.edges.length <= EDGE_LABELS;
  const edgeLabels = [];
  for (const e of g.edges) {
    const [s, t] = [byId.get(e.source), byId.get(e.target)];
    const [xs, ys, xt, yt] = [col.get(s.id), y.get(s.id), col.get(t.id), y.get(t.id)];
    const part = e.relation === "part of";
    arrows.push({ x: xt, y: yt, ax: xs, ay: ys, xref: "x", yref: "y", axref: "x", ayref: "y", text: "",
      showarrow: true, arrowhead: 2, arrowsize: 1, arrowwidth: part ? 1 : 1.4,
      arrowcolor: part ? "#b9c0cc" : "#6b7385", standoff: radius(t.id) + 1, startstandoff: radius(s.id) });
    // the arrow's middle between the end of the source's label and the target
    const from = xs + (labels.get(s.id).px + radius(s.id) + 6) * unit;
    const to = xt - (radius(t.id) + 4) * unit;
    const mx = from < to ? (from + to) / 2 : (xs + xt) / 2;
    const my = ys + (yt - ys) * ((mx - xs) / ((xt - xs) || 1));
    const text = reads(e);
    const room = (to - from) / unit;
    // an arrow over more than one column passes the runs between: its label would sit on
    // theirs (its hover still says it)
    const shown = labelled && Math.abs(xt - xs) <= 1 && textWidth(text, 10) + 8 < room;
    if (shown) {
      edgeLabels.push({ x: mx, y: my, xref: "x", yref: "y", text: plain(text), showarrow: false,
        font: { size: 10, color: "#5b6475" }, bgcolor: "rgba(255,255,255,0.9)", borderpad: 1 });
    }
    hovers.x.push(mx); hovers.y.push(my);
    hovers.text.push(`#${s.id} ${plain(short(s.name || s.kind))} → #${t.id} ${plain(short(t.name || t.kind))}<br>${plain(text)}`);
    hovers.size.push(shown ? 16 : 10);
  }

  // one trace per kind (its legend entry); the run itself larger, ringed in ink; a run not
  // finished hollow, one that failed ringed in the error colour
  const kinds = [...new Set(g.runs.map((r) => r.kind))];
  const traces = kinds.map((kind) => {
    const rs = g.runs.filter((r) => r.kind === kind);
    const colour = kindColour(kind);
    return { type: "scatter", mode: "markers", name: kind, showlegend: false, legendgroup: kind,
      x: rs.map((r) => col.get(r.id)), y: rs.map((r) => y.get(r.id)),
      customdata: rs.map(href), cliponaxis: false,
      text: rs.map((r) => `<b>#${r.id} ${plain(r.name || "")}</b><br>${plain(r.kind)} · ${r.status}<br>owner ${plain(r.owner)}`
        + (r.id === g.run_id ? "<br>(this run)" : "")),
      hovertemplate: "%{text}<extra></extra>",
      marker: { size: rs.map((r) => 2 * radius(r.id)), opacity: 1,
        color: rs.map((r) => (["succeeded", "failed"].includes(r.status) ? colour : translucent(colour))),
        line: { width: rs.map((r) => (r.id === g.run_id ? 3 : r.status === "failed" ? 2.5 : 1.5)),
          color: rs.map((r) => (r.id === g.run_id ? INK : r.status === "failed" ? FAILED : colour)) } } };
  });
  // the legend: one plain marker per kind (the nodes' own rings are a run's, not a kind's)
  traces.push(...kinds.map((kind) => ({ type: "scatter", mode: "markers", name: kind, legendgroup: kind,
    x: [null], y: [null], hoverinfo: "skip", marker: { size: 2 * RADIUS, color: kindColour(kind) } })));
  traces.unshift({ type: "scatter", mode: "markers", name: "arrows", showlegend: false, x: hovers.x, y: hovers.y,
    text: hovers.text, hovertemplate: "%{text}<extra></extra>", cliponaxis: false,
    marker: { size: hovers.size, color: "rgba(0,0,0,0)" } });  // hovered, not seen

  const nodeLabels = g.runs.map((r) => ({ x: col.get(r.id), y: y.get(r.id), xref: "x", yref: "y",
    text: labels.get(r.id).text, showarrow: false, xanchor: "left", xshift: radius(r.id) + 3,
    font: { size: 11, color: INK }, bgcolor: "rgba(255,255,255,0.92)", borderpad: 1,
    captureevents: true, name: href(r) }));
  // what each side is, over its first column
  const captions = [[lo, lo < 0 ? "← built from" : ""], [0, "this run"], [1, hi > 0 ? "built from it →" : ""]]
    .filter(([, text]) => text)
    .map(([x, text]) => ({ x, y: 1, xref: "x", yref: "paper", yanchor: "bottom", xanchor: x === 0 ? "center" : "left",
      text, showarrow: false, font: { size: 11, color: "#5b6475" } }));

  const layout = {
    xaxis: { visible: false, fixedrange: true, range: [lo - left, hi + right] },
    yaxis: { visible: false, fixedrange: true, range: [-half, half] },
    annotations: [...arrows, ...edgeLabels, ...nodeLabels, ...captions],
    dragmode: false, hovermode: "closest", showlegend: true,
    margin: { t: 30, b: 40, l: SIDE, r: SIDE },  // no axes: no room for their labels
  };
  return { traces, layout, height: Math.max(220, 110 + ROW * tallest) };
}

function asList(g) {
  const byId = new Map(g.runs.map((r) => [r.id, r]));
  const into = new Map(g.runs.map((r) => [r.id, []]));
  for (const e of g.edges) into.get(e.target)?.push(e);
  const item = (r) => el("li", { "data-run": r.id }, el("a", { href: href(r) }, `#${r.id} ${r.name || r.kind}`),
    ` — ${r.kind}, ${r.status}, ${r.owner}`,
    ...into.get(r.id).map((e) => `; ${e.relation === "reads" ? reads(e) : "part of"} of #${byId.get(e.source).id}`));
  return el("ul", {}, ...g.runs.filter((r) => r.id !== g.run_id).map(item));
}

// The section: the figure, or one line saying there is no lineage; "truncated" when the
// server stopped before every connected run. Drawn once `after` has settled (the page's
// own figures first).
export async function drawLineage(runId, after = null) {
  const g = await getJSON(`/api/runs/${runId}/lineage`);
  await after;
  const section = $("lineage");
  const note = $("lineage-note");
  const div = $("lineage-chart");
  section.hidden = false;
  if (g.runs.length <= 1) {
    note.textContent = "No lineage: this run reads no other run's artifacts, and no run reads its.";
    div.hidden = true;
    return;
  }
  const up = g.runs.filter((r) => r.depth < 0).length;
  const down = g.runs.filter((r) => r.depth > 0).length;
  const runs = (n) => (n ? `${n} run${n === 1 ? "" : "s"}` : "no run");
  note.textContent = `Built from ${runs(up)}; ${runs(down)} built from it.`
    + (g.truncated ? " Truncated: more runs are connected than shown." : "")
    + " Click a run to open it.";
  $("lineage-list").replaceChildren(el("summary", {}, `The ${g.runs.length - 1} connected runs as a list`), asList(g));
  $("lineage-list").hidden = false;
  let width = 0;
  const draw = async () => {
    width = div.clientWidth;
    const { traces, layout, height } = figure(g, width);
    div.style.height = `${height}px`;
    await plot(div, traces, layout, { displayModeBar: false });
  };
  await draw();
  if (div.linked) return;
  div.linked = true;
  const open = (url) => { if (url) location.assign(url); };
  div.on("plotly_click", (ev) => {
    const p = ev.points && ev.points[0];
    if (p && typeof p.customdata === "string") open(p.customdata);
  });
  div.on("plotly_clickannotation", (ev) => open(ev.annotation && ev.annotation.name));
  const drag = () => div.querySelector(".nsewdrag");
  div.on("plotly_hover", (ev) => {
    const p = ev.points && ev.points[0];
    if (drag() && p && typeof p.customdata === "string") drag().style.cursor = "pointer";
  });
  div.on("plotly_unhover", () => { if (drag()) drag().style.cursor = ""; });
  // labels are px wide, the columns a share of the width: a new width, a new layout
  new ResizeObserver(() => {
    if (Math.abs(div.clientWidth - width) > 40) draw().catch(console.error);
  }).observe(div);
}
