"""``xtrimo-train``: the Hydra command line for pre-training and fine-tuning.

    xtrimo-train experiment=quickstart
    xtrimo-train model=small trainer.max_steps=2000 data.train_files=[a.fasta.gz] data.valid_files=[b.fasta.gz]
    xtrimo-train ... trainer.accelerator=cpu trainer.devices=2 trainer.strategy=ddp
    xtrimo-train ... strategy=deepspeed_zero2 trainer.devices=8 trainer.num_nodes=4
    xtrimo-train ... resume=true
    xtrimo-train model=100b dry_run=true
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from xtrimo.cli_utils import one_line, run_command
from xtrimo.train.config import TrainConfig

log = logging.getLogger("xtrimo")


def config_dir() -> Path:
    """The configs/ folder: $XTRIMO_CONFIG_DIR, the source checkout, or the installed copy."""
    if os.environ.get("XTRIMO_CONFIG_DIR"):
        return Path(os.environ["XTRIMO_CONFIG_DIR"])
    here = Path(__file__).resolve().parents[2] / "configs"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[1] / "configs"


def compose(overrides: list[str], config_name: str = "train") -> TrainConfig:
    """Compose ``configs/<config_name>.yaml`` with ``overrides`` into a validated :class:`TrainConfig`.

    Raises:
        ValueError: one line naming the bad key or value.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.config_store import ConfigStore
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    ConfigStore.instance().store(name="train_schema", node=TrainConfig)
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
            cfg = hydra_compose(config_name=config_name, overrides=overrides)
        return OmegaConf.to_object(cfg)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ValueError(one_line(exc)) from None


TASK_GROUP = "xtrimo.train_tasks"


def _task_entry(argv: list[str]):
    """A training task registered by another package (entry point group ``xtrimo.train_tasks``).

    ``xtrimo-train experiment=fold ...`` runs the task named ``fold`` when a package registers one; the core never
    imports those packages itself (dependencies point one way).
    """
    from importlib.metadata import entry_points

    names = [a.split("=", 1)[1] for a in argv if a.startswith("experiment=")]
    if not names:
        return None
    for ep in entry_points(group=TASK_GROUP):
        if ep.name == names[-1]:
            return ep.load()
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    task = _task_entry(argv)
    if task is not None:
        return task(argv)
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        print(f"configs: {config_dir()}")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    def body() -> int:
        cfg = compose(argv)
        if cfg.dry_run:
            from xtrimo.train.run import dry_run

            dry_run(cfg)
        else:
            from xtrimo.train.run import train

            train(cfg)
        return 0

    return run_command("xtrimo-train", body)


if __name__ == "__main__":
    sys.exit(main())
