#!/usr/bin/env bash
# Tests griffin serve with the official OpenAI client (npm `openai`, the version pinned in package-lock.json,
# installed here into tests/server/node_modules) and curl. GRIFFIN_CLI is the griffin executable (ctest sets
# it). Every server a test starts listens on 127.0.0.1 on a port the system picks, and is stopped by the test;
# each test has a time limit, and the whole run takes about half a minute on the demo model.
set -euo pipefail
cd "$(dirname "$0")"
: "${GRIFFIN_CLI:?set GRIFFIN_CLI to the griffin executable}"
if [ ! -d node_modules/openai ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
exec node --test --test-timeout=60000 --test-concurrency=1 server.test.mjs
