"""The support-replies rubric the judge tests share: two criteria from the task's voice guide."""

CRITERIA = """\
  criteria:
    - name: owns_problem
      question: Does the reply say sorry and own the customer's problem?
      pass: names the problem in a few words and says it is on us
      fail: apologises vaguely, blames the customer, or quotes a policy
    - name: one_step
      question: Does the reply offer exactly one concrete next step?
      pass: one replacement, refund, label, credit, part or thing to try
      fail: no next step, or several
"""
