"""Install and configure distccd on the workers, enabled but not started.

Run: pyinfra INVENTORY deploys/distccd_bootstrap.py  (preview with --dry)
"""

from deploys.library import start_run
from deploys.library.playbooks import distccd_bootstrap

start_run()
distccd_bootstrap()
