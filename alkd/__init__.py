"""alkd: a reproduction of ALKDRec (Du et al., AAAI 2025).

Active LLM-based knowledge distillation for session-based recommendation:
a small student recommender learns from an LLM teacher's rankings of a few
sessions chosen by a max-min selection policy.
"""

__version__ = "0.1.0"
