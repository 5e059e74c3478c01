"""robustmi.mi"""
