#!/usr/bin/env bash
# Build BeamDesk's front ends into beamdesk/web/static/app/ (run by `make frontend`).
# Dependencies come from the npm registry (or npm's cache when offline), pinned by
# package-lock.json; the build needs Node.js 20.19+ or 22.12+.
set -euo pipefail
cd "$(dirname "$0")"

if [ -f package-lock.json ]; then
  npm ci --no-audit --no-fund --prefer-offline
else
  npm install --no-audit --no-fund --prefer-offline
fi
npx --no-install vite build --logLevel warn
echo "front end built into beamdesk/web/static/app/"
