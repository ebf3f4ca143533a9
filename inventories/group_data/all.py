# Data for every host of every inventory in this folder.
#
# pyinfra runs every operation and fact with sudo: the SSH user (pi) must have
# passwordless sudo on every Pi.
_sudo = True

# Settings of this package, all optional; see deploys/library/settings.py for every
# key, its default and what it means. Examples:
#
# distcc_tmpfs_size = "3G"          # builder: size of the tmpfs at distcc_tmpfs_path
# distcc_nice = 10                  # workers: distccd --nice
# distcc_log_level = "info"         # workers: distccd --log-level
# distcc_k3s_units = ["k3s", "k3s-server", "k3s-agent"]
# distcc_mtu = 1500                 # the MTU every node should have on the cluster network
# distcc_wide_tables = True         # validation and the build report: full tables (220+ columns)
# distcc_build_packages = ["bc", "bison", "flex", "libssl-dev", "libelf-dev", "libncurses-dev", "make", "git"]
#                                   # builder: the kernel's build tools, installed in build mode
