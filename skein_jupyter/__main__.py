"""``python -m skein_jupyter``: the ``skein-jupyter`` command."""
from .cli import main

if __name__ == "__main__":
    main()
