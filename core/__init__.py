"""hookline's pure core: the delivery rules as plain functions on values, with no I/O.

Addresses, signing, retry schedule, outcome classification, webhook rendering and ids.
"""
