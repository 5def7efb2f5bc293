import sys

from gala.cli import main

sys.exit(main())
