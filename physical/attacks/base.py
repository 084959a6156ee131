"""The one small base every attack family builds on.

An attack takes a batch of [0,1] images and their labels and returns adversarial images in [0,1]
within the L-inf ball of radius eps. Units: the classes and `physical.attacks.make` take `eps` and
`alpha` in the images' [0, 1] units (torchattacks', foolbox's and ART's: 8/255), and refuse a value
above 1 naming the unit; the YAML keeps Kurakin's 0..255 pixel levels and
`physical.attacks.make_attack` divides by 255 (YAML eps 8 makes the very images of API eps 8/255).
Rounding to 8 bits is the caller's job (`physical.models.to_uint8`): what is printed is what is
evaluated.

The model: any `nn.Module` (or callable) taking [0,1] RGB NCHW; with `mean`/`std` it is wrapped to
normalise first (`physical.attacks.model.as_model`), and its device is the one its parameters are on.

The call is final (`Attack.__call__`, `Attack.generate`: devices, labels, per-call targets, the
deferred NaN check); a family implements one typed hook, `perturb(x, labels) -> x_adv` (as foolbox's
`run`), and may use the shared pieces below. Three of those keep the families small (torchattacks'
layout, one file per family):

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
transformations per image from the shared print-and-camera channel and returns the gradient of the
mean loss over all B x N of them, so any iterative attack optimises for survival without knowing
about it.

Bounded memory: a step runs in micro-batches of samples (B images, or B x N EOT draws), as many as
the memory budget holds (`run.memory_gb`, else the device's free memory; `physical.runtime`), and
the gradients of the micro-batches add up to the one-batch gradient: every channel parameter is
drawn for all B x N samples first (the draws never depend on the split), `inputs` draws the same
randomness for every micro-batch, and each micro-batch's mean loss is weighted by its share of the
samples. So `loss` must be a mean over samples and `inputs` must draw per call, not per image. What
one sample costs is measured once per attack (autograd's saved tensors for one sample); a budget too
small for one sample stops with the smallest one that works.

Device fit: nothing in the loop copies to the host. The NaN / Inf check of every gradient is
immediate on the CPU; on an accelerator the per-step flags stay on the device and are read once,
after the last step (one sync per batch), and the error still names the first bad step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union, final

import torch
import torch.nn.functional as F

from physical.channel.colour import non_printability
from physical.errors import ConfigError
from physical.runtime import TRANSIENT, budget_is_set, chunk_size, memory_budget, saved_bytes, too_small
from physical.transforms.ops import seed_of
from physical.attacks.tv import total_variation
from physical.attacks.model import as_model, model_device
from physical.attacks.labels import LEAST_LIKELY

# one class for the batch, one per image (N,), or LEAST_LIKELY: each image's least-likely class (Kurakin's ILL)
Target = Union[int, torch.Tensor, str, None]


@dataclass
class AttackResult:
    """What `Attack.generate` returns: the adversarial images (N x C x H x W in [0, 1], float, on the
    model's device), whether each fooled the model (`success`: the target reached when targeted, else
    a prediction other than `labels`), the model's top-1 on them and the labels attacked."""

    adv: torch.Tensor
    success: torch.Tensor  # (N,) bool
    predictions: torch.Tensor  # (N,) top-1 class of adv
    labels: torch.Tensor  # (N,) the true (or given) labels
    target: Optional[torch.Tensor] = None  # (N,) the classes aimed at, when targeted

    @property
    def success_rate(self) -> float:
        return float(self.success.float().mean()) if len(self.success) else 0.0


def check_unit(value: float, key: str) -> float:
    """An API eps or alpha in the images' [0, 1] units; above 1 (Kurakin's 0..255 habit) or below 0 is a
    ConfigError naming the unit."""
    v = float(value)
    if not 0 <= v <= 1:
        raise ConfigError(f"{key}: {v:g} is outside [0, 1]: the Python API takes {key} in the images' [0, 1] units "
                          f"(Kurakin's 8 pixel levels are 8/255 = {8 / 255:.4f}); the YAML's attacks[].{key} is in "
                          "0..255")
    return v


class Attack:
    """Base of all attacks: `attack(x, y)` -> adversarial images, `attack.generate(x, y)` -> an
    `AttackResult`. Families implement the one hook `perturb(x, labels)`; the call itself is final.

    `eps` and `alpha` in [0, 1] units; `target`: a class for the whole batch or a tensor of one class
    per image; `mean`/`std`: the model's normalisation when it does not carry it."""

    name = "attack"
    iterative = True
    default_alpha = 1.0  # 0..255 units per step
    params: dict[str, tuple] = {}  # the family's own config keys: {key: (type, default, lo, hi)}
    fitted = False  # fitted once on some images, applied to others (uap, patch)
    default_target: Optional[int] = None  # the class a targeted-only family aims at without `target`
    fixed_eps: Optional[float] = None  # a family without an L-inf budget runs at this eps only

    @classmethod
    def label_fields(cls, a) -> dict:
        """What the family adds to its label (`labels.AttackLabel`'s fields; a patch: its fraction)."""
        return {}

    def __init__(self, model: Any, eps: float, *, steps: Optional[int] = None, alpha: Optional[float] = None,
                 target: Target = None, eot=None, channel=None, seed: int = 0,
                 printability: float = 0.0, palette: Optional[torch.Tensor] = None, tv: float = 0.0,
                 family_params: Optional[dict] = None, memory_gb: Optional[float] = None,
                 mean: Optional[Any] = None, std: Optional[Any] = None):
        self.model = as_model(model, mean, std)
        self.eps = check_unit(eps, "eps")
        self.eps255 = round(self.eps * 255.0, 9)  # Kurakin's units, for his step count
        self.steps = int(steps) if steps is not None else self.kurakin_steps(self.eps255)
        self.alpha = check_unit(alpha, "alpha") if alpha is not None else self.default_alpha / 255.0
        self.target: Target = target if target is not None else self.default_target  # targeted attack
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
        self.memory_gb = memory_gb  # None: the run's run.memory_gb, else the device's default
        self._sample_bytes: dict[tuple, int] = {}  # memory of one sample's step, per input shape
        self.seed = int(seed)
        self.generator = torch.Generator(device="cpu").manual_seed(self.seed)
        self._device_generators: dict[str, torch.Generator] = {}
        self._step = 0
        self._flags: list[tuple[int, torch.Tensor]] = []  # deferred finite checks (accelerators)
        self.aimed: Optional[torch.Tensor] = None  # the last batch's per-image targets (least-likely classes)
        self._batch = 0

    @staticmethod
    def kurakin_steps(eps: float) -> int:
        """Kurakin et al.'s step count for alpha = 1: min(eps + 4, 1.25 eps), at least 1."""
        return max(1, int(math.ceil(min(eps + 4, 1.25 * eps))))

    @classmethod
    def check(cls, a, path: str) -> None:
        """Config-time checks of this family's parameters; a ConfigError naming the key path."""

    def param(self, key: str, given=None):
        """A family parameter: `given` (a keyword of the constructor), else the configured value, else
        its declared default."""
        return given if given is not None else self.family_params.get(key, self.params[key][1])

    @classmethod
    def configured(cls, a, key: str):
        """A family parameter of the config entry `a` (for `check`): as written, else its default."""
        return a.family_params.get(key, cls.params[key][1])

    # -- API ---------------------------------------------------------------------------------
    @final
    def __call__(self, x: torch.Tensor, y: Optional[torch.Tensor] = None, *, target: Target = None) -> torch.Tensor:
        """Adversarial images of x (N x C x H x W in [0, 1]) for labels y (N,; None: the model's own
        top-1). `target` replaces the attack's own for this call. Not for a family to override:
        families implement `perturb`."""
        x, y = self.prepare(x, y)
        saved = self.target
        if target is not None:
            self.target = target
        try:
            self._flags, self.aimed, self._batch = [], None, len(x)
            self.clean = x
            with torch.enable_grad():
                adv = self.perturb(x, y)
            self._raise_deferred()
        finally:
            self.target = saved
        return adv.detach().clamp(0, 1)

    @final
    def generate(self, x: torch.Tensor, y: Optional[torch.Tensor] = None, *, target: Target = None) -> AttackResult:
        """`__call__` and what came of it: an `AttackResult` with a success mask (the target reached
        when targeted, else a top-1 other than y) and the model's predictions on the images."""
        x, y = self.prepare(x, y)
        adv = self(x, y, target=target)
        aim = target if target is not None else self.target
        with torch.no_grad():
            pred = self.model(adv).argmax(1)
        if aim is None:
            return AttackResult(adv, pred != y, pred, y)
        t = self.aimed if isinstance(aim, str) and self.aimed is not None else self.per_image(aim, y)
        return AttackResult(adv, pred == t, pred, y, t)

    def perturb(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        """The family's hook: adversarial images of x (on the model's device) for labels y."""
        raise NotImplementedError

    def prepare(self, x: torch.Tensor, y: Optional[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """x and y on the model's device, x checked (N x C x H x W in [0, 1]); y None: the model's top-1."""
        device = model_device(self.model)
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            raise ConfigError(f"x: expected a tensor of N x C x H x W images in [0, 1], got "
                              f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        x = x.detach().to(device)
        lo, hi = torch.aminmax(x)
        if float(lo) < 0 or float(hi) > 1:
            raise ConfigError(f"x: values from {float(lo):g} to {float(hi):g}; images must be in [0, 1] "
                              "(divide 8-bit images by 255)")
        if y is None:
            with torch.no_grad():
                return x, self.model(x).argmax(1)
        y = torch.as_tensor(y, device=device).long().reshape(-1)
        if len(y) != len(x):
            raise ConfigError(f"y: {len(y)} labels for {len(x)} images")
        return x, y

    @staticmethod
    def per_image(target: Target, y: torch.Tensor) -> torch.Tensor:
        """A target as one class per image of the batch of labels y."""
        if target is None or isinstance(target, str):  # least-likely: `target_labels` finds each image's
            raise ValueError(f"per_image: {target!r} is not a class")
        if isinstance(target, torch.Tensor) and target.dim() > 0:
            t = target.to(y.device).long().reshape(-1)
            if len(t) != len(y):
                raise ConfigError(f"target: {len(t)} classes for {len(y)} images (give one class, or one per image)")
            return t
        return torch.full_like(y, int(target))

    # -- shared pieces ------------------------------------------------------------------------
    @property
    def eot_samples(self) -> int:
        """Transformations per image and step (1 without EOT)."""
        return 1 if self.eot is None else int(self.eot.samples)

    def target_labels(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """Labels the loss uses, and whether the attack moves towards them (targeted)."""
        if isinstance(self.target, str) and self.target == LEAST_LIKELY:
            return self.least_likely(x), True
        if self.target is not None:
            return self.per_image(self.target, y), True
        return y, False

    def least_likely(self, x: torch.Tensor) -> torch.Tensor:
        """Each clean image's least-likely class (kept in `aimed`, for the index)."""
        with torch.no_grad():
            self.aimed = self.model(x).argmin(1)
        return self.aimed

    def item_info(self) -> list[dict]:
        """What the generate stage keeps of each image of the last batch: its least-likely target."""
        if self.aimed is None:
            return [{} for _ in range(self._batch)]
        return [{"target": int(t)} for t in self.aimed.tolist()]

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy (torchattacks' loss, so the gradients agree bit for bit)."""
        return F.cross_entropy(logits, labels)

    def inputs(self, x_adv: torch.Tensor) -> torch.Tensor:
        """What the model sees of x_adv in one step (input diversity hooks in here)."""
        return x_adv

    def draw(self, b: int, device) -> Optional[dict]:
        """EOT: the channel's parameters for all b x N samples of a step (image-major: image i takes
        sets i*N .. i*N+N-1), drawn at once; None without EOT."""
        if self.eot is None:
            return None
        return self.channel.sample(b * self.eot_samples, generator=self.generator,
                                   strength=float(self.eot.strength), device=device)

    def transform(self, x_adv: torch.Tensor, params: Optional[dict] = None) -> torch.Tensor:
        """EOT: B images -> B*N channel samples (image-major); identity without EOT. With `params`
        (one set per sample) x_adv holds B images or one row per set."""
        if self.eot is None:
            return x_adv
        if params is None:
            params = self.draw(x_adv.shape[0], x_adv.device)
        return self.channel(x_adv, params)[0]

    def sample_loss(self, x_adv: torch.Tensor, labels: torch.Tensor, params: Optional[dict],
                    start: int, stop: int) -> torch.Tensor:
        """The mean loss over samples start .. stop-1 of a step (image-major, N per image)."""
        n = self.eot_samples
        if params is None:
            xs, labels = x_adv[start:stop], labels[start:stop]
        else:
            part = {k: v[start:stop] for k, v in params.items()}
            if start % n == 0 and stop % n == 0:  # whole images: the channel prints each once
                xs = self.transform(x_adv[start // n : stop // n], part)
                labels = labels[start // n : stop // n].repeat_interleave(n, 0)
            else:
                rows = torch.arange(start, stop, device=x_adv.device) // n
                xs, labels = self.transform(x_adv.index_select(0, rows), part), labels.index_select(0, rows)
        return self.loss(self.model(self.inputs(xs)), labels)

    def micro_batch(self, x_adv: torch.Tensor, labels: torch.Tensor, params: Optional[dict]) -> int:
        """Samples per micro-batch: as many as the memory budget holds (one sample's cost measured
        once per input shape, from autograd's saved tensors; the generator is left as it was), in
        whole images (multiples of the EOT samples) when it holds at least one."""
        key = tuple(x_adv.shape[1:])
        if key not in self._sample_bytes:
            state = self.generator.get_state()
            xp = x_adv.detach().requires_grad_(True)
            per = saved_bytes(lambda: self.sample_loss(xp, labels, params, 0, 1))
            self.generator.set_state(state)
            self._sample_bytes[key] = int(TRANSIENT * per)
        what = (f"{getattr(self.model, 'name', 'the model')} in {self.name}"
                + (" with EOT" if params is not None else ""))
        budget = memory_budget(x_adv.device, self.memory_gb)
        k = chunk_size(self._sample_bytes[key], budget)
        if k < 1 and budget_is_set(self.memory_gb):
            raise ConfigError(too_small(self._sample_bytes[key], budget, what))
        n = self.eot_samples if params is not None else 1
        # whole images when the budget holds one: sample_loss prints each image once, not per sample
        return k - k % n if k >= n else max(1, k)

    def gradient(self, x_adv: torch.Tensor, labels: torch.Tensor, targeted: bool = False) -> torch.Tensor:
        """d loss / d x_adv, averaged over EOT samples when configured, with the printability
        penalty when configured (its sign follows `targeted`), summed over micro-batches; checked
        for NaN/Inf."""
        x_adv = x_adv.detach().requires_grad_(True)
        params = self.draw(x_adv.shape[0], x_adv.device)
        total = x_adv.shape[0] * self.eot_samples
        k = self.micro_batch(x_adv, labels, params)
        state = self.generator.get_state()  # (a copy: cheap) restored before every micro-batch but the first
        grad: Optional[torch.Tensor] = None
        for start in range(0, total, k):
            stop = min(total, start + k)
            if start:  # inputs() draws the same for every micro-batch, as for one batch
                self.generator.set_state(state)
            loss = self.sample_loss(x_adv, labels, params, start, stop)
            if stop - start < total:
                loss = loss * ((stop - start) / total)
            if stop == total and self.printability > 0:
                assert self.palette is not None  # checked in __init__
                nps = non_printability(x_adv, self.palette).mean()
                loss = loss + self.printability * nps if targeted else loss - self.printability * nps
            if stop == total and self.tv > 0:
                tv = total_variation(x_adv - (self.clean if self.clean is not None else x_adv.detach())).mean()
                loss = loss + self.tv * tv if targeted else loss - self.tv * tv
            (g,) = torch.autograd.grad(loss, x_adv)
            grad = g if grad is None else grad.add_(g)
        assert grad is not None  # total >= 1 sample
        self.check_finite(grad)
        if self.on_gradient is not None:  # progress: images x EOT draws of this step
            self.on_gradient(total)
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

    def reseed(self, batch: int) -> None:
        """The random stream of the batch that starts at image `batch` (0: the attack's own seed), so a
        batch's draws do not depend on which batches ran before it (a resumed run)."""
        seed = self.seed if batch == 0 else seed_of(self.seed, "batch", int(batch))
        self.generator.manual_seed(seed)
        self._device_generators = {k: g.manual_seed(seed + 1) for k, g in self._device_generators.items()}

    def device_generator(self, device: torch.device) -> torch.Generator:
        """A generator on `device`, seeded from the attack's seed (random starts, drawn in place)."""
        key = str(device)
        if key not in self._device_generators:
            self._device_generators[key] = torch.Generator(device=device).manual_seed(self.seed + 1)
        return self._device_generators[key]

    delta_clip = False  # project as x + clamp(x_adv - x) (PGD, MI-FGSM) instead of Kurakin's min/max
    on_gradient: Optional[Callable[[int], None]] = None  # told of every gradient's images x EOT draws (progress)

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
        for i in range(self.steps):
            self._step = i
            g = self.gradient(x_adv, labels, targeted)
            if direction is not None:
                g = direction(g)
            x_adv = self.project(x_adv.detach() + step * g.sign(), x)
        return x_adv
