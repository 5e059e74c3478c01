"""robustmi: measure and train adversarially robust representations via worst-case mutual information.

Zhu, Zhang & Evans, "Learning Adversarially Robust Representations via Worst-Case Mutual Information
Maximization", ICML 2020 (arXiv 2002.11798).
"""

__version__ = "0.1.0"
