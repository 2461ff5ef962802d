#!/usr/bin/env bash
# Installs what lmtrain needs to build and test on Debian 12 (run as root). The CUDA toolkit is
# optional: with nvcc on PATH the CUDA sources are compiled too (-DLMTRAIN_CUDA=AUTO).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  ca-certificates cmake g++ make pkg-config git \
  libyaml-cpp-dev libcli11-dev libfmt-dev nlohmann-json3-dev catch2 \
  libopenblas-dev libgloo-dev libprotobuf-dev protobuf-compiler openssh-client openssh-server
