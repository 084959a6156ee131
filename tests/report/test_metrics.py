import math

import pytest

from physical.measure.metrics import comparisons, destruction, kurakin_table, physical_success, prefiltered, summarize, targeted
from physical.measure.stats import binom_two_sided, brier, mcnemar, reliability, wilson


def rec(label, clean, adv, photo_adv, photo_clean=None, pc=0.9, pa=0.9, image="a", attack="bim_eps16", target=None):
    def p(top, prob=0.9):
        return None if top is None else {"top": top, "prob": [prob] + [0.01] * (len(top) - 1)}

    return {"model": "m", "attack": "bim", "attack_label": attack, "eps": 16.0, "label": label, "image": image,
            "target": target,
            "pred": {"digital_clean": p(clean, pc), "digital_adv": p(adv, pa), "photo_clean": p(photo_clean),
                     "photo_adv": p(photo_adv)}}


def test_destruction_rate_follows_eq1():
    rs = [
        rec(1, [1, 2, 3, 4, 5], [9, 8, 7, 6, 5], [1, 9, 8, 7, 6]),  # fooled, photo destroyed it (top-1 and top-5)
        rec(1, [1, 2, 3, 4, 5], [9, 8, 7, 6, 5], [9, 1, 8, 7, 6]),  # fooled, photo: top-5 destroyed only
        rec(1, [1, 2, 3, 4, 5], [9, 8, 7, 6, 5], [9, 8, 7, 6, 5]),  # fooled, survived
        rec(1, [2, 1, 3, 4, 5], [9, 8, 7, 6, 5], [1, 8, 7, 6, 5]),  # clean wrong in top-1: not counted at k=1
        rec(1, [1, 2, 3, 4, 5], [1, 8, 7, 6, 5], [1, 8, 7, 6, 5]),  # not fooled: not counted
        rec(1, [1, 2, 3, 4, 5], [9, 8, 7, 6, 5], None),  # no photo: not counted
    ]
    d1 = destruction(rs, 1)
    assert (d1["rate"], d1["k"], d1["n"]) == (1 / 3, 1, 3)
    d5 = destruction(rs, 5)
    # top-5: clean correct for rows 0-4; adversarial wrong in top-5 for rows 0-3; photo top-5 hits rows 0, 1, 3
    assert (d5["rate"], d5["k"], d5["n"]) == (3 / 4, 3, 4)
    assert d1["ci"][0] < d1["rate"] < d1["ci"][1]


def test_identity_transformation_destroys_nothing():
    rs = [rec(1, [1, 2, 3, 4, 5], [9, 8, 7, 6, 4], [9, 8, 7, 6, 4]) for _ in range(5)]
    for r in rs:
        r["pred"]["photo_adv"] = r["pred"]["digital_adv"]
    assert destruction(rs, 1)["rate"] == 0.0 and destruction(rs, 5)["rate"] == 0.0


def test_prefiltered_case_and_consistency_check():
    rs = [
        rec(1, [1, 2, 3, 4, 5], [9, 8, 7, 6, 4], [1, 8, 7, 6, 4]),
        rec(1, [1, 2, 3, 4, 5], [9, 8, 7, 6, 4], [9, 8, 7, 6, 4]),
        rec(1, [1, 2, 3, 4, 5], [9, 8, 7, 6, 4], [9, 8, 7, 6, 4], pc=0.5),  # low clean confidence
        rec(1, [1, 2, 3, 4, 5], [9, 1, 7, 6, 4], [9, 8, 7, 6, 4]),  # adversarial still right in top-5
    ]
    assert len(prefiltered(rs, 0.8)) == 2
    s = summarize(rs, 0.8)
    # in the prefiltered case the destruction rate equals the photo adversarial accuracy
    pre = s["prefiltered"]
    assert pre["destruction"]["top1"]["rate"] == pre["accuracy"]["photo_adv"]["top1"]["acc"] == 0.5
    assert s["average"]["n"] == 4 and s["average"]["accuracy"]["photo_clean"]["top1"]["n"] == 0
    rows = kurakin_table(rs)
    assert len(rows) == 1 and rows[0]["attack_label"] == "bim_eps16"


def test_wilson_interval_by_hand_contains_the_rate_and_narrows_with_n():
    # k = 3, n = 10, z = 1.96: centre (0.3 + 0.19208) / 1.38416 = 0.35553,
    # half 1.96 sqrt(0.021 + 0.0096040) / 1.38416 = 0.24772 -> [0.1078, 0.6032]
    lo, hi = wilson(3, 10)
    assert lo == pytest.approx(0.1078, abs=2e-4) and hi == pytest.approx(0.6032, abs=2e-4)
    widths = []
    for n in (10, 40, 160, 640):
        lo, hi = wilson(3 * n // 10, n)
        assert lo < 0.3 < hi
        widths.append(hi - lo)
    assert widths == sorted(widths, reverse=True) and widths[-1] < widths[0] / 4
    # the edges stay inside [0, 1] and are not zero-width
    assert wilson(0, 5)[0] == 0 and 0.4 < wilson(0, 5)[1] < 0.5
    assert wilson(5, 5)[1] == 1 and wilson(5, 5)[0] < 0.6
    assert wilson(0, 0) is None


def test_mcnemar_against_hand_computed_cases():
    # 1 image right under A only, 8 under B only, 11 concordant: exact p = 2 (C(9,0) + C(9,1)) / 2^9
    a = [True] * 1 + [False] * 8 + [True] * 6 + [False] * 5
    b = [False] * 1 + [True] * 8 + [True] * 6 + [False] * 5
    t = mcnemar(a, b)
    assert (t["n"], t["a_only"], t["b_only"]) == (20, 1, 8)
    assert t["p"] == pytest.approx(20 / 512) and t["test"] == "exact binomial" and t["significant"]
    # 10 against 30 discordant: chi2 = (|10 - 30| - 1)^2 / 40 = 9.025, p = erfc(sqrt(9.025 / 2)) = 0.00266
    a = [True] * 10 + [False] * 30
    b = [False] * 10 + [True] * 30
    t = mcnemar(a, b)
    assert t["test"].startswith("chi-square") and t["p"] == pytest.approx(math.erfc(math.sqrt(9.025 / 2)), abs=1e-6)
    assert t["p"] == pytest.approx(0.00266, abs=1e-5)
    # equal discordant counts: no evidence of a difference
    assert not mcnemar([True, False] * 3, [False, True] * 3)["significant"]
    assert binom_two_sided(3, 3) == 1.0 and binom_two_sided(0, 0) == 1.0


def test_physical_success_starts_from_the_photo_clean_image():
    rs = [
        rec(1, [1], [9], [9], photo_clean=[1]),  # photo clean right, photo adv wrong: success
        rec(1, [1], [1], [9], photo_clean=[1]),  # digital adversarial did not fool, the photo does: success
        rec(1, [1], [9], [1], photo_clean=[1]),  # photo destroyed it: no success
        rec(1, [1], [9], [9], photo_clean=[2]),  # photo clean already wrong: not counted
        rec(1, [1], [9], None, photo_clean=[1]),  # no adversarial photo: not counted
    ]
    s = physical_success(rs, 1)
    assert (s["k"], s["n"]) == (2, 3) and s["rate"] == pytest.approx(2 / 3)
    assert summarize(rs)["average"]["physical_success"]["top1"]["n"] == 3


def test_targeted_success_digital_photo_and_kept():
    rs = [
        rec(1, [1], [7], [7], target=7),  # success digital and in the photo
        rec(1, [1], [7], [1], target=7),  # digital success lost in the photo
        rec(1, [1], [3], [7], target=7),  # photo only
        rec(1, [1], [7], None, target=7),  # no photo
        rec(7, [7], [7], [7], target=7),  # the true class is the target: not counted
    ]
    t = targeted(rs, 1)
    assert (t["digital"]["k"], t["digital"]["n"]) == (3, 4)
    assert (t["photo"]["k"], t["photo"]["n"]) == (2, 3)
    assert (t["kept"]["k"], t["kept"]["n"]) == (1, 2)
    row = kurakin_table(rs)[0]
    assert row["target"] == 7 and row["average"]["targeted"]["top1"]["kept"]["rate"] == 0.5
    assert targeted([rec(1, [1], [7], [7])], 1) is None


def test_comparisons_pair_the_same_images():
    rs = []
    for i in range(12):  # bim survives the photo on every image, fgsm on none
        rs.append(rec(1, [1], [9], [9], photo_clean=[1], image=f"i{i}", attack="bim_eps16"))
        rs.append(rec(1, [1], [9], [1], photo_clean=[1], image=f"i{i}", attack="fgsm_eps16"))
    rows = comparisons(rs)
    trip = {r["a"]: r for r in rows if r["kind"] == "trip"}
    assert not trip["bim_eps16"]["significant"] and trip["bim_eps16"]["p"] == 1.0
    assert trip["fgsm_eps16"]["significant"] and trip["fgsm_eps16"]["b_only"] == 12
    (pair,) = [r for r in rows if r["kind"] == "attacks"]
    assert (pair["a"], pair["b"], pair["a_acc"], pair["b_acc"]) == ("bim_eps16", "fgsm_eps16", 0.0, 1.0)
    assert pair["p"] == pytest.approx(2 / 2 ** 12) and pair["significant"]


def test_brier_and_reliability():
    assert brier([0.5, 0.5], [True, False]) == 0.25
    assert brier([1.0, 0.0], [True, False]) == 0.0
    bins = reliability([0.1, 0.1, 0.9, 0.9, 1.0], [False, True, True, True, True], bins=5)
    assert [(b["n"], b["k"]) for b in bins] == [(2, 1), (3, 3)]
    assert bins[1]["predicted"] == pytest.approx(2.8 / 3)


def test_a_row_whose_images_have_their_own_targets_says_so():
    """Kurakin's table names a targeted row's class; with each image's own (a least-likely target) it
    says so, in report.json and on the page, rather than naming the first image's class."""
    from physical.runs.checks import from_dict
    from physical.stages.report import kurakin_section

    top = [[7, 1, 2, 3, 4], [8, 2, 1, 3, 4]]
    rs = [rec(1, [1, 2, 3, 4, 5], top[0], top[0], image="a", attack="ill_eps16", target=7),
          rec(2, [2, 1, 3, 4, 5], top[1], top[1], image="b", attack="ill_eps16", target=8)]
    assert kurakin_table(rs)[0]["target"] == "per image" and kurakin_table(rs[:1])[0]["target"] == 7
    for r in rs:
        r["label_known"] = True  # a true label: Kurakin's table counts the image
    cfg = from_dict({})
    assert kurakin_section(rs, cfg)[0]["target_name"] == "each image's least-likely class"
    assert kurakin_section(rs[:1], cfg)[0]["target_name"] == "cock"  # ImageNet class 7
