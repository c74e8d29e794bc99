"""`python -m deliverer [flags]`: the same as `hookline deliverer [flags]`."""

import sys

from hookline.cli import main

sys.exit(main(["deliverer", *sys.argv[1:]]))
