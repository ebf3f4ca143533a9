# Data for the hosts of inventories/lab.py (the local Docker lab) only.
#
# The lab's containers share this machine's memory, so keep the tmpfs small.
distcc_tmpfs_size = "256M"
