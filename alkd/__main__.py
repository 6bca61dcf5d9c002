import sys

from alkd.cli import main

sys.exit(main())
