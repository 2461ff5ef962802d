#!/usr/bin/env bash
# Creates the Python environment the tests use to check lmtrain against the real tools:
# transformers (GPT-2 import/export, HellaSwag scoring) and tensorboard (its event reader), over
# Debian's torch (python3-torch). The tests find it at .venv-test/ in the repository, or at
# $LMTRAIN_TEST_PYTHON, and skip with a visible reason when it is missing.
# A failed install (no network) is reported but does not fail the caller.
set -uo pipefail
cd "$(dirname "$0")/.."
venv=.venv-test
if [ ! -x "$venv/bin/python" ]; then
  /usr/bin/python3 -m venv --system-site-packages "$venv" || { echo "setup-test-env: cannot create $venv" >&2; exit 0; }
fi
if ! "$venv/bin/python" -m pip install -q --disable-pip-version-check transformers==4.46.3 tensorboard==2.21.0; then
  echo "setup-test-env: pip install failed; the transformers and TensorBoard tests will be skipped" >&2
  exit 0
fi
"$venv/bin/python" -c "import torch, transformers, tensorboard; print('test env:', 'torch', torch.__version__, '| transformers', transformers.__version__, '| tensorboard', tensorboard.__version__)"
exit 0
