#!/usr/bin/env bash
# The board install and runtime, checked without a board: Debian bookworm arm64 and armhf
# userlands (stand-ins for Raspberry Pi OS 64- and 32-bit) run under qemu-user 10.
#
#   sudo scripts/check_arm.sh [--bundle DIR] [--arch "arm64 armhf"] [--images N] [--cache DIR] [--out PREFIX]
#
# In each userland: the bundle is copied in (with this checkout's device/), `sh device/install.sh`
# installs from the package index alone, device/run_camera.py answers a short MJPG video and N of
# the bundle's eval images (PNG files; default 100, all 500 take ~17 min a target), and
# device/profile.py --quick runs. The host runs the same
# files with its own runtime; scripts/arm_results.py compares the labels and writes PREFIX.md and
# PREFIX.json (default bench/results/arm_emulation). Timings under emulation say nothing about
# a board and are not reported.
#
# Needs root (apt, binfmt_misc, mmdebstrap, chroot) and Debian bookworm as the host. The
# userlands are cached under --cache (default /var/cache/dynedge-arm), so a rerun skips the
# bootstrap. Too slow for the default test run (tens of minutes); CI can run it as its own job.
# PYTHON (default .venv/bin/python) is the host's environment, which runs the host side.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
BUNDLE=""
ARCHES="arm64 armhf"
CACHE=/var/cache/dynedge-arm
OUT=bench/results/arm_emulation
IMAGES=100
COMMAND="scripts/check_arm.sh $*"
APT_PACKAGES="python3-numpy python3-opencv python3-psutil"   # what device/install.py asks for on armhf

die() { echo "check_arm: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --bundle) BUNDLE=$(realpath "${2:?}"); shift 2 ;;
        --arch) ARCHES=${2:?}; shift 2 ;;
        --images) IMAGES=${2:?}; shift 2 ;;
        --cache) CACHE=${2:?}; shift 2 ;;
        --out) OUT=${2:?}; shift 2 ;;
        -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"; exit 0 ;;
        *) die "unknown argument $1: use --bundle DIR, --arch \"arm64 armhf\", --images N, --cache DIR or --out PREFIX" ;;
    esac
done
[ "$(id -u)" = 0 ] || die "needs root (apt, binfmt_misc, mmdebstrap, chroot): run it with sudo"
[ -x "$PYTHON" ] || die "no host Python at $PYTHON: run scripts/setup.sh, or set PYTHON"
for arch in $ARCHES; do
    case $arch in arm64|armhf) ;; *) die "--arch takes arm64 and/or armhf, not $arch" ;; esac
done
grep -q '^VERSION_CODENAME=bookworm' /etc/os-release || die "the host must be Debian bookworm (its apt builds the userlands)"

# The host's own Debian mirror for a suite, so that nothing here names one.
mirror_of() {
    apt-get indextargets --format '$(RELEASE) $(REPO_URI)' 'Created-By: Packages' | awk -v s="$1" '$1 == s {print $2; exit}'
}

# qemu-user 10 from bookworm-backports: bookworm's qemu 7.2 crashes ai-edge-litert >= 2.2 (SIGSEGV).
install_tools() {
    local version
    version=$(qemu-aarch64-static --version 2>/dev/null | awk '/version/ {split($3, v, "."); print v[1]; exit}')
    if [ "${version:-0}" -lt 10 ] || ! command -v mmdebstrap >/dev/null || ! command -v update-binfmts >/dev/null; then
        if [ -z "$(mirror_of bookworm-backports)" ]; then
            local main; main=$(mirror_of bookworm)
            [ -n "$main" ] || die "apt has no bookworm suite to take the backports mirror from"
            printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
                "$main" > /etc/apt/sources.list.d/dynedge-backports.sources
        fi
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports qemu-user-static
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq binfmt-support mmdebstrap
    fi
    qemu-aarch64-static --version | head -1
}

# Register qemu's formats (qemu 10 ships them as binfmt.d files; its F flag lets a chroot use them).
register_binfmt() {
    mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    local fmt conf
    for fmt in qemu-aarch64 qemu-arm; do
        conf=/usr/lib/binfmt.d/$fmt.conf
        [ -f "$conf" ] || die "no $conf: qemu-user-binfmt is not installed"
        [ -e /proc/sys/fs/binfmt_misc/$fmt ] && echo -1 > /proc/sys/fs/binfmt_misc/$fmt   # drop an older registration
        grep -v '^#' "$conf" > /proc/sys/fs/binfmt_misc/register
    done
    update-binfmts --enable >/dev/null 2>&1 || true   # binfmt-support's own formats, if any
}

# A cached bookworm userland for $1; armhf gets the apt packages device/install.py asks for there.
bootstrap() {
    local arch=$1 root=$CACHE/bookworm-$1 include=python3,python3-venv,ca-certificates
    [ "$arch" = armhf ] && include=$include,${APT_PACKAGES// /,}
    if [ ! -e "$root/.dynedge-complete" ]; then
        rm -rf "$root" "$root.tmp"
        mkdir -p "$CACHE"
        mmdebstrap --arch="$arch" --variant=apt --include="$include" bookworm "$root.tmp" \
            "deb $(mirror_of bookworm) bookworm main" "deb $(mirror_of bookworm-updates) bookworm-updates main" \
            "deb $(mirror_of bookworm-security) bookworm-security main" >&2
        touch "$root.tmp/.dynedge-complete"
        mv "$root.tmp" "$root"
    fi
    echo "$root"
}

cleanup() {
    local arch m
    for arch in $ARCHES; do
        for m in dev sys proc; do
            mountpoint -q "$CACHE/bookworm-$arch/$m" && { umount -R "$CACHE/bookworm-$arch/$m" || umount -l "$CACHE/bookworm-$arch/$m"; }
        done
    done
    return 0
}
trap cleanup EXIT

# The emulated CPU: a Pi 5's for arm64, an ARMv7 with NEON for armhf. qemu's default ("max")
# offers SVE/SME, which no Pi has and which TCG runs far slower.
cpu_of() { [ "$1" = arm64 ] && echo cortex-a76 || echo cortex-a15; }

# Run "$@" in the userland as a clean login would: no host environment but PATH and HOME.
in_root() {
    local root=$1 arch=$2; shift 2
    chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
        QEMU_CPU="$(cpu_of "$arch")" \
        LANG=C.UTF-8 ${http_proxy:+http_proxy=$http_proxy} ${https_proxy:+https_proxy=$https_proxy} \
        ${no_proxy:+no_proxy=$no_proxy} "$@"
}

# The host's answers on the same files (fp32, the largest subnet, one thread).
host_runs() {
    local out=$WORK/host k=$1
    mkdir -p "$out"
    (cd "$REPO" && OMP_NUM_THREADS=1 "$PYTHON" device/run_camera.py --bundle "$BUNDLE" --source "$WORK/inputs/clip.avi" \
        --policy "fixed:$k" --budget 10s --threads 1 --board x86_64 --log "$out/video.jsonl" 2> "$out/video.log")
    (cd "$REPO" && OMP_NUM_THREADS=1 "$PYTHON" device/run_camera.py --bundle "$BUNDLE" --source "$WORK/inputs/eval" \
        --policy "fixed:$k" --budget 10s --threads 1 --board x86_64 --log "$out/images.jsonl" 2> "$out/images.log")
}

# One emulated target: copy the bundle in, install, run, profile; results into $WORK/$arch.
emulated_runs() {
    local arch=$1 k=$2 root board
    board=$([ "$arch" = arm64 ] && echo rpi5 || echo rpi4)
    root=$(bootstrap "$arch")
    echo "check_arm: $arch userland at $root" >&2
    for m in proc sys dev; do
        mountpoint -q "$root/$m" || mount --rbind "/$m" "$root/$m"
    done
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    cp "$(realpath "${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}")" "$root/etc/dynedge-host-ca.pem"
    printf '[global]\ncert = /etc/dynedge-host-ca.pem\ndisable-pip-version-check = true\n' > "$root/etc/pip.conf"
    rm -rf "$root/root/bundle" "$root/root/inputs" "$root/root/out"
    cp -a "$BUNDLE" "$root/root/bundle"
    rm -rf "$root/root/bundle/device" "$root/root/bundle/.venv"
    cp -a "$REPO/device" "$root/root/bundle/device"
    find "$root/root/bundle/device" -name __pycache__ -prune -exec rm -rf {} +
    cp -a "$WORK/inputs" "$root/root/inputs"
    mkdir -p "$root/root/out" "$WORK/$arch"
    set +e
    in_root "$root" "$arch" sh -c 'cd /root/bundle && sh device/install.sh --report /root/out/install.json' \
        > "$WORK/$arch/install.log" 2>&1
    echo $? > "$WORK/$arch/install.rc"
    if [ "$(cat "$WORK/$arch/install.rc")" = 0 ]; then
        for src in video:clip.avi images:eval; do
            in_root "$root" "$arch" sh -c "cd /root/bundle && .venv/bin/python device/run_camera.py --source /root/inputs/${src#*:} \
                --policy fixed:$k --budget 10s --threads 1 --board $board --log /root/out/${src%%:*}.jsonl" \
                > "$WORK/$arch/${src%%:*}.log" 2>&1
            echo $? > "$WORK/$arch/${src%%:*}.rc"
        done
        in_root "$root" "$arch" sh -c "cd /root/bundle && .venv/bin/python device/profile.py --quick --threads 1 --board $board \
            --out /root/out/profile" > "$WORK/$arch/profile.log" 2>&1
        echo $? > "$WORK/$arch/profile.rc"
    fi
    set -e
    cp -a "$root/root/out/." "$WORK/$arch/"
    tail -3 "$WORK/$arch/install.log" >&2
}

install_tools
register_binfmt
WORK=$(mktemp -d /tmp/dynedge-arm.XXXXXX)
if [ -z "$BUNDLE" ]; then   # the tiny real bundle the tests build (tests/fixtures_bundle.py)
    "$PYTHON" -c "import sys; sys.path.insert(0, '$REPO'); from tests.fixtures_bundle import build_tiny_bundle as b; print(b('$WORK/build'))" > "$WORK/bundle-path"
    BUNDLE=$(cat "$WORK/bundle-path")
fi
[ -f "$BUNDLE/model/manifest.json" ] || die "no bundle at $BUNDLE (no model/manifest.json)"
K=$("$PYTHON" -c "import json, sys; print(len(json.load(open(sys.argv[1]))['exits']))" "$BUNDLE/model/manifest.json")
"$PYTHON" "$REPO/scripts/arm_results.py" inputs --bundle "$BUNDLE" --dir "$WORK/inputs" --images "$IMAGES"
host_runs "$K"
for arch in $ARCHES; do   # the bootstraps one after the other, then the targets side by side
    bootstrap "$arch" > /dev/null
done
for arch in $ARCHES; do emulated_runs "$arch" "$K" & done
wait
"$PYTHON" "$REPO/scripts/arm_results.py" report --bundle "$BUNDLE" --dir "$WORK" --arch "$ARCHES" \
    --command "$COMMAND" --out "$REPO/$OUT"
echo "check_arm: logs in $WORK" >&2
