#!/usr/bin/env bash
# Installs what dptrain needs from Debian's packages, skipping what is already there.
# Idempotent: a second run installs nothing. Needs root (or sudo) only when something is missing.
# Usage: scripts/setup.sh [--with-compare]   (--with-compare adds PyTorch/Optuna for scripts/)
set -euo pipefail

# iproute2: ip and tc for the emulated cluster (scripts/emulate_cluster.sh)
# clang, libclang-rt-14-dev: libFuzzer and the sanitizers' runtimes for scripts/fuzz.sh
pkgs=(build-essential cmake pkg-config openmpi-bin libopenmpi-dev libyaml-dev libcriterion-dev
      libopenblas-dev liblapacke-dev zlib1g-dev dataset-fashion-mnist iproute2 clang
      libclang-rt-14-dev)
if [ "${1:-}" = "--with-compare" ]; then pkgs+=(python3-torch python3-optuna python3-matplotlib); fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#pkgs[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
