"""``facebench sweep``: a protocol over a grid of ``--set`` values and seeds, one submitit job per run folder,
on this machine (submitit's LocalExecutor) or on SLURM (its AutoExecutor). See :mod:`facebench.sweep.runner`."""
