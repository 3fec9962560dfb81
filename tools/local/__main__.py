import os
import sys

from tools.local.cli import main

code = main()
sys.stdout.flush()
sys.stderr.flush()
# Everything the run started is stopped by now (main tears it down, also on Ctrl-C); what
# is left is the interpreter's own teardown of the pulumi_aws and moto module graphs,
# which takes seconds and does nothing for the user.
os._exit(code)
