"""facebench: is this face model equally good for everyone?

Declarative YAML protocols drive baseline runners that train or load PyTorch models and score their
predictions into per-subgroup metrics with intervals, HTML bias reports and leaderboards.
The architecture is described in docs/architecture.md.
"""

__version__ = "0.1.0"
