from scratchlab.study.figures import INIT_COLOURS, styles
from scratchlab.study.groups import group_arms


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
