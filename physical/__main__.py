import sys

from physical.cli.main import main

sys.exit(main())
