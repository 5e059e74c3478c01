"""robustmi.saliency"""
