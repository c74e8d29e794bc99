"""Integration tests of the deliverer against the real broker and receivers on 127.0.0.1."""
