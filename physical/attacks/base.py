"""The one small base every attack family builds on.

An attack takes a batch of [0,1] images and their labels and returns adversarial images in [0,1]
within the L-inf ball of radius eps (given in 0..255 units, as in Kurakin et al.). Rounding to
8 bits is the caller's job (`physical.models.to_uint8`): what is printed is what is evaluated.

Three hooks keep the families small (torchattacks' layout, one file per family):

- `inputs(x)`: what the model sees of x in one step (DI-FGSM's input diversity);
- `iterate(..., direction=f)`: the signed-step loop; `f(grad)` reshapes the gradient before its
  sign is taken (MI-FGSM's momentum, TI-FGSM's kernel smoothing);
- `project(x_adv, x)`: back into the eps ball and [0, 1].

`Attack.gradient` is also where the non-printability penalty (Sharif et al. 2016) joins the loss:
with `printability` w > 0 and the printer's `palette` (printable colours from a colour
calibration), the attack ascends CE - w NPS (descends CE + w NPS when targeted), so the
perturbation stays among colours the printer can make. With `tv` w > 0 the total variation of the
perturbation joins the loss the same way (`tv.total_variation`): neighbouring pixels of the
perturbation correlated, as in a natural image.

A family's own parameters are declared in `params` ({key: (type, default, lo, hi)}) and read with
`self.param(key)`; `fitted` families (`fitted.FittedAttack`) are fitted once and applied to other images.

`Attack.gradient` is where Expectation over Transformation lives: with an EOT config it draws N
transformations per image from the shared print-and-camera channel, runs all B x N of them as ONE
batch and returns the gradient of the mean loss, so any iterative attack optimises for survival
without knowing about it.

Device fit: nothing in the loop copies to the host. The NaN / Inf check of every gradient is
immediate on the CPU; on an accelerator the per-step flags stay on the device and are read once,
after the last step (one sync per batch), and the error still names the first bad step.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch
import torch.nn.functional as F


class Attack:
    """Base of all attacks. Subclasses implement `perturb(x, y)`."""

    name = "attack"
    iterative = True
    default_alpha = 1.0  # 0..255 units per step
    params: dict[str, tuple] = {}  # the family's own config keys: {key: (type, default, lo, hi)}
    fitted = False  # fitted once on some images, applied to others (uap, patch)
    default_target: Optional[int] = None  # the class a targeted-only family aims at without `target`
    fixed_eps: Optional[float] = None  # a family without an L-inf budget runs at this eps only

    @classmethod
    def label_suffix(cls, a) -> str:
        """What the family adds to its label before `_eps` (a patch: its fraction)."""
        return ""

    def __init__(self, model, eps: float, *, steps: Optional[int] = None, alpha: Optional[float] = None,
                 target: Optional[int] = None, eot=None, channel=None, seed: int = 0,
                 printability: float = 0.0, palette: Optional[torch.Tensor] = None, tv: float = 0.0,
                 family_params: Optional[dict] = None, **params):
        self.model = model
        self.eps = float(eps) / 255.0
        self.eps255 = float(eps)
        self.steps = int(steps) if steps is not None else self.kurakin_steps(eps)
        self.alpha = (float(alpha) if alpha is not None else self.default_alpha) / 255.0
        self.target = target if target is not None else self.default_target  # a class index: targeted attack
        self.tv = float(tv)
        self.family_params = dict(family_params or {})
        self.clean: Optional[torch.Tensor] = None  # the batch being attacked (the TV penalty's reference)
        self.eot = eot
        self.channel = channel
        if eot is not None and channel is None:
            raise ValueError(f"attack {self.name!r}: EOT needs a channel to draw transformations from")
        self.printability = float(printability)
        self.palette = palette
        if self.printability > 0 and palette is None:
            raise ValueError(f"attack {self.name!r}: the printability penalty needs the printer's palette")
        self.extra = params  # keyword parameters of other families (decay, kernel_size, ...), unused here
        self.seed = int(seed)
        self.generator = torch.Generator(device="cpu").manual_seed(self.seed)
        self._device_generators: dict[str, torch.Generator] = {}
        self._step = 0
        self._flags: list[tuple[int, torch.Tensor]] = []  # deferred finite checks (accelerators)

    @staticmethod
    def kurakin_steps(eps: float) -> int:
        """Kurakin et al.'s step count for alpha = 1: min(eps + 4, 1.25 eps), at least 1."""
        return max(1, int(math.ceil(min(eps + 4, 1.25 * eps))))

    @classmethod
    def check(cls, a, path: str) -> None:
        """Config-time checks of this family's parameters; a ConfigError naming the key path."""

    def param(self, key: str):
        """A family parameter: the configured value, or its declared default."""
        return self.family_params.get(key, self.params[key][1])

    # -- API ---------------------------------------------------------------------------------
    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = x.detach().to(self.model.device)
        y = y.to(self.model.device)
        self._flags = []
        self.clean = x
        with torch.enable_grad():
            adv = self.perturb(x, y)
        self._raise_deferred()
        return adv.detach().clamp(0, 1)

    def perturb(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    # -- shared pieces ------------------------------------------------------------------------
    @property
    def eot_samples(self) -> int:
        """Transformations per image and step (1 without EOT)."""
        return 1 if self.eot is None else int(self.eot.samples)

    def target_labels(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """Labels the loss uses, and whether the attack moves towards them (targeted)."""
        if self.target is not None:
            return torch.full_like(y, int(self.target)), True
        return y, False

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy (torchattacks' loss, so the gradients agree bit for bit)."""
        return F.cross_entropy(logits, labels)

    def inputs(self, x_adv: torch.Tensor) -> torch.Tensor:
        """What the model sees of x_adv in one step (input diversity hooks in here)."""
        return x_adv

    def transform(self, x_adv: torch.Tensor) -> torch.Tensor:
        """EOT: B images -> B*N channel samples (image-major), one batch; identity without EOT."""
        if self.eot is None:
            return x_adv
        n = self.eot_samples
        params = self.channel.sample(x_adv.shape[0] * n, generator=self.generator,
                                     strength=float(self.eot.strength), device=x_adv.device)
        return self.channel(x_adv, params)[0]  # B images, B x N parameter sets (image-major)

    def gradient(self, x_adv: torch.Tensor, labels: torch.Tensor, targeted: bool = False) -> torch.Tensor:
        """d loss / d x_adv, averaged over EOT samples when configured, with the printability
        penalty when configured (its sign follows `targeted`); checked for NaN/Inf."""
        x_adv = x_adv.detach().requires_grad_(True)
        xs = self.transform(x_adv)
        n = xs.shape[0] // x_adv.shape[0]
        if n > 1:
            labels = labels.repeat_interleave(n, 0)
        loss = self.loss(self.model(self.inputs(xs)), labels)
        if self.printability > 0:
            from ..calibrate.model import non_printability

            nps = non_printability(x_adv, self.palette).mean()
            loss = loss + self.printability * nps if targeted else loss - self.printability * nps
        if self.tv > 0:
            from .tv import total_variation

            tv = total_variation(x_adv - self.clean).mean()
            loss = loss + self.tv * tv if targeted else loss - self.tv * tv
        (grad,) = torch.autograd.grad(loss, x_adv)
        self.check_finite(grad)
        return grad

    def check_finite(self, grad: torch.Tensor) -> None:
        if grad.device.type == "cpu":
            if not bool(torch.isfinite(grad).all()):
                raise self._nan_error(self._step)
        else:  # no host sync inside the loop: read once in _raise_deferred
            self._flags.append((self._step, torch.isfinite(grad).all()))

    def _raise_deferred(self) -> None:
        if not self._flags:
            return
        ok = torch.stack([f for _, f in self._flags]).cpu()
        bad = (~ok).nonzero()
        if len(bad):
            raise self._nan_error(self._flags[int(bad[0, 0])][0])

    def _nan_error(self, step: int) -> FloatingPointError:
        return FloatingPointError(f"attack {self.name!r}: gradient has NaN or Inf at step {step}")

    def device_generator(self, device: torch.device) -> torch.Generator:
        """A generator on `device`, seeded from the attack's seed (random starts, drawn in place)."""
        key = str(device)
        if key not in self._device_generators:
            self._device_generators[key] = torch.Generator(device=device).manual_seed(self.seed + 1)
        return self._device_generators[key]

    delta_clip = False  # project as x + clamp(x_adv - x) (PGD, MI-FGSM) instead of Kurakin's min/max

    def project(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Back into the eps ball around x and into [0, 1].

        Kurakin's Clip_{X,eps} (min / max against x -+ eps) or, for the PGD family, x + the clamped
        perturbation: the same set, computed as each reference does it, so results agree to the bit
        (x + (x_adv - x) can differ from x_adv in the last bit, and a flipped sign later is a whole step).
        """
        if self.delta_clip:
            return (x + (x_adv - x).clamp(-self.eps, self.eps)).clamp(0, 1)
        return torch.min(torch.max(x_adv, x - self.eps), x + self.eps).clamp(0, 1)

    def iterate(self, x: torch.Tensor, x_adv: torch.Tensor, labels: torch.Tensor, targeted: bool,
                direction: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> torch.Tensor:
        """`steps` signed-gradient steps of size alpha (the BIM loop); `direction(grad)` may reshape
        the gradient (momentum, smoothing) before its sign is taken."""
        step = -self.alpha if targeted else self.alpha
        for self._step in range(self.steps):
            g = self.gradient(x_adv, labels, targeted)
            if direction is not None:
                g = direction(g)
            x_adv = self.project(x_adv.detach() + step * g.sign(), x)
        return x_adv
