"""Reset distccd on the workers: k3s-agent stopped, stale compilers killed, distccd serving.

Run: pyinfra INVENTORY deploys/worker_distccd_reset.py  (preview with --dry)
"""

from deploys.library import start_run
from deploys.library.playbooks import worker_distccd_reset

start_run()
worker_distccd_reset()
