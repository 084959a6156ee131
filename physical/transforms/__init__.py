"""Image transformations on [0,1] NCHW batches: the artificial transformations of Kurakin et al.
(2016, section 4) and the defences put in front of a classifier.

- `artificial.TRANSFORMATIONS[name]`: brightness, contrast, blur, noise, jpeg, each with a strength
  range (`check_strength` raises a ConfigError naming the key path) and `apply(x, name, strength)`.
- `defences.DEFENCES[name](**params)`: nn.Modules [0,1] -> [0,1]; `Defended(classifier, defence)`
  still takes [0,1] images. Randomised defences draw from their own generator (so an adaptive
  attack can take an expectation over it); non-differentiable ones pass gradients straight through.

Both registries are shared with the live view, which applies the same defences by name.
"""
from physical.transforms.artificial import TRANSFORMATIONS, apply_transformation, check_strength
from physical.transforms.defences import DEFENCES, Defended, Expectation, check_defence, make_defence

__all__ = ["TRANSFORMATIONS", "apply_transformation", "check_strength", "DEFENCES", "Defended", "Expectation",
           "check_defence", "make_defence"]
