'use strict';
// neuroreg's plotly.js: scatter (in core), bar, heatmap and parcoords (Compare's parallel
// coordinates): every trace the dashboard draws.
var Plotly = require('plotly.js/lib/core');
Plotly.register([require('plotly.js/lib/bar'), require('plotly.js/lib/heatmap'),
  require('plotly.js/lib/parcoords')]);
module.exports = Plotly;
