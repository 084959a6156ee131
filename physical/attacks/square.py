"""Square Attack (Andriushchenko et al. 2020), L-inf, score-based: a black-box attack.

It sees only the model's output probabilities, never a gradient: every query is a forward pass under
``torch.no_grad()``. Start from vertical stripes of +-eps (one sign per channel and column); then, for
as many queries as the budget allows, change one random square of the perturbation to a random
+-eps colour (one sign per channel) and keep the change when the margin loss drops. The square's
side shrinks with the query count (the paper's schedule of `p`, the fraction of pixels changed,
rescaled to the budget as torchattacks does). An image stops being queried once it is fooled; its
query count (the initial query included) is its cost.

Batched over images: each image draws its own square (a mask from index comparisons, no per-image
loop); only the images not yet fooled are sent to the model.

Margin loss, from probabilities: log p_y - max_{j != y} log p_j (the logit margin: the softmax's
normaliser cancels); targeted: max_{j != t} log p_j - log p_t. The image is fooled when it is <= 0.
"""
from __future__ import annotations

import math

import torch

from physical.errors import ConfigError
from physical.attacks.base import Attack

# the paper's schedule: p halves at these iterations (of a 10,000-query budget; rescaled to the budget)
_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


class Square(Attack):
    name = "square"
    params = {
        "queries": (int, 1000, 1, 1_000_000),  # model queries per image, the initial one included
        "p_init": (float, 0.05, 1e-4, 1.0),  # fraction of the image's pixels in the first squares
    }

    @classmethod
    def check(cls, a, path: str) -> None:
        q = a.family_params.get("queries")
        if q is not None and q <= 0:
            raise ConfigError(f"{path}.queries: {q} must be > 0 (model queries per image)")
        for key, value in (("eot", a.eot), ("printability", a.printability or None), ("tv", a.tv or None)):
            if value is not None:
                raise ConfigError(f"{path}.{key}: square sees no gradient, so it has no loss term for {key}")

    def __init__(self, model, eps, **kw):
        super().__init__(model, eps, **kw)
        self.queries = int(self.param("queries"))
        self.p_init = float(self.param("p_init"))
        self.last_queries: torch.Tensor | None = None  # queries per image of the last batch
        self.last_success: torch.Tensor | None = None

    def p_selection(self, it: int) -> float:
        it = int(it / self.queries * 10000)
        return self.p_init / 2 ** sum(it > h for h in _HALVINGS)

    def margin(self, x: torch.Tensor, labels: torch.Tensor, targeted: bool) -> torch.Tensor:
        """One query per image: the margin loss from the output probabilities only."""
        with torch.no_grad():
            logp = torch.softmax(self.model(x).float(), dim=1).log()
        own = logp.gather(1, labels[:, None])[:, 0]
        others = logp.scatter(1, labels[:, None], float("-inf")).amax(1)
        return others - own if targeted else own - others

    def perturb(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        labels, targeted = self.target_labels(x, y)
        with torch.no_grad():
            return self._search(x, labels, targeted)

    def _search(self, x, labels, targeted):
        b, c, h, w = x.shape
        gen = self.device_generator(x.device)
        dev = x.device
        signs = lambda *shape: torch.randint(0, 2, shape, generator=gen, device=dev).to(x.dtype) * 2 - 1  # noqa: E731
        best = (x + self.eps * signs(b, c, 1, w)).clamp(0, 1)
        loss = self.margin(best, labels, targeted)
        queries = torch.ones(b, dtype=torch.long, device=dev)
        rows, cols = torch.arange(h, device=dev), torch.arange(w, device=dev)
        for it in range(self.queries - 1):
            active = (loss > 0).nonzero()[:, 0]
            if active.numel() == 0:
                break
            n = active.numel()
            s = max(1, min(h, w, int(round(math.sqrt(self.p_selection(it) * h * w)))))
            vh = torch.randint(0, h - s + 1, (n, 1), generator=gen, device=dev)
            vw = torch.randint(0, w - s + 1, (n, 1), generator=gen, device=dev)
            inside = (((rows >= vh) & (rows < vh + s))[:, None, :, None]
                      & ((cols >= vw) & (cols < vw + s))[:, None, None, :])
            xa = x[active]
            colour = xa + self.eps * signs(n, c, 1, 1)  # the square's new value: clean +- eps per channel
            cand = torch.where(inside, colour, best[active]).clamp(0, 1)
            new = self.margin(cand, labels[active], targeted)
            better = new < loss[active]
            best[active] = torch.where(better[:, None, None, None], cand, best[active])
            loss[active] = torch.where(better, new, loss[active])
            queries[active] += 1
        self.last_queries = queries.cpu()
        self.last_success = (loss <= 0).cpu()
        return best

    def item_info(self) -> list[dict]:
        """Per image of the last batch: queries used and whether the search succeeded (float images;
        the report measures success again on the 8-bit images)."""
        assert self.last_queries is not None and self.last_success is not None, "item_info before a batch"
        return [{**aimed, "queries": int(q), "search_success": bool(s)}
                for aimed, q, s in zip(super().item_info(), self.last_queries, self.last_success, strict=False)]
