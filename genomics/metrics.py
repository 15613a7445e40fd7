"""Classification metrics through scikit-learn, as a JSON-ready dict."""
from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    matthews_corrcoef,
    precision_recall_fscore_support,
    roc_auc_score,
)


def classification_metrics(y_true: np.ndarray, probs: np.ndarray, classes: np.ndarray) -> dict[str, Any]:
    """accuracy, mcc, auroc (binary: of the second class; more classes: macro one-vs-rest; None when
    `y_true` holds a single class), confusion (rows true, columns predicted, in `classes` order), n, classes,
    and with more than two classes per_class: each class's precision, recall and support (0 where undefined)."""
    y_pred = classes[probs.argmax(axis=1)]
    present = np.unique(y_true)
    auroc = None
    if len(present) == len(classes):
        if len(classes) == 2:
            auroc = float(roc_auc_score(y_true == classes[1], probs[:, 1]))
        else:
            auroc = float(roc_auc_score(np.searchsorted(classes, y_true), probs, multi_class="ovr",
                                        labels=range(len(classes))))
    metrics = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "mcc": float(matthews_corrcoef(y_true, y_pred)),
        "auroc": auroc,
        "confusion": confusion_matrix(y_true, y_pred, labels=classes).tolist(),
        "n": int(len(y_true)),
        "classes": classes.tolist(),
    }
    if len(classes) > 2:
        precision, recall, _, support = precision_recall_fscore_support(y_true, y_pred, labels=classes,
                                                                        zero_division=0)
        metrics["per_class"] = [{"class": c, "precision": float(p), "recall": float(r), "support": int(n)}
                                for c, p, r, n in zip(classes.tolist(), precision, recall, support)]
    return metrics
