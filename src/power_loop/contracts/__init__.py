"""Plain data shared by every layer: errors, JSON aliases, events and hook contexts.

Nothing here performs I/O or imports another ``power_loop`` package.
"""
