import sys

from kvmfleet.cli import main

sys.exit(main())
