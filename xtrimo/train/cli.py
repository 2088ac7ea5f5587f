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
import sys

from xtrimo.cli_utils import hydra_help, run_command, setup_logging
from xtrimo.train.config import TrainConfig

log = logging.getLogger("xtrimo")


def compose(overrides: list[str]) -> TrainConfig:
    """Compose ``configs/train.yaml`` with ``overrides`` into a validated :class:`TrainConfig`.

    Raises:
        ValueError: one line naming the bad key or value (with the nearest valid ones).
    """
    from xtrimo.compose import compose as compose_config

    return compose_config(TrainConfig, "train", overrides)


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
        from xtrimo.compose import config_dir, resolved

        return hydra_help(__doc__, f"configs: {config_dir()} (add your own: hydra.searchpath=[file:///path/to/folder])",
                          resolved(compose([])))
    setup_logging()

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
