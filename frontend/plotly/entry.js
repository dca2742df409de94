'use strict';
// neuroreg's plotly.js: scatter (in core), bar and heatmap: every trace the dashboard draws.
var Plotly = require('plotly.js/lib/core');
Plotly.register([require('plotly.js/lib/bar'), require('plotly.js/lib/heatmap')]);
module.exports = Plotly;
