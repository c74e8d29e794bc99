"""The admin API of hookline, the delivery-history read model it serves (projector) and the
replayer that runs replay and recover jobs."""
