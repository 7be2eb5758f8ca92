"""The order screens: lists and worklists (lists.py), one order (detail.py)."""
