"""The replayer: runs replay and recover jobs from the control topic."""
