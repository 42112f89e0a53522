"""Grading outputs with a model against a rubric, and whether to trust it: the statistics that say how
far a judge agrees with people (`agreement`, Cohen's kappa) and what a few human grades plus the
judge's grades on every item show about the rate people would give (`ppi`, PPI++).

Built so far: the statistics (`advisor.judge.agreement`, `advisor.judge.ppi`). The rubric in
task.yaml, grading through a Backend, `advise label` and the verdict's use of them are not built yet.
"""
