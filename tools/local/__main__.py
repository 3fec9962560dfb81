import gc
import os
import sys

from tools.local.cli import main

# The modules imported above live as long as the run: frozen, the full collections the run
# triggers skip them, and young collections are rarer (measured: the collector's share of a
# 25 s run fell from 4.5 s to 2.9 s, peak memory unchanged at ~500 MB; fewer full collections
# saved another 1.5 s but kept 70 MB more).
gc.freeze()
gc.set_threshold(2000, 10, 10)
code = main()
sys.stdout.flush()
sys.stderr.flush()
# Everything the run started is stopped by now (main tears it down, also on Ctrl-C); what
# is left is the interpreter's own teardown of the pulumi_aws and moto module graphs,
# which takes seconds and does nothing for the user.
os._exit(code)
