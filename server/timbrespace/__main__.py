import sys

from timbrespace.cli import main

sys.exit(main())
