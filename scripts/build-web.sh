#!/usr/bin/env bash
# Builds the web dashboard: web/ -> web/dist, which `ocx exchange` serves at "/".
# npm packages only: `npm ci` installs exactly what web/package-lock.json pins, from the npm
# registry (nothing else is downloaded), then TypeScript checks the code and esbuild bundles
# it. Quick when nothing changed: node_modules is reinstalled only when the lock file moved.
set -euo pipefail
cd "$(dirname "$0")/../web"

node_major=$(node -p 'process.versions.node.split(".")[0]')
if ((node_major < 18)); then
  echo "build-web: Node.js 18 or newer is needed, this is $(node --version)" >&2
  exit 1
fi

stamp=node_modules/.ocx-installed-lock
if ! cmp -s package-lock.json "$stamp" 2>/dev/null; then
  echo "build-web: installing the dashboard's npm packages (web/package-lock.json)"
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
fi
npm run --silent typecheck
npm run --silent build
echo "build-web: dashboard built in web/dist"
