"""``python -m deepbasics`` is the same as the ``deepbasics`` command."""

from deepbasics.cli import main

if __name__ == "__main__":
    main()
