"""TensorFlow never loads in the app's process, on any page (issue #14: the server stays
under Community Cloud's ~690 MB only without TensorFlow's ~600 MB).

Every page runs under AppTest in a fresh Python process (this one may have imported
TensorFlow in other tests): Look inside with each shipped model picked, and a Train live
run of a Keras model, which trains in its worker process. Then that process lists which of
``tensorflow`` and ``keras`` it imported, and ``onnxruntime``, which only a batch of a
thousand images or more loads (mnist_core.engine.onnx_graph): the Kaggle page, given 1,100 rows,
predicts them in a worker process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

import app_helpers as h

SCRIPT = r"""
import json, sys, time
from streamlit.testing.v1 import AppTest

from pathlib import Path
# Every page but Train live (run below), Look inside last (its model picker is used below).
pages = sorted(str(p) for p in Path("app_pages").glob("*.py")
               if p.stem not in ("train_live", "look_inside")) + ["app_pages/look_inside.py"]
seen = {}
at = AppTest.from_file("app.py", default_timeout=180).run()
for page in pages:
    at.switch_page(page).run()
    assert not at.exception, (page, [e.message for e in at.exception])
views = {}
for name in ("numpy", "dense", "cnn", "lenet5"):
    at.segmented_control(key="inside_model").set_value(name).run()
    assert not at.exception, (name, [e.message for e in at.exception])
    captions = [c for img in at.image for c in img.captions]
    views[name] = ["feature maps" if any("maps of" in c for c in captions) else
                   "activations" if any("units above zero" in c for c in captions) else None,
                   sum(c.endswith(")") and "%" in c for c in captions)]  # saliency panels
seen["look inside"] = views
# A Kaggle file large enough for ONNX Runtime: the page predicts it in a worker.
import numpy as np
rows = np.random.default_rng(0).integers(0, 256, (1100, 784))
csv = ("\n".join([",".join(f"pixel{i}" for i in range(784))]
                  + [",".join(map(str, r)) for r in rows.tolist()]) + "\n").encode()
at.switch_page("app_pages/kaggle.py").run()
at.file_uploader(key="kaggle_upload").set_value(("test.csv", csv, "text/csv")).run()
at.segmented_control(key="kaggle_model").set_value("cnn").run()
at.button(key="kaggle_predict").click().run()
assert not at.exception, [e.message for e in at.exception]
seen["kaggle"] = [len(at.get("download_button")), [e.value for e in at.error]]
at.switch_page("app_pages/train_live.py").run()
at.segmented_control(key="train_model").set_value("dense").run()
at.selectbox(key="train_hidden").set_value("64")
at.slider(key="train_images").set_value(1000)
at.slider(key="train_epochs").set_value(1)
at.button(key="train").click().run()
job = at.session_state["train_job"]
deadline = time.monotonic() + 300
while not job.finished and time.monotonic() < deadline:
    time.sleep(0.2)
at.run()
assert not at.exception, [e.message for e in at.exception]
seen["train"] = [job.status, job.error, type(job.model).__name__,
                 "Your test accuracy" in [m.label for m in at.metric]]
seen["imported"] = sorted(m for m in ("tensorflow", "keras", "onnxruntime") if m in sys.modules)
print(json.dumps(seen))
"""


def test_no_page_imports_tensorflow(tmp_path):
    d = h.synthetic_dataset(n_train=1500, n_test=200)
    data = tmp_path / "mnist.npz"
    np.savez(data, x_train=d.x_train, y_train=d.y_train, x_test=d.x_test, y_test=d.y_test)
    env = {**os.environ, "MNIST_DATA": str(data),
           "MNIST_STUDIO_ARTIFACTS": str(h.REPO / "artifacts"),
           "MNIST_STUDIO_CLASS_DB": str(tmp_path / "class.sqlite")}
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=h.REPO, env=env,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["look inside"] == {  # each model's own views, every model's saliency
        "numpy": ["activations", 8], "dense": ["activations", 8],
        "cnn": ["feature maps", 8], "lenet5": ["feature maps", 8]}
    assert seen["train"] == ["done", None, "KerasModel", True]
    assert seen["kaggle"] == [1, []]
    assert seen["imported"] == []
