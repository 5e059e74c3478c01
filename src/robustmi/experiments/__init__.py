"""robustmi.experiments"""
