"""Every baseline run on a synthetic setting whose answer is known (issue 13).

One module per method family, each with the setting its paper's claim holds on, the reference the method must
beat and a function that measures the change with its interval:

- :mod:`facebench.known_answers.age` — DANN and MMD on covariate- and concept-shift UTKFace-format data
  (seed 000 section 3.6);

``scripts/method_checks.py`` prints the table at quick size; ``tests/test_known_answers.py`` asserts the directions
at toy size.
"""
