#!/usr/bin/env bash
# Fashion-MNIST for training and the clothing tests: Debian's `dataset-fashion-mnist`
# (Zalando SE, MIT licence: the four gzipped IDX files in /usr/share/datasets/fashion-mnist),
# installed with apt when missing and $FASHION_DATA names no other copy. Prints the folder.
set -euo pipefail
DIR=/usr/share/datasets/fashion-mnist
if [ -n "${FASHION_DATA:-}" ]; then
  echo "$FASHION_DATA"
  exit 0
fi
if [ ! -f "$DIR/t10k-labels-idx1-ubyte.gz" ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist >&2
fi
echo "$DIR"
