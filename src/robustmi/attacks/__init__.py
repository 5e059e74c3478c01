"""robustmi.attacks"""
