import gc

# Start-up allocates some 200,000 long-lived objects and frees few: collections during the
# imports only walk them (about 8% of the import time). `serve` freezes them before it forks.
gc.disable()
from .cli import main  # noqa: E402

gc.enable()
main()
