# CI preparation for the pod tests in tests/infra (netns sshd pods, systemd-as-PID-1 pod).
# Source or paste into .ci/run, as root, before pytest. Idempotent; installs packages only:
# nothing else persistent is made on the host (the pods use a private tmpfs /run, so /run/sshd is
# NOT needed; bridges, netns and cgroups are created and removed by the tests themselves).
set -eu

need=""
[ -x /usr/sbin/sshd ] || need="$need openssh-server"      # sshd for every pod (+ ssh.service for the systemd pod)
command -v ssh >/dev/null 2>&1 || need="$need openssh-client"
command -v ssh-keygen >/dev/null 2>&1 || need="$need openssh-client"
command -v ip >/dev/null 2>&1 || need="$need iproute2"    # ip netns / bridge / veth
[ -x /lib/systemd/systemd ] || need="$need systemd"         # the systemd pod boots the host's systemd binary
command -v unshare >/dev/null 2>&1 || need="$need util-linux"
command -v nsenter >/dev/null 2>&1 || need="$need util-linux"
command -v rg >/dev/null 2>&1 || need="$need ripgrep"          # gpumod prompt's `rg` tool (a Python fallback exists)
if [ -n "$need" ]; then
  apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need
fi

# Kernel features the pods need (report only; a CI runner without them must be fixed, not skipped).
grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || echo "ci-setup: WARNING no overlayfs" >&2
grep -qw cgroup2 /proc/mounts || echo "ci-setup: WARNING no cgroup2 mount (systemd pod tests will fail)" >&2

# In CI the pod tests must run, not skip: the fixtures turn a skip into a failure with this set.
export GPUMOD_REQUIRE_POD_TESTS=1
