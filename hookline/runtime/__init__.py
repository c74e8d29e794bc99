"""The runtime layer: settings, errors, the Kafka toolkit, tables and codecs every service uses."""
