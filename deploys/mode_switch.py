"""Enter DISTCC BUILD MODE: k3s stopped, builder guarded with its tmpfs, workers serving distccd.

Run: pyinfra INVENTORY deploys/mode_switch.py  (preview with --dry)
"""

from deploys.library import start_run
from deploys.library.playbooks import mode_switch

start_run()
mode_switch()
