"""robustmi.models"""
