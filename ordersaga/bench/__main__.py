"""`python -m ordersaga.bench`: the same as `ordersaga bench`."""

import sys

from ordersaga.bench import main

sys.exit(main())
