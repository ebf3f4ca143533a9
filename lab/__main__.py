import sys

from lab.docker_lab import main

sys.exit(main(sys.argv[1:]))
