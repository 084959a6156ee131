"""physical: adversarial examples in the physical world (after Kurakin, Goodfellow & Bengio 2016)."""
__version__ = "0.1.0"
