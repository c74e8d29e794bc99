"""The replayer: runs replay, recover and redeliver jobs from the control topic."""
