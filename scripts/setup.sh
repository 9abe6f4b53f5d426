#!/usr/bin/env bash
# Installs what dptrain needs from Debian's packages, skipping what is already there.
# Idempotent: a second run installs nothing. Needs root (or sudo) only when something is missing.
# Usage: scripts/setup.sh [--with-compare] [--with-schedulers]
#   --with-compare     adds PyTorch/Optuna for scripts/
#   --with-schedulers  adds SLURM (slurmctld, slurmd, munge) and Son of Grid Engine for the tests
#                      that submit the job scripts to real schedulers (scripts/slurm_one_node.sh,
#                      scripts/gridengine_one_node.sh); their daemons are not started
set -euo pipefail

# iproute2: ip and tc for the emulated cluster (scripts/emulate_cluster.sh)
# clang, libclang-rt-14-dev: libFuzzer and the sanitizers' runtimes for scripts/fuzz.sh
pkgs=(build-essential cmake pkg-config openmpi-bin libopenmpi-dev libyaml-dev libcriterion-dev
      libopenblas-dev liblapacke-dev zlib1g-dev dataset-fashion-mnist iproute2 clang
      libclang-rt-14-dev)
schedulers=0
for arg in "$@"; do
  case $arg in
    --with-compare) pkgs+=(python3-torch python3-optuna python3-matplotlib) ;;
    --with-schedulers)
      schedulers=1
      pkgs+=(slurmctld slurmd slurm-client munge gridengine-master gridengine-exec gridengine-client
             gridengine-common) ;;
    *) echo "setup: unknown option '$arg' (expected --with-compare, --with-schedulers)" >&2; exit 2 ;;
  esac
done

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
if [ "$schedulers" = 1 ]; then
  # Grid Engine's packages ask where the master is: this host, cell "default", configured by the
  # master's postinst (SGE_ROOT /var/lib/gridengine)
  master=$(hostname)
  for p in gridengine-master gridengine-exec gridengine-client gridengine-common; do
    printf '%s shared/gridengineconfig boolean true\n%s shared/gridenginecell string default\n%s shared/gridenginemaster string %s\n' \
      "$p" "$p" "$p" "$master" | $sudo debconf-set-selections
  done
fi
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
