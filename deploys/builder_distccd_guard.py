"""Make the builder a distcc client only: no distccd, the build tmpfs, the build user's environment.

Run: pyinfra INVENTORY deploys/builder_distccd_guard.py  (preview with --dry)
"""

from deploys.library import start_run
from deploys.library.playbooks import builder_distccd_guard

start_run()
builder_distccd_guard()
