#!/usr/bin/env bash
# Pack LlamaFactory 0.9.5 and its pinned packages (gpu/llamafactory-requirements.txt) as wheels for
# the offline GPU machine (cp312, x86-64), in <=48 MiB parts that unpack themselves there into a
# folder of their own (default /tmp/lf-site), apart from the staged vLLM packages (/tmp/site):
# only the LlamaFactory trainer's subprocess gets it, as its sole PYTHONPATH.
#
# Run from the project root:   gpu/stage_llamafactory.sh
# It writes .device-llamafactory/p1 ... (git-ignored) and prints what to run there, in order.
# Then run tst-bench with  TST_BENCH_LLAMAFACTORY_PYTHONPATH=/tmp/lf-site  (or
# --trainer-option python_path=/tmp/lf-site).
set -euo pipefail
ROOT=$(pwd)
OUTDIR="$ROOT/.device-llamafactory"
PART_MB=${PART_MB:-48}
TARGET=${LF_SITE:-/tmp/lf-site}
HERE=$(cd "$(dirname "$0")" && pwd)
case "${1:-}" in
  -h|--help) sed -n 2,10p "$0"; exit 0 ;;
  "") ;;
  *) echo "unknown argument: $1" >&2; exit 2 ;;
esac
git rev-parse --git-dir >/dev/null 2>&1 || { echo "run this from the project root (a git checkout)" >&2; exit 2; }
mapfile -t PACKAGES < <(grep -v -e '^#' -e '^$' "$HERE/llamafactory-requirements.txt")
rm -rf "$OUTDIR"; mkdir -p "$OUTDIR/payload/wheels"
PIP_CONSTRAINT= python3 -m pip download -q --isolated --no-deps --only-binary=:all: \
  --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux_2_24_x86_64 --platform manylinux_2_26_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_31_x86_64 --platform manylinux_2_34_x86_64 --platform manylinux1_x86_64 \
  -d "$OUTDIR/payload/wheels" "${PACKAGES[@]}"
tar -C "$OUTDIR/payload" -cf "$OUTDIR/payload.tar" .
split -b "${PART_MB}m" -d -a 2 "$OUTDIR/payload.tar" "$OUTDIR/piece."
N=$(ls "$OUTDIR"/piece.* | wc -l)
i=0
for piece in "$OUTDIR"/piece.*; do
  i=$((i+1)); P="$OUTDIR/p$i"; mkdir -p "$P"; mv "$piece" "$P/"
  cat > "$P/unpack.sh" <<UNPACK
#!/usr/bin/env bash
# LlamaFactory part $i of $N: keep this piece on the device; once all $N are there, install them
# into $TARGET and check that \`llamafactory-cli train\`'s imports load from there.
set -euo pipefail
mkdir -p /tmp/stage-llamafactory/pieces
cp "\$(dirname "\$0")"/piece.* /tmp/stage-llamafactory/pieces/
have=\$(ls /tmp/stage-llamafactory/pieces | wc -l)
if [[ "\$have" -lt $N ]]; then echo "staged LlamaFactory piece $i ($N total, \$have present)"; exit 0; fi
cat /tmp/stage-llamafactory/pieces/piece.* > /tmp/stage-llamafactory/payload.tar
tar -C /tmp/stage-llamafactory -xf /tmp/stage-llamafactory/payload.tar
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target $TARGET /tmp/stage-llamafactory/wheels/*.whl
env -u PYTHONPATH PYTHONPATH=$TARGET python3 -c "
import importlib.metadata as md, llamafactory.train.tuner, transformers
assert transformers.__file__.startswith('$TARGET'), transformers.__file__
print('LlamaFactory', md.version('llamafactory'), 'in $TARGET with', ', '.join(
    f'{n} {md.version(n)}' for n in ('transformers', 'peft', 'trl', 'accelerate', 'datasets', 'torch')))"
echo "installed into $TARGET (export TST_BENCH_LLAMAFACTORY_PYTHONPATH=$TARGET)"
UNPACK
  chmod +x "$P/unpack.sh"
done
rm -rf "$OUTDIR/payload" "$OUTDIR/payload.tar"
echo "staged $N part(s) in .device-llamafactory/ ($(du -sh "$OUTDIR" | cut -f1)). On the GPU host, in order:"
for j in $(seq 1 "$N"); do
  echo "  $j: carry .device-llamafactory/p$j, run: bash .device-llamafactory/p$j/unpack.sh"
done
