import sys

from smppgw.cli import main

sys.exit(main())
