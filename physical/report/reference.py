"""Published figures of Kurakin, Goodfellow, Bengio (2016), arXiv 1607.02533, Tables 1-3
(Inception v3, 102 images, printed at 600 dpi, photographed with a Nexus 5x), in percent.
Keys: (attack, eps); values (top-1, top-5)."""

KURAKIN_AVERAGE = {
    # photo clean, photo adv, digital clean, digital adv
    ("fgsm", 16): {"photo_clean": (79.8, 91.9), "photo_adv": (36.4, 67.7),
                   "digital_clean": (85.3, 94.1), "digital_adv": (36.3, 58.8)},
    ("fgsm", 8): {"photo_clean": (70.6, 93.1), "photo_adv": (49.0, 73.5),
                  "digital_clean": (77.5, 97.1), "digital_adv": (30.4, 57.8)},
    ("bim", 16): {"photo_clean": (72.9, 89.6), "photo_adv": (49.0, 75.0),
                  "digital_clean": (81.4, 95.1), "digital_adv": (28.4, 31.4)},
    ("bim", 8): {"photo_clean": (72.5, 93.1), "photo_adv": (51.0, 87.3),
                 "digital_clean": (73.5, 93.1), "digital_adv": (26.5, 31.4)},
    ("ill", 16): {"photo_clean": (71.1, 90.0), "photo_adv": (60.0, 83.3),
                  "digital_clean": (79.4, 96.1), "digital_adv": (1.0, 1.0)},
    ("ill", 8): {"photo_clean": (76.5, 94.1), "photo_adv": (69.6, 92.2),
                 "digital_clean": (78.4, 98.0), "digital_adv": (0.0, 6.9)},
}
KURAKIN_PREFILTERED = {
    ("fgsm", 16): {"photo_clean": (81.8, 97.0), "photo_adv": (5.1, 39.4)},
    ("fgsm", 8): {"photo_clean": (77.1, 95.8), "photo_adv": (14.6, 70.8)},
    ("bim", 16): {"photo_clean": (93.3, 97.8), "photo_adv": (60.0, 87.8)},
    ("bim", 8): {"photo_clean": (89.2, 98.0), "photo_adv": (64.7, 91.2)},
    ("ill", 16): {"photo_clean": (95.8, 100.0), "photo_adv": (87.5, 97.9)},
    ("ill", 8): {"photo_clean": (96.0, 100.0), "photo_adv": (88.9, 97.0)},
}
KURAKIN_DESTRUCTION = {
    # average case, prefiltered case
    ("fgsm", 16): {"average": (12.5, 40.0), "prefiltered": (5.1, 39.4)},
    ("fgsm", 8): {"average": (33.3, 40.0), "prefiltered": (14.6, 70.8)},
    ("bim", 16): {"average": (40.4, 69.4), "prefiltered": (60.0, 87.8)},
    ("bim", 8): {"average": (52.1, 90.5), "prefiltered": (64.7, 91.2)},
    ("ill", 16): {"average": (72.2, 85.1), "prefiltered": (87.5, 97.9)},
    ("ill", 8): {"average": (86.3, 94.6), "prefiltered": (88.9, 97.0)},
}


def reference_for(attack: str, eps: float) -> dict | None:
    key = (attack, int(eps)) if float(eps).is_integer() else None
    if key not in KURAKIN_DESTRUCTION:
        return None
    return {
        "average": KURAKIN_AVERAGE[key],
        "prefiltered": KURAKIN_PREFILTERED[key],
        "destruction": KURAKIN_DESTRUCTION[key],
    }
