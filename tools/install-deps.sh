#!/usr/bin/env bash
# Installs what lmtrain needs to build and run on Debian 12 (run as root). The CUDA toolkit is
# optional: with nvcc on PATH the CUDA sources are compiled too (-DLMTRAIN_CUDA=AUTO).
#   bash tools/install-deps.sh           build and train
#   bash tools/install-deps.sh --tests   also what only the test suite needs: Debian's torch and
#                                        a Python environment with transformers and tensorboard
#                                        (tools/setup-test-env.sh), for the round trips with them,
#                                        clang with libFuzzer for tools/fuzz.sh, iproute2 for
#                                        the network-namespace hosts, and slurm-wlm with munge
#                                        for the Slurm tests
set -euo pipefail
tests=0
for arg in "$@"; do
  case "$arg" in
    --tests) tests=1 ;;
    *) echo "install-deps.sh: unknown argument '$arg' (expected --tests)" >&2; exit 2 ;;
  esac
done
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  ca-certificates cmake g++ make pkg-config git \
  libyaml-cpp-dev libcli11-dev libfmt-dev nlohmann-json3-dev catch2 \
  libopenblas-dev libgloo-dev libprotobuf-dev protobuf-compiler openssh-client openssh-server
if [ "$tests" = 1 ]; then
  apt-get install -y -qq --no-install-recommends python3 python3-venv python3-torch libopenblas0-pthread \
    clang libclang-rt-dev libomp-dev
  # A one-node Slurm cluster for tests/cli/test_slurm.cpp (tools/slurm-local.sh starts it; the
  # packages' own services are not started: no systemd here, and the test's cluster is private).
  apt-get install -y -qq --no-install-recommends slurm-wlm munge
  bash "$(dirname "$0")/setup-test-env.sh"
  # Separate hosts as network namespaces (tools/netns-hosts.sh, tests/cli/test_netns_hosts.cpp).
  apt-get install -y -qq --no-install-recommends iproute2
fi
