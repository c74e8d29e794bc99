"""The deliverer: signed, isolated, retried HTTP delivery of `hookline.deliveries` commands."""
