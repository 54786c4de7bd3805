"""``facebench compare``'s parts, by concept: :mod:`~facebench.comparison.entries` (which leaderboard entry),
:mod:`~facebench.comparison.pairing` (refusals, outcomes paired sample by sample),
:mod:`~facebench.comparison.gates` (gate files), :mod:`~facebench.comparison.verdict` (paired bootstrap and
the regression rule) and :mod:`~facebench.comparison.markdown` (the summary). :mod:`facebench.compare` is the
command and its documented rules.
"""
