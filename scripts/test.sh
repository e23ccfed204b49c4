#!/usr/bin/env bash
# Install everything the tests need on a fresh machine, then lint and run the whole suite.
# Run from the repository root with ../shared/data beside it (or CODEFOCUS_DATA set).
set -euo pipefail
# Debian packages: WordNet (substitute words) and Chromium (the report's browser test)
if { [ ! -f /usr/share/wordnet/data.noun ] || [ ! -x /usr/bin/chromium ]; } && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && apt-get install -y -qq wordnet-base chromium) >/dev/null
fi
python3 -m venv .venv
.venv/bin/pip install -q -e '.[test,model,docs]'
# codebleu 0.7.0 pins tree-sitter<0.23 but works only with the 0.23 grammars: no-deps on purpose
.venv/bin/pip install -q --no-deps codebleu==0.7.0
# a real OpenAI-compatible server for the endpoint tests; it builds from source (minutes; pip caches
# the wheel). Where it cannot build, the llama.cpp test module says so and is skipped.
timeout 1800 .venv/bin/pip install -q 'llama-cpp-python[server]==0.3.36' \
  || echo "llama-cpp-python did not build here: tests/integration/test_llama_server.py is skipped"
.venv/bin/ruff check src tests benchmarks
.venv/bin/mypy  # the type check over src/ (settings in pyproject.toml)
export CODEFOCUS_DATA="${CODEFOCUS_DATA:-$(pwd)/../shared/data}"
# the docs site (docs/, mkdocs.yml), built strictly into a temporary folder, never into the repo
site="$(mktemp -d)"
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir "$site"
rm -rf "$site"
# CI runs the whole suite. While developing, the fast unit target (under 3 minutes) leaves out the
# tests marked slow, integration and browser (markers in pyproject.toml, tests/conftest.py):
#   .venv/bin/python -m pytest -q -m "not slow and not integration and not browser"
# and -m "not needs_data" runs what needs no data directory.
.venv/bin/python -m pytest -q -W ignore::PendingDeprecationWarning "$@"
