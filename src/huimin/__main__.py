"""`python -m huimin` is the `huimin` command."""

from huimin.cli import main

main()
