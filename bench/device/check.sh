#!/usr/bin/env bash
# The GPU check on the device machine (bench/device/README.md gives the calls, in order).
#
#   bench/device/check.sh receive N     keep part N of the onnxruntime-gpu wheel, carried as
#                                       .device/part-N (part 1 brings .device/wheels too); once
#                                       all have come, check every sha256 and install the
#                                       wheels into $WORK/site
#   bench/device/check.sh run [ARGS]    python -m ghostcomplete.bench.device_check ARGS, with
#                                       the installed wheels and the CUDA libraries in reach;
#                                       results go to $OUT (the device tool's) or ARGS' --out
#   bench/device/check.sh env           what `run` would use: python, onnxruntime, providers
#
# The project itself is the working tree this script sits in; it is put on the import path
# as the `ghostcomplete` package the way pyproject.toml's package-dir maps it (no build).
# PYTHON (default python3) and GHOSTCOMPLETE_DEVICE_WORK (default /tmp/ghostcomplete-device)
# can be set; the tests run `run --provider cpu --quick` and `receive` through them.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
python=${PYTHON:-python3}
work=${GHOSTCOMPLETE_DEVICE_WORK:-/tmp/ghostcomplete-device}
parts=${GHOSTCOMPLETE_DEVICE_PARTS:-$root/.device}
pins=${GHOSTCOMPLETE_DEVICE_PINS:-$root/bench/device/wheels.txt}

link_project() {
    "$python" - "$root" "$work/src" <<'EOF'
import sys, tomllib
from pathlib import Path

root, into = Path(sys.argv[1]), Path(sys.argv[2])
mapping = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
package = into / "ghostcomplete"
package.mkdir(parents=True, exist_ok=True)
for name, folder in mapping.items():
    link = package / name.split(".", 1)[1]
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(root / folder)
EOF
}

# The CUDA and cuDNN libraries of the machine's own pip packages (nvidia-*), which
# onnxruntime-gpu loads by name.
cuda_library_path() {
    "$python" - <<'EOF'
import glob, os, site

found = []
for base in site.getsitepackages():
    for folder in ("lib", "lib64"):
        found += sorted(glob.glob(os.path.join(base, "nvidia", "*", folder)))
print(":".join(dict.fromkeys(found)))
EOF
}

use_environment() {
    link_project
    export PYTHONPATH="$work/site:$work/src${PYTHONPATH:+:$PYTHONPATH}"
    local libraries
    libraries=$(cuda_library_path)
    if [ -n "$libraries" ]; then
        export LD_LIBRARY_PATH="$libraries${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    fi
    export PYTHONUNBUFFERED=1
}

receive() {
    local number=$1
    mkdir -p "$work"
    "$python" "$root/bench/device_parts.py" receive \
        --manifest "$parts/manifest.json" --part "$parts/part-$number" \
        --store "$work/parts" --wheels "$work/wheels" --pins "$pins" --small "$parts/wheels" \
        | tee "$work/receive.log"
    if grep -q '^complete:' "$work/receive.log"; then
        "$python" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir \
            --upgrade --target "$work/site" "$work"/wheels/*.whl
        rm -rf "$work/parts"
        echo "installed into $work/site: $(cd "$work/wheels" && ls | tr '\n' ' ')"
    fi
}

command=${1:-}
shift || true
case "$command" in
    receive)
        [ $# -eq 1 ] || { echo "usage: $0 receive N" >&2; exit 2; }
        receive "$1"
        ;;
    run)
        use_environment
        out=()
        if [ -n "${OUT:-}" ]; then
            out=(--out "$OUT")
        fi
        cd "$root"
        exec "$python" -m ghostcomplete.bench.device_check "${out[@]}" "$@"
        ;;
    env)
        use_environment
        "$python" -c 'import onnxruntime as o, sys; print(sys.executable, o.__version__, o.__file__, o.get_available_providers())'
        ;;
    *)
        echo "usage: $0 receive N | run [--provider cuda|cpu] [--quick] [--budget-s S] | env" >&2
        exit 2
        ;;
esac
