import pytest

from scratchlab.study.figures import (
    INIT_COLOURS,
    Skip,
    compute_figure,
    curves_figure,
    final_ap_figure,
    styles,
    verdict_groups,
)
from scratchlab.study.groups import group_arms
from scratchlab.study.verdict import compute_verdict


def test_every_configuration_has_its_own_colour_and_line_style(make_arm):
    arms = [
        make_arm(f"{init}_{norm}_{s}", init, 20.0, norm=norm, schedule=s)
        for init in ("random", "classify", "direct")
        for norm in ("GN", "BN")
        for s in (1.0, 2.0, 3.0)
    ]
    groups = group_arms(arms)
    st = styles(groups)
    colours = [st[id(g)]["color"] for g in groups]
    assert len({(st[id(g)]["color"], st[id(g)]["ls"]) for g in groups}) == len(groups) == 18
    # Within one init the first shades differ (a BN arm and a GN arm of the same init do not share one).
    first = [g for g in groups if g.init == "random"][:5]
    assert len({st[id(g)]["color"] for g in first}) == 5
    assert colours[0] == INIT_COLOURS["random"]  # the init's family colour leads its shades


def test_published_weights_have_their_own_colours_one_per_source(make_arm):
    arms = [
        make_arm("rnd", "random", 25.0),
        make_arm("cls", "classify", 30.0),
        *(make_arm(f"w{i}", "weights", 30.0, weights=f"w{i}.pkl") for i in range(3)),
    ]
    groups = group_arms(arms)
    st = styles(groups)
    published = [st[id(g)]["color"] for g in groups if g.init == "weights"]
    assert len(groups) == 5 and published[0] == INIT_COLOURS["weights"] and len(set(published)) == 3
    others = {st[id(g)]["color"] for g in groups if g.init != "weights"}
    assert not others & set(published)
    assert len({(st[id(g)]["color"], st[id(g)]["ls"]) for g in groups}) == 5


def _arms(make_arm):
    return [
        make_arm("rnd_1x", "random", 22.0),
        make_arm("rnd_2x_s0", "random", 29.0, schedule=2.0),
        make_arm("rnd_2x_s1", "random", 30.0, schedule=2.0, seed=1),
        make_arm("cls_1x", "classify", 30.0),
        make_arm("dir_1x", "direct", 30.8),
    ]


def test_verdict_groups_are_the_verdicts_configurations_in_its_order(make_arm):
    arms = _arms(make_arm)
    records = compute_verdict(arms)["groups"]
    groups = verdict_groups(records, arms)
    assert [g.key() for g in groups] == [r_key(r) for r in records] == [g.key() for g in group_arms(arms)]
    assert all(a is next(x for x in arms if x["name"] == a["name"]) for g in groups for a in g.arms)
    # The verdict's order, not the arms': reversed records give reversed groups.
    assert [g.names for g in verdict_groups(records[::-1], arms)] == [g.names for g in groups][::-1]


def r_key(record):
    return {k: record[k] for k in ("data", "init", "pretrained_on", "norm", "schedule", "arms")}


def test_figures_draw_the_verdicts_groups_not_a_regrouping(make_arm, tmp_path):
    """A verdict without the first configuration (random init 1x) draws exactly what a study without
    that arm draws: colours, styles and bars follow the verdict's records, whatever else the arm list
    holds."""
    arms = _arms(make_arm)
    records = [r for r in compute_verdict(arms)["groups"] if r["arms"] != ["rnd_1x"]]
    fewer = [a for a in arms if a["name"] != "rnd_1x"]
    fewer_records = compute_verdict(fewer)["groups"]
    assert records == fewer_records
    for name, draw in (
        ("final", final_ap_figure),
        ("compute", compute_figure),
        ("curves", lambda r, a, p: curves_figure(r, a, "bbox", p)),
    ):
        ours = draw(records, arms, tmp_path / f"{name}_verdict.png").read_bytes()
        assert ours == draw(fewer_records, fewer, tmp_path / f"{name}_fewer.png").read_bytes(), name
        full = draw(compute_verdict(arms)["groups"], arms, tmp_path / f"{name}_full.png").read_bytes()
        assert ours != full, name


def test_a_verdict_naming_arms_the_study_lacks_skips_each_figure(make_arm, tmp_path):
    arms = _arms(make_arm)
    records = compute_verdict(arms)["groups"]
    for draw in (final_ap_figure, compute_figure, lambda r, a, p: curves_figure(r, a, "bbox", p)):
        with pytest.raises(Skip, match="the verdict names arm.s. the study lacks: dir_1x"):
            draw(records, arms[:-1], tmp_path / "x.png")
