"""(being filled in: see README Layout)"""
