// The dashboard's colours, defined once: every page that colours a condition (a study's
// figures, Compare's groups by config.target) asks here, so a condition has one colour
// wherever it is drawn.

// One colour per registered similarity target (ml/regularize/targets.py's TargetName):
// None grey, the paper's Neural (model) red, its relatives warm, the controls cool.
export const CONDITION_COLOURS = Object.freeze({
  none: "#444444",
  "neural-model": "#d62728",
  "neural-data": "#ff7f0e",
  "neural-true": "#e6ab02",
  shuffle: "#9467bd",
  "cnn-features": "#1f77b4",
  random: "#2ca02c",
  "random-matched": "#98df8a",
  pixel: "#17becf",
});

// a condition the registry does not name (the frontier's "neural-model (shared)", a target
// added since): the next of these, in the order the page first asks, never a registered one
const SPARE = ["#8c564b", "#e377c2", "#bcbd22", "#7f7f7f", "#1b9e77", "#7570b3", "#a6761d"];
const spare = new Map();

export function conditionColour(condition) {
  if (Object.hasOwn(CONDITION_COLOURS, condition)) return CONDITION_COLOURS[condition];
  if (!spare.has(condition)) spare.set(condition, SPARE[spare.size % SPARE.length]);
  return spare.get(condition);
}

// Series that are not conditions (Compare's groups by another field): Plotly's own cycle,
// one colour per series in the order the page first asks
const SERIES = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
  "#7f7f7f", "#bcbd22", "#17becf"];

export function seriesColours() {
  const given = new Map();
  return (key) => {
    if (!given.has(key)) given.set(key, SERIES[given.size % SERIES.length]);
    return given.get(key);
  };
}

// Within a condition, one dash (lines) or symbol (markers) per variant — α on a study's
// figures, the other grouped fields in Compare — the smallest solid / a circle.
export const DASHES = ["solid", "dash", "dot", "dashdot", "longdash", "longdashdot"];
export const SYMBOLS = ["circle", "square", "diamond", "triangle-up", "x", "cross"];
export const dashOf = (k) => DASHES[Math.max(0, k) % DASHES.length];
export const symbolOf = (k) => SYMBOLS[Math.max(0, k) % SYMBOLS.length];

// a band's fill: the line's colour, see-through
export const translucent = (colour) => `${colour}33`;
