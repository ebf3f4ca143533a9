"""Reset distccd on the workers: k3s-agent stopped, stale compilers killed, distccd serving.

Run: pyinfra INVENTORY deploys/worker_distccd_reset.py  (preview with --dry)
"""

from deploys.library.playbooks import worker_distccd_reset

worker_distccd_reset()
