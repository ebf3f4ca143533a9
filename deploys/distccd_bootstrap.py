"""Install and configure distccd on the workers, enabled but not started.

Run: pyinfra INVENTORY deploys/distccd_bootstrap.py  (preview with --dry)
"""

from deploys.library.playbooks import distccd_bootstrap

distccd_bootstrap()
