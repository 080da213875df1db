import sys

from eval.cli.main import main

sys.exit(main())
