// A study's report, opened from file:// with no server: every figure drawn from data.js
// (their data and layout as the study page drew them) with the plotly.min.js beside it.
// A classic script: file:// pages cannot import modules.
(function () {
  "use strict";
  const report = window.NEUROREG_REPORT;
  const drawn = report.figures.map((f) => Plotly.newPlot(document.getElementById(`fig-${f.file}`),
    f.data, f.layout, {
      responsive: true, displaylogo: false, displayModeBar: "hover",
      modeBarButtonsToRemove: ["select2d", "lasso2d"],
      toImageButtonOptions: { filename: f.file, scale: 2 },
    }));
  // for a reader's script (and the tests): every figure is drawn
  Promise.all(drawn).then(() => { document.documentElement.dataset.reportDrawn = String(drawn.length); });
}());
