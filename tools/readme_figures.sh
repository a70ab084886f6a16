#!/usr/bin/env bash
# Remakes the README's figures in docs/figures/ from the built-in synthetic set, with each
# exercise's default settings (segnet too: about 8 minutes on a CPU with OpenBLAS).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -d data/imori ]; then
  echo "error: data/imori exists; move it aside so the figures come from the synthetic set" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
run() { deno task "$1" --out "$work" "${@:2}"; }
run bin_dataset
run semaseg_dataset
run bin_loss --checkpoint "$work/ck_bin"
run bin_test --checkpoint "$work/ck_bin"
run semaseg_loss --checkpoint "$work/ck_semaseg"
run semaseg_test --checkpoint "$work/ck_semaseg"
for exercise in nearest transposeconv concat unetlike segnet; do
  run "$exercise" --checkpoint "$work/ck_$exercise"
done
# Named by exercise only: files named like the Imori photos stay out of the repository.
mkdir -p docs/figures
for figure in bin_dataset_akahara_0001 semaseg_dataset_madara_0001 bin_loss_loss \
  bin_test_madara_0010 semaseg_test_akahara_0011 nearest_madara_0010 transposeconv_madara_0010 \
  concat_madara_0010 unetlike_madara_0010 segnet_madara_0010; do
  # Per-photo figures lie in the photo's class folder: $work/madara/nearest_madara_0010.png.
  class=$(echo "$figure" | sed -nE 's/.*_(akahara|madara)_[0-9]+$/\1/p')
  cp "$work/${class:+$class/}$figure.png" \
    "docs/figures/$(echo "$figure" | sed -E 's/_(akahara|madara)_[0-9]+$//').png"
done
echo "figures: docs/figures/"
