"""Training-side mitigations, checked rather than assumed, on scikit-learn's digits (8 x 8, offline).

Goodfellow et al. (2015) claim that a linear model's L2 weight decay makes it harder to fool at a cost
in accuracy, and that RBF networks resist adversarial examples (their mistakes come with low
confidence). Here the claims become measurements. Models (pure torch, trained in seconds on a CPU):

- ``softmax l2=λ``: multinomial logistic regression, mean cross-entropy + λ/2 ||W||², L-BFGS;
- ``mlp``: one hidden ReLU layer, Adam;
- ``rbf``: Goodfellow's shallow RBF model, p(y=k|x) = 1 - Π_j (1 - exp(-(x - μ_j)ᵀ diag(β_j)(x - μ_j)))
  over the class's prototypes j (k-means centres of its training images), trained one-vs-rest with
  binary cross-entropy. Its class probabilities are not normalised: far from every prototype all are
  near 0, so a confident mistake needs a point near another class's prototype.

For each model: clean test accuracy; FGSM (one step of eps along the sign of the gradient of the
model's own training loss, computed in a form that does not saturate in float32, pixels in [0,1],
clipped) at a grid of eps; ``eps50``, the smallest eps at
which FGSM makes at least half of the test set wrong (bisection between grid points; null when even
eps = 1 does not); the error rate and the mean confidence (top probability) of the wrong predictions
at eps50 and at eps = 0.25 (Goodfellow's MNIST figure).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from physical.report.experiments import digits_csv, digits_html
from physical.rundir import write_json, write_text

GRID = [round(0.02 * i, 2) for i in range(51)]  # 0 .. 1


def load_digits(seed: int = 0):
    """Train / test split (2/3, 1/3, stratified) of scikit-learn's digits, pixels in [0, 1]."""
    try:
        # deferred: scikit-learn takes ~2 s to import; only the digits experiment needs it
        from sklearn.datasets import load_digits as _load
        from sklearn.model_selection import train_test_split  # deferred: with the line above
    except ImportError as e:  # pragma: no cover - scikit-learn is a dependency
        raise RuntimeError("the digits experiment needs scikit-learn (pip install scikit-learn)") from e
    d = _load()
    x = (d.data / 16.0).astype(np.float32)
    xtr, xte, ytr, yte = train_test_split(x, d.target, test_size=1 / 3, random_state=seed, stratify=d.target)
    t = lambda a, dt=torch.float32: torch.as_tensor(a, dtype=dt)  # noqa: E731
    return t(xtr), t(ytr, torch.long), t(xte), t(yte, torch.long)


# ----------------------------------------------------------------------------------------------
# models: forward(x) -> class probabilities; loss(x, y) -> the training loss (FGSM differentiates it)


class LogitModel(nn.Module):
    """A classifier defined by its logits: probabilities, training loss and FGSM's loss from them."""

    def logits(self, x):  # pragma: no cover - each model defines it
        raise NotImplementedError

    def forward(self, x):
        return self.logits(x).softmax(1)

    def loss(self, x, y, reduction="mean"):
        return F.cross_entropy(self.logits(x), y, reduction=reduction)

    def attack_loss(self, x, y):
        return _ce_direction(self.logits(x), y)


class Softmax(LogitModel):
    def __init__(self, l2: float):
        super().__init__()
        self.lin = nn.Linear(64, 10)
        self.l2 = l2

    def logits(self, x):
        return self.lin(x)

    def fit(self, x, y, epochs: int):
        opt = torch.optim.LBFGS(self.parameters(), lr=1, max_iter=max(20, epochs), history_size=20,
                                line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = self.loss(x, y) + 0.5 * self.l2 * self.lin.weight.pow(2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        return self


def _adam_fit(model: Any, x, y, epochs: int, lr: float) -> nn.Module:  # a model with .loss(x, y)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(epochs):
        opt.zero_grad()
        model.loss(x, y).backward()
        opt.step()
    return model


class MLP(LogitModel):
    def __init__(self, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))

    def logits(self, x):
        return self.net(x)

    def fit(self, x, y, epochs: int):
        return _adam_fit(self, x, y, epochs, 1e-2)


class RBF(nn.Module):
    assign: torch.Tensor  # buffer: centre -> class (one-hot)

    def __init__(self, centres: torch.Tensor, classes: torch.Tensor):
        super().__init__()
        self.mu = nn.Parameter(centres.clone())
        self.raw_beta = nn.Parameter(torch.full_like(centres, -1.0))  # softplus -> diagonal precision
        self.register_buffer("assign", F.one_hot(classes, 10).float())  # centre -> class

    def log_miss(self, x):
        """log(1 - p_k) = sum over the class's centres of log(1 - phi_j), in a form that does not saturate."""
        beta = F.softplus(self.raw_beta)
        # (x - mu)' diag(beta) (x - mu) for every image and centre, as matrix products
        d = (x * x) @ beta.T - 2 * x @ (beta * self.mu).T + (beta * self.mu * self.mu).sum(1)
        log_1m_phi = torch.log(-torch.expm1(-d.clamp(min=1e-6)))  # log(1 - exp(-d))
        return log_1m_phi @ self.assign  # (n, 10), <= 0

    def forward(self, x):
        return -torch.expm1(self.log_miss(x))  # p_k = 1 - exp(log(1 - p_k))

    def loss(self, x, y, reduction="mean"):
        s = self.log_miss(x)
        log_p = torch.log(-torch.expm1(s.clamp(max=-1e-12)))
        t = F.one_hot(y, 10).float()
        bce = -(t * log_p + (1 - t) * s).sum(1)
        return bce.mean() if reduction == "mean" else bce.sum()

    def attack_loss(self, x, y):
        return self.loss(x, y, reduction="sum")

    def fit(self, x, y, epochs: int):
        return _adam_fit(self, x, y, epochs, 2e-2)


def rbf_centres(x: torch.Tensor, y: torch.Tensor, total: int, seed: int):
    from sklearn.cluster import KMeans  # deferred: scikit-learn takes ~2 s to import

    per = max(1, total // 10)
    cs, cl = [], []
    for k in range(10):
        xk = x[y == k].numpy()
        km = KMeans(n_clusters=min(per, len(xk)), n_init=3, random_state=seed).fit(xk)
        cs.append(torch.as_tensor(km.cluster_centers_, dtype=torch.float32))
        cl += [k] * len(km.cluster_centers_)
    return torch.cat(cs), torch.as_tensor(cl)


# ----------------------------------------------------------------------------------------------
# FGSM and the measures


def _ce_direction(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """logsumexp over k != y of z_k, minus z_y (summed over the batch). Its gradient is the
    cross-entropy's divided by (1 - p_y) > 0: the same sign, without the saturation that makes the
    float32 cross-entropy gradient exactly 0 on confidently classified images (which would hide a
    model from FGSM instead of making it robust)."""
    other = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf"))
    return (torch.logsumexp(other, 1) - logits.gather(1, y[:, None])[:, 0]).sum()


def fgsm(model, x, y, eps: float) -> torch.Tensor:
    """One step of eps along the sign of the gradient of the model's training loss."""
    if eps == 0:
        return x
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model.attack_loss(x, y), x)
    return (x + eps * g.sign()).clamp(0, 1).detach()


@torch.no_grad()
def _eval(model, x, y):
    p = model(x)
    conf, pred = p.max(1)
    wrong = pred != y
    return float(wrong.float().mean()), (float(conf[wrong].mean()) if wrong.any() else None)


def error_at(model, x, y, eps: float) -> tuple[float, Optional[float]]:
    """(error rate, mean confidence of the wrong predictions) under FGSM at eps."""
    return _eval(model, fgsm(model, x, y, eps), y)


def eps50(model, x, y, curve: list[float]) -> Optional[float]:
    """Smallest eps whose FGSM error is >= 0.5: first grid point over, refined by bisection."""
    for i, e in enumerate(curve):
        if e >= 0.5:
            if i == 0:
                return 0.0
            lo, hi = GRID[i - 1], GRID[i]
            for _ in range(12):
                mid = (lo + hi) / 2
                if error_at(model, x, y, mid)[0] >= 0.5:
                    hi = mid
                else:
                    lo = mid
            return hi
    return None


def run_digits(dc, log=None) -> dict:
    """Train every model, measure it; returns {'rows': [...], 'curves': {...}, ...} (JSON-ready)."""
    torch.manual_seed(dc.seed)
    xtr, ytr, xte, yte = load_digits(dc.seed)
    specs: list[tuple[str, str, Callable[..., Any]]] = [
        (f"softmax l2={l2:g}", "softmax", lambda l2=l2: Softmax(l2)) for l2 in dc.l2]
    specs.append(("mlp", "mlp", lambda: MLP(dc.hidden)))
    specs.append(("rbf", "rbf", lambda: RBF(*rbf_centres(xtr, ytr, dc.centres, dc.seed))))
    rows, curves = [], {}
    for name, kind, make in specs:
        torch.manual_seed(dc.seed)
        t0 = time.time()
        with torch.enable_grad():
            model = make().fit(xtr, ytr, dc.epochs)
        train_s = time.time() - t0
        model.eval()
        with torch.enable_grad():
            curve = [error_at(model, xte, yte, e) for e in GRID]
            errs = [c[0] for c in curve]
            e50 = eps50(model, xte, yte, errs)
            at50 = error_at(model, xte, yte, e50) if e50 is not None else (None, None)
            at25 = error_at(model, xte, yte, 0.25)
        train_acc = 1 - _eval(model, xtr, ytr)[0]
        weight_norm = float(model.lin.weight.detach().norm()) if kind == "softmax" else None
        rows.append({
            "model": name, "kind": kind, "l2": getattr(model, "l2", None),
            "train_accuracy": train_acc, "clean_accuracy": 1 - errs[0],
            "eps50": e50, "error_at_eps50": at50[0], "mistake_confidence_at_eps50": at50[1],
            "error_at_eps0.25": at25[0], "mistake_confidence_at_eps0.25": at25[1],
            "weight_norm": weight_norm, "train_seconds": round(train_s, 3),
        })
        curves[name] = {"error": errs, "mistake_confidence": [c[1] for c in curve]}
    return {"rows": rows, "eps_grid": GRID, "curves": curves, "n_train": len(xtr), "n_test": len(xte),
            "claims": claims(rows),
            "note": "pixels in [0, 1] (0..16 scaled); eps in the same units (eps 0.25 = 64 on a 0..255 scale); "
                    "FGSM on each model's own training loss; error over the whole test set"}


def claims(rows: list[dict]) -> list[dict]:
    """The seed's claims, each with what the numbers say."""
    soft = sorted((r for r in rows if r["kind"] == "softmax"), key=lambda r: r["l2"])
    out = []
    if len(soft) >= 2:
        lo, hi = soft[0], soft[-1]
        e_lo, e_hi = lo["eps50"] or 1.0, hi["eps50"] or 1.0
        harder = e_hi > e_lo
        costs = hi["clean_accuracy"] < lo["clean_accuracy"]
        seq = [r["eps50"] or 1.0 for r in soft]
        l2s = ", ".join(f"{r['l2']:g}" for r in soft)
        eps_s = ", ".join(f"{e:.3f}" for e in seq)
        monotone = all(b >= a for a, b in zip(seq, seq[1:], strict=False))
        out.append({"claim": "L2 regularisation makes a linear model harder to fool, at a cost in accuracy",
                    "holds": bool(harder and costs),
                    "evidence": f"eps50 {e_lo:.3f} (l2={lo['l2']:g}) -> {e_hi:.3f} (l2={hi['l2']:g}); clean accuracy "
                                f"{100 * lo['clean_accuracy']:.1f} % -> {100 * hi['clean_accuracy']:.1f} %; eps50 over "
                                f"l2 = {l2s}: {eps_s} "
                                f"({'monotone' if monotone else 'not monotone'})"})
    rbf = next((r for r in rows if r["kind"] == "rbf"), None)
    others = [r for r in rows if r["kind"] != "rbf"]
    if rbf and others:
        best = max(others, key=lambda r: r["eps50"] or 1.0)
        conf = rbf["mistake_confidence_at_eps0.25"]
        oconf = [r["mistake_confidence_at_eps0.25"] for r in others if r["mistake_confidence_at_eps0.25"] is not None]
        resists = (rbf["eps50"] or 1.0) > (best["eps50"] or 1.0) or (
            conf is not None and oconf and conf < min(oconf))
        out.append({"claim": "RBF networks resist adversarial examples (or make only low-confidence mistakes)",
                    "holds": bool(resists),
                    "evidence": f"rbf eps50 {_f(rbf['eps50'])} vs best other {_f(best['eps50'])} ({best['model']}); "
                                f"confidence of mistakes at eps 0.25: rbf {_p(conf)} vs others "
                                f"{', '.join(_p(c) for c in oconf)}"})
    return out


def _f(v):
    return "> 1" if v is None else f"{v:.3f}"


def _p(v):
    return "-" if v is None else f"{100 * v:.1f} %"


def write_digits_report(res: dict, out_dir) -> dict:
    """digits.json, digits.csv and a self-contained digits.html in out_dir."""
    out = Path(out_dir)
    write_json(out / "digits.json", res)
    write_text(out / "digits.csv", digits_csv(res))
    write_text(out / "digits.html", digits_html(res))
    return {"json": str(out / "digits.json"), "html": str(out / "digits.html")}
