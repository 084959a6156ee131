from physical.metrics import destruction, kurakin_table, prefiltered, summarize


def rec(label, clean, adv, photo_adv, photo_clean=None, pc=0.9, pa=0.9):
    def p(top, prob=0.9):
        return None if top is None else {"top": top, "prob": [prob] + [0.01] * (len(top) - 1)}

    return {"model": "m", "attack": "bim", "attack_label": "bim_eps16", "eps": 16.0, "label": label,
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
    assert d1 == {"rate": 1 / 3, "n": 3}
    d5 = destruction(rs, 5)
    # top-5: clean correct for rows 0-4; adversarial wrong in top-5 for rows 0-3; photo top-5 hits rows 0, 1, 3
    assert d5 == {"rate": 3 / 4, "n": 4}


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
