"""Every entry config, paper preset and launcher composes (so none rots), with Hydra's compose API."""
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

import experiments  # noqa: F401  (registers the resolvers)

CONF = Path(__file__).resolve().parents[1] / "conf"
ENTRIES = sorted(p.stem for p in CONF.glob("*.yaml"))
PRESETS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
LAUNCHERS = sorted(p.stem for p in (CONF / "hydra" / "launcher").glob("*.yaml"))


@pytest.fixture
def hydra_conf():
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="conf", version_base="1.3"):
        yield
    GlobalHydra.instance().clear()


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_entry_config_composes_with_every_launcher(hydra_conf, entry, launcher):
    cfg = compose(entry, overrides=[f"hydra/launcher={launcher}"], return_hydra_config=True)
    assert cfg.size > 0 and cfg.optimizer.name in ("lbfgs", "adam")
    assert cfg.hydra.launcher._target_.startswith(("hydra_plugins.", "hydra._internal"))


@pytest.mark.parametrize("preset", PRESETS)
def test_paper_preset_runs_the_papers_objective_on_the_papers_network(hydra_conf, preset):
    cfg = compose("config", overrides=[f"experiment={preset}", "images_root=/data"], return_hydra_config=True)
    assert (cfg.weights, cfg.loss, cfg.pooling, cfg.init) == ("normalized", "paper", "avg", "noise")
    assert str(cfg.content).startswith("/data/content/") and cfg.hydra.sweeper.params


def test_the_lists_are_complete():
    assert {"config", "grid", "layer_scan"} <= set(ENTRIES) and len(PRESETS) >= 4
    assert {"batched", "local", "parallel", "slurm"} <= set(LAUNCHERS)


@pytest.mark.parametrize("painting", ["composition_vii", "shipwreck", "starry_night", "the_scream"])
def test_matched_painting_is_its_figure_2_ratio_times_1e_3(hydra_conf, painting):
    """paper_fig2_matched's paintings: the same style image at the printed α/β x 1e-3 (paper_fig3_matched's shift)."""
    printed = compose("config", overrides=["experiment=paper_fig2", f"painting={painting}"])
    matched = compose("config", overrides=["experiment=paper_fig2_matched", f"painting={painting}_matched"])
    assert matched.style == printed.style and matched.ratio == pytest.approx(printed.ratio * 1e-3)
