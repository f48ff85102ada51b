"""`hydra/launcher=slurm` (conf/hydra/launcher/slurm.yaml): submitit's SLURM launcher with resource checks, resume
and a quiet squeue watcher; Hydra finds it by this namespace package."""
