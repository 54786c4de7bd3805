"""Every baseline run on a synthetic setting whose answer is known (issue 13).

One module per method family, each with the setting its paper's claim holds on, the reference the method must
beat and a function that measures the change with its interval:

- :mod:`facebench.known_answers.age` — DANN and MMD on covariate- and concept-shift UTKFace-format data
  (seed 000 section 3.6), and the pairwise model + MDS against direct regression on offset data (sections 3.2,
  4.4.5);
- :mod:`facebench.known_answers.aifr` — ArcFace, ArcFace + Age and MT-MIM on synthetic MORPH whose identities drift
  along one shared age direction (``shift: age_entangled``; seed 002 sec. 3.3, eq. 2-3, 7): rank-1 at the largest age
  gap with a person bootstrap, and CLUB's MI estimate over training.

Both run the real runner through :mod:`facebench.known_answers.runs` (a protocol on a shift, its runs read back).

``scripts/method_checks.py [--family age|aifr]`` prints the table at quick size; ``tests/test_known_answers.py`` and
``tests/test_known_answers_aifr.py`` assert the directions at toy size.
"""
