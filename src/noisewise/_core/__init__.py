"""The bottom layer of noisewise: what every other module may import.

Nothing here imports another part of the package. Each module is imported by
its full name (``noisewise._core.keras_compat``); this file loads nothing, so
importing one of them costs only that one.
"""
