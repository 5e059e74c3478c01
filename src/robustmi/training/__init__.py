"""robustmi.training"""
