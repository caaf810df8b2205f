"""Stacks the pilot classifier member's logits with the head's P(non-metal) (logistic regression fitted on validation)."""
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict
from sklearn.metrics import roc_auc_score, log_loss
L = np.load("runs/cls_pilot/best_logits.npz"); H = np.load("runs/cls_pilot/head_detail.npz")
print("roost member best epoch", int(L["epoch"]))
def feats(k):
    p = np.clip(H[f"{k}_p_nonmetal"].astype(np.float64), 1e-6, 1 - 1e-6)
    return np.c_[np.log(p / (1 - p)), L[k]], H[f"{k}_y"] > 0
Xv, yv = feats("val"); Xt, yt = feats("test")
for cols, name in (([0], "head"), ([1], "roost BCE member"), ([0, 1], "both")):
    pv = cross_val_predict(LogisticRegression(), Xv[:, cols], yv, cv=5, method="predict_proba")[:, 1]
    pt = LogisticRegression().fit(Xv[:, cols], yv).predict_proba(Xt[:, cols])[:, 1]
    print(f"{name:18s} val(5-fold) logloss {log_loss(yv, pv):.4f} AUC {roc_auc_score(yv, pv):.4f} | test logloss {log_loss(yt, pt):.4f} AUC {roc_auc_score(yt, pt):.4f} acc {((pt >= .5) == yt).mean():.4f}")
