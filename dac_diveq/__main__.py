"""``python -m dac_diveq encode|decode|info`` (see :mod:`dac_diveq.codec.cli`)."""
import sys

from .codec.cli import main

if __name__ == "__main__":
    sys.exit(main())
