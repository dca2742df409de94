#!/usr/bin/env bash
# Rebuilds the vendored plotly.js bundle with only the traces the dashboard draws (scatter,
# bar, heatmap, parcoords). The official cartesian bundle took ~490 ms to load and run in headless
# chromium on our 2-core machine, this one ~190 ms (bench/dashboard.py shows the effect).
# Needs node and the npm registry; the result is committed, so nothing else runs this.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
cp "$here/entry.js" "$here/build.js" "$work/"
cd "$work"
npm init -y >/dev/null
npm install --no-audit --no-fund --ignore-scripts plotly.js@4.1.1 esbuild@0.28.2 \
  esbuild-plugin-inline-css@0.0.1 esbuild-plugin-environment@0.5.0
node build.js "$here/../static/vendor/plotly-neuroreg.min.js"
cp node_modules/plotly.js/LICENSE "$here/../static/vendor/plotly-LICENSE.txt"
