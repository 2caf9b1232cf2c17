"""``python -m latentda`` = the ``latentda`` console script."""

from latentda.cli import main

main()
