"""The @deploy functions and their helpers, imported by the runnable deploy
files one folder up (pyinfra INVENTORY deploys/NAME.py). Nothing here runs
an operation when imported."""
