"""Grading outputs with a model against a rubric, and whether to trust it: the statistics that say how
far a judge agrees with people (`agreement`, Cohen's kappa) and what a few human grades plus the
judge's grades on every item show about the rate people would give (`ppi`, PPI++).

Built: the statistics (`agreement`, `ppi`), the rubric in task.yaml (`rubric`), grading through an
`openai:` judge cached in the run store, k samples per output with majority and flips (`grading`),
human grades and the results.json `judge` section (`labels`, `advise label`), a criterion (or pass_all
with `rubric.in_pass_all`) as target.metric, decided only as far as people back the judge
(`decision`), and the length-bias probe (`bias`). Not built: a pairwise mode (position bias).
"""
