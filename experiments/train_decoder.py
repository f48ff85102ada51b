"""`python -m experiments.train_decoder images=DIR [level=3 ...]`: train a decoder (conf/train_decoder.yaml).

Exit status: 0 trained; 2 bad input (one `error:` line); 130 interrupted by Ctrl-C, 143 by SIGTERM, after
saving a checkpoint that the same command resumes from.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from experiments.errors import JobFailed
from nst import jobdir
from nst.decoder_training import TrainConfig, TrainingError, train

STOP: list[str] = []  # the signal that asked the training to stop at its next step
STARTED = [0.0]  # when the command started (what Hydra wrote since then is a refused run's to remove)


def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    out = Path(HydraConfig.get().runtime.output_dir)
    c = OmegaConf.to_container(cfg, resolve=True)
    try:
        jobdir.claim(out)  # one training per directory: a second one into it is refused
        outcome = train(TrainConfig(**c), out, interrupted=lambda: bool(STOP))
    except Exception as e:
        if isinstance(e, TrainingError):  # refused (an empty folder, another config's checkpoint): a new
            jobdir.discard_new(out, STARTED[0], "train_decoder.log")  # directory is removed, Hydra's .hydra/ and all
        raise JobFailed(e) from e  # through Hydra untouched (experiments/errors.py)
    finally:
        jobdir.release(out)
    psnr = ", ".join(f"{p:.2f}" for p in outcome.psnr) or "no held_out folder"
    print(f"decoder relu{c['level']}_1: {outcome.decoder_file} ({outcome.steps} steps, "
          f"{outcome.seconds_per_step:.2f} s/step; held-out PSNR dB: {psnr}); loss curve {out / 'losses.png'}")


def stop(signum: int, frame: object) -> None:
    """The first SIGINT/SIGTERM stops the training after its current step (and a checkpoint); a second one at once."""
    if STOP:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the unwinding is not cut short again
        raise KeyboardInterrupt(signal.Signals(signum).name)
    STOP.append(signal.Signals(signum).name)


def entry() -> int:
    import hydra
    from hydra.core.config_store import ConfigStore

    from experiments.errors import describe_hydra_error

    ConfigStore.instance().store(name="train_decoder_schema", node=TrainConfig, provider="nst-sweeps")
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises, and we say it in one line
    STARTED[0] = time.time()
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    app = hydra.main(version_base="1.3", config_path="../conf", config_name="train_decoder")(main)
    try:
        app()
    except JobFailed as e:
        if isinstance(e.error, (TrainingError, jobdir.Busy)):
            print(f"error: {e.error}", file=sys.stderr)
            return 2
        print(f"error: {type(e.error).__name__}: {e.error} (HYDRA_FULL_ERROR=1 shows the traceback)", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        name = (STOP or ["SIGINT"])[0]
        saved = "checkpoint saved" if e.args == ("checkpoint",) else "stopped at once, the last checkpoint kept"
        print(f"interrupted ({name}): {saved}; the same command resumes from it", file=sys.stderr)
        return 143 if name == "SIGTERM" else 130
    except Exception as e:  # Hydra's: a missing or mistyped key
        print(f"error: {describe_hydra_error(e)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(entry())
