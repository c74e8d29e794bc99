"""The app layer: the `hookline` command line, `up`, the demo, the local stack, the receiver."""
