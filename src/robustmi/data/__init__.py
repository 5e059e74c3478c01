"""robustmi.data"""
