"""Leave build mode: distccd stopped, the tmpfs unmounted when empty, k3s started again.

Run: pyinfra INVENTORY deploys/k3s_mode.py  (preview with --dry)
"""

from deploys.library import start_run
from deploys.library.playbooks import k3s_mode

start_run()
k3s_mode()
