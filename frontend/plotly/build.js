// Builds frontend/static/vendor/plotly-neuroreg.min.js: see build.sh.
const esbuild = require('esbuild');
const InlineCSSPlugin = require('esbuild-plugin-inline-css');
const { environmentPlugin } = require('esbuild-plugin-environment');
const version = require('plotly.js/package.json').version;

esbuild.build({
  entryPoints: [`${__dirname}/entry.js`], outfile: process.argv[2], format: 'iife',
  globalName: 'Plotly', bundle: true, minify: true, legalComments: 'none',
  banner: { js: `/* plotly.js v${version} (MIT, Copyright Plotly, Inc.): core + bar + heatmap + parcoords, built by frontend/plotly/build.sh */` },
  // the same settings as plotly.js's own esbuild-config.js
  plugins: [InlineCSSPlugin(), environmentPlugin({ NODE_DEBUG: false })],
  alias: { regl: '@plotly/regl', stream: 'stream-browserify' },
  define: { global: 'window', 'define.amd': 'false' }, target: 'es2016',
}).catch(() => process.exit(1));
