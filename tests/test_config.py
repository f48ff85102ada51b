"""The job config's schema (nst/config.py) and conf/: every entry, preset and launcher composes and resolves
(so none rots), Hydra holds every key to the schema, and the rules work on a plain dict too (the library's
callers without Hydra)."""
import ast
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from experiments.config import resolved
from nst import config as schema
from nst.config import ConfigError, check
from tests.conftest import ROOT, compose

CONF = ROOT / "conf"
ENTRIES = sorted(p.stem for p in CONF.glob("*.yaml") if p.stem != "train_decoder")  # the jobs' (not a trainer's)
PRESETS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml") if not p.stem.startswith("_"))
LAUNCHERS = sorted(p.stem for p in (CONF / "hydra" / "launcher").glob("*.yaml"))


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_entry_config_composes_and_resolves_with_every_launcher(entry, launcher):
    """Each entry with each launcher: the launcher's settings resolve (its resolvers run: jobs_for_threads), and the
    job's config has exactly the schema's keys and passes its rules."""
    cfg = compose(f"hydra/launcher={launcher}", "threads=1", entry=entry, hydra=True)
    settings = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    if launcher == "parallel":
        import os

        assert settings["n_jobs"] == os.cpu_count()  # jobs x threads = cores
    if launcher == "local":
        assert settings["cpus_per_task"] == 1  # the job's threads
    job = resolved(cfg)
    assert list(job) == list(schema.FIELDS) and list(job["optimizer"]) == list(schema.OPTIMIZER_FIELDS)
    check(job)


@pytest.mark.parametrize("preset", PRESETS)
def test_paper_preset_runs_the_papers_objective_on_the_papers_network(preset):
    cfg = compose(f"experiment={preset}", "images_root=/data", hydra=True)
    assert (cfg.weights, cfg.loss, cfg.pooling, cfg.init) == ("normalized", "paper", "avg", "noise")
    assert str(cfg.content).startswith("/data/content/") and cfg.hydra.sweeper.params
    assert cfg.hydra.mode.name == "MULTIRUN" and (cfg.size, cfg.steps) == (256, 300)  # conf/experiment/_paper.yaml


def test_debug_tiny_shrinks_an_entry_and_a_preset():
    for entry, overrides in (("grid", []), ("config", ["experiment=paper_fig3"])):
        cfg = compose(*overrides, "debug=tiny", entry=entry)
        assert (cfg.size, cfg.steps, cfg.progress) == (32, 2, False)
    assert compose("debug=tiny", "size=48").size == 48  # a typed key still wins


@pytest.mark.parametrize("painting", ["composition_vii", "shipwreck", "starry_night", "the_scream"])
def test_matched_painting_is_its_figure_2_ratio_times_1e_3(painting):
    """paper_fig2_matched's paintings: the same style image at the printed α/β x 1e-3 (paper_fig3_matched's shift)."""
    printed = compose("experiment=paper_fig2", f"painting={painting}")
    matched = compose("experiment=paper_fig2_matched", f"painting={painting}_matched")
    assert matched.style == printed.style and matched.ratio == pytest.approx(printed.ratio * 1e-3)
    assert compose("experiment=paper_fig2", "painting=starry_night").ratio == 8e-4


def test_the_names_of_weights_and_starts_are_the_librarys():
    from nst.backbones import PRETRAINED, RANDOM
    from nst.spec import INITS
    from nst.vgg import NORMALIZED, ORIGINAL

    assert set(schema.NAMED_WEIGHTS) == {ORIGINAL, NORMALIZED, RANDOM, PRETRAINED}
    assert set(schema.NAMED_INITS) == set(INITS)


def test_the_rules_hold_for_a_plain_dict_without_hydra():
    """The library's own callers pass a dict (e.g. a metrics.json's config): the schema still decides."""
    good = resolved(compose("debug=tiny"))
    check(good)
    for bad, message in (({**good, "sizee": 1}, "sizee 1 is not a config key; did you mean size?"),
                         ({k: v for k, v in good.items() if k != "seed"}, "seed is missing from the config"),
                         ({**good, "size": "abc"}, "size 'abc' must be an integer >= 1"),
                         ({**good, "size": True}, "size true must be an integer >= 1"),
                         ({**good, "max_pixels": 0}, "max_pixels 0 must be a finite number >= 1"),
                         ({**good, "optimizer": {**good["optimizer"], "foo": 1}}, "optimizer.foo 1 is not an optimizer key")):
        with pytest.raises(ConfigError, match=message):
            check(bad)


def test_what_a_key_is_decides_identity_names_and_paths(tmp_path):
    """Field metadata, read where it acts: a key outside the identity names no directory and redoes no job; a path
    key has ~ expanded; an input file's path is not its identity, its bytes are."""
    from nst import metrics, sweep

    assert set(schema.NOT_IDENTITY) == {"images_root", "progress", "threads", "max_pixels"}
    assert sweep.dirname(["threads=2", "max_pixels=1e6", "beta=1e3"]) == "beta=1e+03"
    job = resolved(compose("debug=tiny"))
    assert metrics.comparable({**job, "threads": 7, "content": "/elsewhere/x.jpg"}) == metrics.comparable(job)
    assert metrics.comparable({**job, "init": "content"}) != metrics.comparable(job)  # a name, not a path
    assert schema.expand_paths({"style": ["~/a.png"], "beta": "~"})["style"][0] == str(Path.home() / "a.png")
    assert schema.label("style_loss_fn") == "style loss" and schema.column("style_loss") == "style_loss_fn"


def test_no_list_of_config_keys_is_kept_by_hand_outside_the_schema():
    """No literal tuple, list, set or dict in the project's code names three or more of the schema's keys (each
    such list had to be kept in step with conf/config.yaml by hand); nst/config.py is where they are."""
    keys = set(schema.FIELDS)
    found = []
    for path in [*ROOT.glob("nst/**/*.py"), *ROOT.glob("experiments/*.py"), *ROOT.glob("hydra_plugins/**/*.py")]:
        if path.name == "config.py" and path.parent.name == "nst":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            # a dict whose values are computed is a record (metrics.json's steps, device, seed), not a key list
            table = isinstance(node, ast.Dict) and all(isinstance(v, ast.Constant) for v in node.values)
            items = node.keys if table else getattr(node, "elts", None) \
                if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else None
            named = {n.value for n in items or [] if isinstance(n, ast.Constant) and n.value in keys}
            if len(named) >= 3:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {sorted(named)}")
    assert not found, found
