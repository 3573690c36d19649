#!/usr/bin/env bash
# The test stage, as Jenkins runs it and as anyone can run it: bring the reference stack up,
# run the test suite against it (JUnit XML in reports/), always tear down.
# Run id: $BUILD_TAG in Jenkins (concurrent builds on one agent never collide), else a new one.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p reports
exec .venv/bin/envctl ci --junit-dir reports --artifacts reports/envctl \
  -- .venv/bin/python -m pytest --junitxml=reports/tests.xml "$@"
