#!/usr/bin/env bash
# fastsel curate on the 60,000 MNIST training digits written as PNGs (issue 25's measurement)
set -euo pipefail

cd "${1:-.}"
if [ ! -f png/.done ]; then
python - <<'PY'
import os, numpy as np
from PIL import Image
from fastsel import data as D
ds = D.load("mnist", "train")
root = "png"
for i, (a, l) in enumerate(zip(ds.images, ds.labels)):
    d = os.path.join(root, str(int(l)))
    os.makedirs(d, exist_ok=True)
    Image.fromarray(a[..., 0] if a.ndim == 3 else a).save(os.path.join(d, f"{i:05d}.png"))
open(os.path.join(root, ".done"), "w").close()
print(len(ds.images), "PNGs")
PY
fi
git -C "$(dirname "$0")/../.." rev-parse --short HEAD > commit.txt
for f in pixels lenet; do
  rm -rf out-$f
  /usr/bin/time -v fastsel curate png -n 1000 --features $f --out out-$f --device cpu > log-$f.txt 2> time-$f.txt
done
echo done
