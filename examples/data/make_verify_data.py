"""Make the small files the verify_*.nnmip examples use (run from anywhere; writes next to this file).

* ``verify_bcw.npz``: a 9-12-2 ReLU classifier of the Breast Cancer Wisconsin data, fitted with scikit-learn on
  minmax-scaled features (the scaling of the ``bcw`` data statement: fitted on its train split).
* ``verify_bcw.onnx``: the same network on *raw* features (the scaling is part of the ONNX graph).
* ``verify_point.npy``: the scaled first row of the data set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.neural_network import MLPClassifier

from nnmip.drivers.verify import network_from_layers
from nnmip.io.data import DataSource, Preprocess, load_dataset
from nnmip.io.onnx import export_onnx

HERE = Path(__file__).resolve().parent


def main() -> None:
    """Fit the classifier and write the three files."""
    src = DataSource("csv", path="breast-cancer-wisconsin.csv", delimiter=";", label=-1)
    ds = load_dataset(src, Preprocess(scale="minmax", train=0.5, validation=0.25, test=0.25, seed=0), HERE)
    X, y = ds.X(ds.train), ds.y[ds.train]
    clf = MLPClassifier(hidden_layer_sizes=(12,), max_iter=3000, random_state=0).fit(X, y)
    W1, b1 = clf.coefs_[0].T, clf.intercepts_[0]
    w2, b2 = clf.coefs_[1].T, clf.intercepts_[1]
    # one logistic output -> two scores (class 0 score 0, class 1 score w2 . h + b2): argmax = predict
    W2 = np.vstack([np.zeros_like(w2), w2])
    B2 = np.r_[0.0, b2]
    np.savez(HERE / "verify_bcw.npz", W1=W1, b1=b1, W2=W2, b2=B2)
    net = network_from_layers([(W1, b1), (W2, B2)], name="bcw_relu")
    export_onnx(net, HERE / "verify_bcw.onnx", ds.scaler)
    np.save(HERE / "verify_point.npy", ds.X(np.array([0]))[0])
    acc = float(np.mean(net.predict(ds.X(ds.test)) == ds.y[ds.test]))
    print(f"test accuracy {acc:.3f}")


if __name__ == "__main__":
    main()
