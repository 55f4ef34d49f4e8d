#!/usr/bin/env bash
# Build BeamDesk's front ends into beamdesk/web/static/app/ (run by `make frontend`).
# Dependencies come from the npm registry (or npm's cache when offline), pinned by
# package-lock.json; the build needs Node.js 20.19+ or 22.12+.
set -euo pipefail
cd "$(dirname "$0")"
# swagger-ui-dist depends on an install script that reports downloads unless told not to.
export SCARF_ANALYTICS=false

if [ -f package-lock.json ]; then
  npm ci --no-audit --no-fund --prefer-offline
else
  npm install --no-audit --no-fund --prefer-offline
fi
npx --no-install vite build --logLevel warn
# /api/docs and /api/redoc (beamdesk/web/routes/api_docs.py) serve Swagger UI's and ReDoc's
# published bundles from the package, so the API docs work offline and under the CSP.
docs=../beamdesk/web/static/app/api-docs
mkdir -p "$docs"
cp node_modules/swagger-ui-dist/{swagger-ui-bundle.js,swagger-ui-bundle.js.LICENSE.txt} "$docs/"
cp node_modules/swagger-ui-dist/{swagger-ui.css,favicon-32x32.png} "$docs/"
cp node_modules/redoc/bundles/{redoc.standalone.js,redoc.standalone.js.LICENSE.txt} "$docs/"
# ReDoc's side menu shows Redocly's logo from their CDN, with no option to turn it off: the
# copy points it at a blank SVG (img-src allows data:) so the page asks no other host.
sed -i 's|https://cdn.redoc.ly/redoc/logo-mini.svg|data:image/svg+xml,%3Csvg xmlns=%27http://www.w3.org/2000/svg%27/%3E|' \
  "$docs/redoc.standalone.js"
if grep -q 'https://cdn\.redoc\.ly' "$docs/redoc.standalone.js"; then
  echo "redoc.standalone.js still loads from a CDN: see frontend/build.sh" >&2
  exit 1
fi
cp node_modules/swagger-ui-dist/LICENSE "$docs/swagger-ui.LICENSE"
cp node_modules/redoc/LICENSE "$docs/redoc.LICENSE"
echo "front end built into beamdesk/web/static/app/"
